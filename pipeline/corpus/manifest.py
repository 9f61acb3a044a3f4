"""The corpus manifest: what was built, from what, and what was rejected and why.

It holds no wall-clock time, so rebuilding the same recipe gives the same manifest.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

import pipeline
from pipeline.compression import shard_compression
from pipeline.config import RunConfig
from pipeline.corpus.splits import SplitRule
from pipeline.labels.taxonomy import REFERENCE_LABELS
from pipeline.schemas import validate

SCHEMA = "manifest.v1.schema.json"
UNVERIFIABLE_FILE = "unverifiable_inputs.json"  # in the work area, written with the lock inputs
VIEW_OUTPUTS = {
    "clm-hdf5": ("corpus.h5", "queries.jsonl", "qrels/"),
    "webdataset": ("webdataset/",),
    "stac": ("stac/",),
}


def view_outputs(views: tuple[str, ...]) -> list[str]:
    """The corpus paths each configured view writes (directories end with ``/``)."""
    return [path for view in views for path in VIEW_OUTPUTS[view]]


def build_manifest(
    config: RunConfig,
    chips_index: Path,
    records: dict[str, Any],
    split: dict[str, str],
    shards: dict[str, list[dict[str, Any]]],
    rule: SplitRule,
) -> dict[str, Any]:
    chips = pd.read_parquet(chips_index)
    manifest = {
        "manifest_version": 1,
        "name": config.name,
        "software": {"package": "crisislandmark", "version": pipeline.__version__},
        "config_digest": config.digest(),
        "config": _recipe(config),
        "archive": _archive_summary(config.archive),
        "scenes": _scene_counts(chips),
        **_failures(chips_index.parent / "failed_scenes.json"),
        "unverifiable_inputs": _json_list(chips_index.parent / UNVERIFIABLE_FILE),
        "label_warnings": _json_or_empty(chips_index.parent / "label_warnings.json"),
        "chips": _chip_counts(chips),
        "s1_polarizations": _polarization_summary(config, chips),
        "labels": _label_counts(records),
        "splits": dict(sorted(Counter(split.values()).items())),
        "split_rule": rule.describe(),
        "shards": {name: len(group) for name, group in shards.items()},
        "shard_compression": shard_compression(config.output.shard_compression).describe(),
        "views": list(config.output.views),
        "outputs": [
            "metadata.parquet",
            "records.jsonl",
            "sources.parquet",
            "shards/",
            "manifest.json",
            *view_outputs(config.output.views),
        ],
    }
    validate(manifest, SCHEMA, "corpus manifest")
    return manifest


def _recipe(config: RunConfig) -> dict[str, Any]:
    recipe = config.to_dict()
    recipe["output"].pop("dir", None)
    return recipe


def _json_or_empty(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text())) if path.exists() else {}


def _json_list(path: Path) -> list[Any]:
    """Inputs recorded as unverifiable (``source.on_unverifiable: record``): none pinned."""
    return list(json.loads(path.read_text())) if path.exists() else []


def _failures(path: Path) -> dict[str, Any]:
    """Scenes skipped as unreadable (``chips.on_error: skip``): the corpus is then incomplete."""
    failed = json.loads(path.read_text()) if path.exists() else {}
    return {"complete": not failed, "failed_scenes": dict(sorted(failed.items()))}


def _archive_summary(archive: Path | None) -> dict[str, Any] | None:
    if archive is None:
        return None
    meta = json.loads(archive.read_text())
    return {k: meta.get(k) for k in ("version", "seed", "scale", "generator", "collections")}


def _scene_counts(chips: pd.DataFrame) -> dict[str, int]:
    scenes = chips.drop_duplicates("item_id")
    return {str(k): int(v) for k, v in scenes.groupby("collection").size().items()}


def _chip_counts(chips: pd.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sensor, group in chips.groupby("sensor"):
        rejected = group["rejected"].dropna()
        out[str(sensor)] = {
            "planned": len(group),
            "kept": int(group["rejected"].isna().sum()),
            "rejected": {str(k): int(v) for k, v in sorted(Counter(rejected).items())},
        }
    return out


def _polarization_summary(config: RunConfig, chips: pd.DataFrame) -> dict[str, Any]:
    """The polarisation policy and what the kept S1 chips hold (``"VV,-"``: VH filled)."""
    rules = config.selection
    kept = chips[(chips["sensor"] == "s1") & chips["rejected"].isna()]
    held = kept["polarizations"] if "polarizations" in kept else pd.Series([], dtype=object)
    return {
        "policy": {
            "required": list(rules.s1_polarizations),
            "missing_polarization": rules.s1_missing_polarization,
            "hh_hv": rules.s1_hh_hv,
        },
        "kept_chips": {str(k): int(v) for k, v in sorted(Counter(held.fillna("VV,VH")).items())},
    }


def _label_counts(records: dict[str, Any]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = {}
    for record in records.values():
        counts.setdefault(record["sensor"]["sensor"], Counter()).update(record["labels"])
    return {
        sensor: {label: c[label] for label in REFERENCE_LABELS if c[label]}
        for sensor, c in sorted(counts.items())
    }
