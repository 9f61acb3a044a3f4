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
from pipeline.config import RunConfig
from pipeline.labels.taxonomy import REFERENCE_LABELS
from pipeline.schemas import validate

SCHEMA = "manifest.v1.schema.json"


def build_manifest(
    config: RunConfig,
    chips_index: Path,
    records: dict[str, Any],
    split: dict[str, str],
    shards: dict[str, list[dict[str, Any]]],
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
        "chips": _chip_counts(chips),
        "labels": _label_counts(records),
        "splits": dict(sorted(Counter(split.values()).items())),
        "shards": {name: len(group) for name, group in shards.items()},
        "outputs": ["metadata.parquet", "records.jsonl", "shards/", "manifest.json"],
    }
    validate(manifest, SCHEMA, "corpus manifest")
    return manifest


def _recipe(config: RunConfig) -> dict[str, Any]:
    recipe = config.to_dict()
    recipe["output"].pop("dir", None)
    return recipe


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


def _label_counts(records: dict[str, Any]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = {}
    for record in records.values():
        counts.setdefault(record["sensor"]["sensor"], Counter()).update(record["labels"])
    return {
        sensor: {label: c[label] for label in REFERENCE_LABELS if c[label]}
        for sensor, c in sorted(counts.items())
    }
