"""A persistent cache of static labels per grid cell, in the corpus work area.

``work/labels/<digest>.parquet`` holds one row per cell (``key``, the labels and the warnings
their computation counted, as JSON). The digest covers everything the static labels depend
on: every product's settings and content fingerprint (sha256 and size of a local file, ETag
and size of a remote one), the mapping tables, ``min_fraction`` and the code version. A
changed product or mapping therefore names another file and the cells are computed again;
files under other digests are left for ``clm gc``-style cleanup (they are small). A product
that cannot be fingerprinted disables the cache (everything is computed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import __version__
from pipeline.chips.grid import ChipGeometry
from pipeline.config import LabelsConfig
from pipeline.labels.harmonize import load_mapping
from pipeline.labels.static import (
    MAPPING_OF,
    corine_sources,
    cover_sources,
    worldcover_sources,
)
from pipeline.sources.fingerprint import UnverifiableAssetError, fingerprint
from pipeline.storage import atomic_path

CODE_VERSION = "static-labels/2"  # bump when the static label computation changes


def cell_key(cell: ChipGeometry) -> str:
    return f"{cell.cell_id}:{cell.pixels}x{cell.pixel_size:g}"


def cache_file(folder: Path, labels: LabelsConfig) -> Path | None:
    """``folder/<digest>.parquet`` for these label settings; None if a product has no
    fingerprint."""
    try:
        recipe = label_recipe(labels)
    except UnverifiableAssetError:
        return None
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode())
    return folder / f"{digest.hexdigest()[:24]}.parquet"


def label_recipe(labels: LabelsConfig) -> dict[str, Any]:
    sources = [*corine_sources(labels), *cover_sources(labels), *worldcover_sources(labels)]
    products = [
        {"type": type(s).__name__, **asdict(s)}  # type: ignore[call-overload]
        for s in sources
    ]
    hrefs = sorted({h for p in products for h in _hrefs(p)})
    return {
        "code": CODE_VERSION,
        "pipeline": __version__,
        "products": products,
        "fingerprints": {h: fingerprint(h) for h in hrefs},
        "mappings": {n: dict(load_mapping(n).table) for n in sorted(MAPPING_OF.values())},
        "min_fraction": labels.min_fraction,
    }


def _hrefs(product: Mapping[str, Any]) -> list[str]:
    if "href" in product:
        return [str(product["href"])]
    if "path" in product:
        return [str(product["path"])]
    return [str(p["href"]) for p in product.get("products", ())]


def read_cache(path: Path | None) -> dict[str, dict[str, Any]]:
    """``{cell key: {"labels": ..., "warnings": ...}}`` ({} when there is no cache yet)."""
    if path is None or not path.is_file():
        return {}
    frame = pd.read_parquet(path)
    return {
        key: {"labels": json.loads(labels), "warnings": json.loads(warnings)}
        for key, labels, warnings in zip(
            frame["key"], frame["labels"], frame["warnings"], strict=True
        )
    }


def write_cache(path: Path | None, entries: Mapping[str, Mapping[str, Any]]) -> None:
    """Write every entry (sorted by key), atomically."""
    if path is None:
        return
    keys = sorted(entries)
    frame = pd.DataFrame(
        {
            "key": keys,
            "labels": [json.dumps(entries[k]["labels"]) for k in keys],
            "warnings": [json.dumps(entries[k]["warnings"]) for k in keys],
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
