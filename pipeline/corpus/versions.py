"""Corpus versions: every build or refresh that changes the corpus publishes ``versions/vNNN/``.

The top level of a corpus directory is always the latest corpus (what readers and the
views use). A version is a frozen snapshot of it: hard links to the same files (a copy
where the file system has no hard links), so it costs no space, and later rewrites (which
replace files by rename, never in place) leave it untouched. ``versions/current`` points at
the latest version; each version holds ``diff.json``, the change from the version before.
A build that reproduces the latest version exactly publishes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.storage import write_json_atomic

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


def publish_version(corpus: Path, files: Sequence[str]) -> Version:
    """Snapshot ``files`` (corpus-relative) as a new version unless nothing changed."""
    _remove_staging(corpus / VERSIONS_DIR)
    existing = versions(corpus)
    latest = existing[-1] if existing else None
    if latest is not None and _same_lock(latest, corpus):
        diff = json.loads((latest / DIFF_FILE).read_text())
        return Version(latest.name, latest, False, diff)
    name = f"v{len(existing) + 1:03d}"
    staging = corpus / VERSIONS_DIR / f".{name}.tmp"
    for rel in files:
        _link(corpus / rel, staging / rel)
    diff = diff_versions(latest, corpus, name)
    write_json_atomic(staging / DIFF_FILE, diff)
    final = corpus / VERSIONS_DIR / name
    staging.rename(final)
    _point_current(corpus / VERSIONS_DIR, name)
    return Version(name, final, True, diff)


def _remove_staging(root: Path) -> None:
    for leftover in root.glob(".v*.tmp") if root.is_dir() else []:
        shutil.rmtree(leftover)


def _same_lock(version: Path, corpus: Path) -> bool:
    old, new = version / LOCK_FILE, corpus / LOCK_FILE
    return old.is_file() and new.is_file() and old.read_bytes() == new.read_bytes()


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _point_current(root: Path, name: str) -> None:
    tmp = root / f".{CURRENT_LINK}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(name, target_is_directory=True)
    os.replace(tmp, root / CURRENT_LINK)


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
