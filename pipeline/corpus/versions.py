"""Corpus versions: every build, refresh or export that changes the corpus publishes
``versions/vNNN/``, a directory that never changes afterwards.

The top level of a corpus directory is always the latest corpus: its names are symlinks
through ``versions/current`` (``pipeline.corpus.publish`` writes and switches them).
Versions share unchanged files as hard links (copies where the file system has none), so
they cost no space; each holds ``diff.json``, the change from the version before. A build
that reproduces the latest version exactly publishes nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

VERSIONS_DIR = "versions"
CURRENT_LINK = "current"
DIFF_FILE = "diff.json"
LOCK_FILE = "corpus.lock"


@dataclass(frozen=True)
class Version:
    name: str  # "v001"
    path: Path
    published: bool  # False when the corpus equalled the latest version
    diff: Mapping[str, Any]


def versions(corpus: Path) -> list[Path]:
    """The published versions, oldest first."""
    root = corpus / VERSIONS_DIR
    return sorted(p for p in root.glob("v[0-9][0-9][0-9]*") if p.is_dir()) if root.is_dir() else []


# ---- diff ----------------------------------------------------------------------------------


def diff_versions(old: Path | None, new: Path, name: str) -> dict[str, Any]:
    """What changed from corpus directory ``old`` (None: empty) to ``new``."""
    before = _metadata(old)
    after = _metadata(new)
    lock_before, lock_after = _lock(old), _lock(new)
    common = sorted(set(before.index) & set(after.index))
    return {
        "version": name,
        "previous": old.name if old is not None else None,
        "watermark": {"previous": lock_before.get("watermark"), "now": lock_after.get("watermark")},
        "added": _counts(after.loc[sorted(set(after.index) - set(before.index))]),
        "removed": _counts(before.loc[sorted(set(before.index) - set(after.index))]),
        "relabelled": int(sum(before.at[k, "ref"] != after.at[k, "ref"] for k in common)),
        "split_changed": int(sum(before.at[k, "split"] != after.at[k, "split"] for k in common)),
        "items_added": _new_ids(lock_before, lock_after, "items", "id"),
        "events_added": _changed_events(lock_before, lock_after),
    }


def _metadata(corpus: Path | None) -> pd.DataFrame:
    columns = ["key", "sensor", "split", "labels"]
    if corpus is None or not (corpus / "metadata.parquet").is_file():
        return pd.DataFrame(columns=[*columns, "ref"]).set_index("key")
    meta = pd.read_parquet(corpus / "metadata.parquet", columns=columns)
    meta["labels"] = [sorted(labels) for labels in meta["labels"]]
    meta["ref"] = [". ".join(labels) for labels in meta["labels"]]
    return meta.set_index("key")


def _lock(corpus: Path | None) -> dict[str, Any]:
    if corpus is None or not (corpus / LOCK_FILE).is_file():
        return {}
    return dict(json.loads((corpus / LOCK_FILE).read_text()))


def _counts(meta: pd.DataFrame) -> dict[str, Any]:
    """Chips per sensor, and per sensor and label."""
    out: dict[str, Any] = {}
    for sensor, group in meta.groupby("sensor"):
        labels: Counter[str] = Counter(label for ls in group["labels"] for label in ls)
        out[str(sensor)] = {"chips": len(group), "labels": dict(sorted(labels.items()))}
    return out


def _new_ids(
    before: Mapping[str, Any], after: Mapping[str, Any], key: str, field: str
) -> list[str]:
    old = {entry[field] for entry in before.get(key, [])}
    return sorted(entry[field] for entry in after.get(key, []) if entry[field] not in old)


def _changed_events(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Event sources new in ``after`` or whose files changed (e.g. a feed with new alerts)."""
    old = {e["href"]: e["files"] for e in before.get("events", [])}
    return sorted(e["href"] for e in after.get("events", []) if old.get(e["href"]) != e["files"])


def format_diff(diff: Mapping[str, Any]) -> str:
    lines = [f"version {diff['version']} (previous: {diff['previous'] or 'none'})"]
    for what in ("added", "removed"):
        parts = [f"{s.upper()} {v['chips']}" for s, v in diff[what].items()]
        lines.append(f"  chips {what}: {', '.join(parts) or 'none'}")
        lines += _label_lines(diff[what])
    lines.append(
        f"  relabelled: {diff['relabelled']}, split changed: {diff['split_changed']}, "
        f"items added: {len(diff['items_added'])}, events added: {len(diff['events_added'])}"
    )
    return "\n".join(lines)


def _label_lines(counts: Mapping[str, Any]) -> Iterable[str]:
    for sensor, value in counts.items():
        if value["labels"]:
            text = ", ".join(f"{k} {n}" for k, n in value["labels"].items())
            yield f"    {sensor.upper()}: {text}"
