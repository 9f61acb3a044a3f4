"""Summaries of a written corpus, for people (``clm inspect``) and for the DAG's last task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import CorpusError
from pipeline.labels.taxonomy import REFERENCE_LABELS


def summarize(corpus: Path) -> dict[str, Any]:
    """Counts per sensor, split and label, with rejections, read from the corpus files."""
    manifest_path, metadata_path = corpus / "manifest.json", corpus / "metadata.parquet"
    if not manifest_path.exists() or not metadata_path.exists():
        raise CorpusError(
            f"{corpus} is not a complete corpus (manifest.json and metadata.parquet expected); "
            "run `clm build --config CONFIG` first"
        )
    manifest = json.loads(manifest_path.read_text())
    meta = pd.read_parquet(metadata_path, columns=["key", "sensor", "split", "labels"])
    return {
        "corpus": str(corpus.resolve()),
        "chips": {s: int(n) for s, n in meta.groupby("sensor").size().items()},
        "splits": {
            f"{s}/{p}": int(n) for (s, p), n in meta.groupby(["sensor", "split"]).size().items()
        },
        "labels": _label_table(meta),
        "rejected": {s: v["rejected"] for s, v in manifest["chips"].items()},
        "scenes": manifest["scenes"],
        "failed_scenes": manifest.get("failed_scenes", {}),
        "unverifiable_inputs": manifest.get("unverifiable_inputs", []),
        "config_digest": manifest["config_digest"],
        "shards": len(manifest["shards"]),
        "shard_compression": manifest.get("shard_compression", {}).get("name"),
        "stac_validated": _stac_validated(corpus),
        "views": manifest.get("views", []),
        "version": _current_version(corpus),
    }


def _stac_validated(corpus: Path) -> dict[str, dict[str, int]] | None:
    """Per STAC collection, the objects validated and written (``stac/validation.json``)."""
    path = corpus / "stac" / "validation.json"
    return dict(json.loads(path.read_text())["objects"]) if path.is_file() else None


def _current_version(corpus: Path) -> str | None:
    current = corpus / "versions" / "current"
    return current.resolve().name if current.exists() else None


def _label_table(meta: pd.DataFrame) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for label in REFERENCE_LABELS:
        has = meta["labels"].map(lambda labels, name=label: name in list(labels))
        counts = meta[has].groupby("sensor").size()
        if len(counts):
            table[label] = {str(s): int(n) for s, n in counts.items()}
    return table


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"Corpus: {summary['corpus']}  (config {summary['config_digest']})"]
    lines.append("Scenes: " + ", ".join(f"{k} {v}" for k, v in summary["scenes"].items()))
    failed = summary.get("failed_scenes") or {}
    if failed:
        lines.append(
            f"INCOMPLETE: {len(failed)} unreadable scene(s) skipped: " + ", ".join(sorted(failed))
        )
    unverifiable = summary.get("unverifiable_inputs") or []
    if unverifiable:
        lines.append(
            f"UNVERIFIABLE: {len(unverifiable)} input(s) could not be fingerprinted, so "
            "corpus.lock pins no bytes for them (no byte-identical rebuild): "
            + ", ".join(f"{u['subject']} [{u['detail']}]" for u in unverifiable)
        )
    lines.append("Chips:  " + ", ".join(f"{k.upper()} {v}" for k, v in summary["chips"].items()))
    lines.append("Splits: " + ", ".join(f"{k} {v}" for k, v in summary["splits"].items()))
    for sensor, reasons in summary["rejected"].items():
        if reasons:
            lines.append(
                f"Rejected {sensor.upper()}: " + ", ".join(f"{k} {v}" for k, v in reasons.items())
            )
    lines.append(f"{'label':<20}{'S1':>8}{'S2':>8}")
    for label, counts in summary["labels"].items():
        lines.append(f"{label:<20}{counts.get('s1', 0):>8}{counts.get('s2', 0):>8}")
    compression = summary.get("shard_compression")
    lines.append(
        f"Shards: {summary['shards']} HDF5 files under shards/"
        + (f" ({compression})" if compression else "")
        + "; metadata.parquet, records.jsonl, manifest.json, corpus.lock"
    )
    stac = summary.get("stac_validated")
    if stac:
        checked = sum(v["validated"] for v in stac.values())
        written = sum(v["written"] for v in stac.values())
        lines.append(f"STAC view: {checked} of {written} objects validated (stac/validation.json)")
    if summary.get("views"):
        lines.append(f"Views: {', '.join(summary['views'])}")
    if summary.get("version"):
        lines.append(f"Version: {summary['version']} (versions/current)")
    return "\n".join(lines)
