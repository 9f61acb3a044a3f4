"""What no longer matches a ``corpus.lock``: inputs re-fingerprinted now (``check_inputs``),
items found again (``check_items``) and regenerated outputs (``check_outputs``), each
difference a ``Drift`` that names the input and what changed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.corpus.lock import (
    Fingerprinter,
    from_plain,
    output_checksums,
    record_digest,
    source_location,
)
from pipeline.errors import SourceError
from pipeline.sources.access import fingerprint_href, redact
from pipeline.sources.base import Scene
from pipeline.sources.settings import RetryPolicy


@dataclass(frozen=True)
class Drift:
    """One input or output that no longer matches the lock."""

    kind: str  # "asset" | "item" | "label" | "event" | "output"
    subject: str  # item id, product href or output path
    detail: str  # band, file or what changed
    expected: str
    found: str

    def describe(self) -> str:
        return (
            f"{self.kind} {self.subject} [{self.detail}]: locked {self.expected}, now {self.found}"
        )


class SourceDriftError(SourceError):
    """The sources no longer match a corpus lock; ``drift`` lists every difference."""

    def __init__(self, message: str, drift: Sequence[Drift]) -> None:
        super().__init__(message)
        self.drift = tuple(drift)


def check_inputs(lock: Mapping[str, Any], found: Sequence[Scene] = ()) -> list[Drift]:
    """Every locked asset, label product and event file whose fingerprint changed, could not be
    taken now, or was locked as unverifiable (its bytes were never pinned: no identity claim).
    Assets of items ``found`` again are fingerprinted as that scene reads them (signed URLs on
    Planetary Computer storage, which refuses unsigned requests)."""
    take = Fingerprinter(_locked_retry(lock), on_unverifiable="record")
    by_id = {s.item_id: s for s in found}
    drift = []
    for item in lock["items"]:
        scene = by_id.get(item["id"])
        for band, asset in item["assets"].items():
            location = source_location(asset["href"], lock["recipe"])
            now = take(fingerprint_href(scene, location) if scene else location, asset["href"])
            drift += _compare("asset", item["id"], f"{band} {redact(asset['href'])}", asset, now)
    for label in lock["labels"]:
        now = take(label["href"], label["href"])
        drift += _compare("label", label["href"], label["value_type"], label, now)
    for event in lock["events"]:
        for name, locked in event["files"].items():
            drift += _compare("event", event["href"], name, locked, take(name, name))
    return drift


def _locked_retry(lock: Mapping[str, Any]) -> RetryPolicy:
    """The retry policy of the locked recipe (the default for locks written without one)."""
    raw = lock["recipe"]["source"].get("retry")
    return from_plain(RetryPolicy, raw) if raw else RetryPolicy()


def check_items(lock: Mapping[str, Any], found: Sequence[Scene]) -> list[Drift]:
    """Locked items missing from the source, or whose normalized record changed."""
    by_id = {s.item_id: s for s in found}
    drift = []
    for item in lock["items"]:
        scene = by_id.get(item["id"])
        if scene is None:
            drift.append(Drift("item", item["id"], "record", "present", "missing upstream"))
        elif record_digest(scene) != item["record_sha256"]:
            drift.append(
                Drift(
                    "item",
                    item["id"],
                    "record",
                    item["record_sha256"][:12],
                    record_digest(scene)[:12],
                )
            )
    return drift


def check_outputs(lock: Mapping[str, Any], corpus: Path) -> list[Drift]:
    """Output files whose checksum differs from the lock, or that are missing or extra."""
    views = lock["recipe"]["output"].get("views", ())
    now = output_checksums(corpus, views)
    locked = lock["outputs"]
    drift = []
    for name in sorted(set(locked) | set(now)):
        expected, found = locked.get(name, "absent"), now.get(name, "absent")
        if expected != found:
            drift.append(Drift("output", name, "sha256", expected[:12], found[:12]))
    return drift


def _compare(
    kind: str, subject: str, detail: str, locked: Mapping[str, Any], now: Mapping[str, Any]
) -> list[Drift]:
    keys = (
        ("sha256", "size", "missing")
        if locked.get("sha256")
        else ("etag", "size", "missing", "request_sha256")
    )
    unpinned = any(_unverifiable(fp) for fp in (locked, now))
    if unpinned or any(locked.get(key) != now.get(key) for key in keys):
        return [Drift(kind, subject, detail, _short(locked), _short(now))]
    return []


def _unverifiable(fp: Mapping[str, Any]) -> str | None:
    """Why a fingerprint pins no bytes (``unreachable``: how earlier locks said it)."""
    return fp.get("unverifiable") or fp.get("unreachable")


def _short(fp: Mapping[str, Any]) -> str:
    if fp.get("sha256"):
        return f"sha256 {fp['sha256'][:12]} ({fp.get('size')} B)"
    if fp.get("missing"):
        return "missing"
    if fp.get("request_sha256"):
        return f"{fp['rendered_by']} request {fp['request_sha256'][:12]}"
    if reason := _unverifiable(fp):
        return f"unverifiable ({redact(reason)})"
    return f"etag {fp.get('etag')} ({fp.get('size')} B)"


def format_drift(drift: Sequence[Drift], limit: int = 50) -> str:
    lines = [d.describe() for d in drift[:limit]]
    if len(drift) > limit:
        lines.append(f"... and {len(drift) - limit} more")
    return "\n".join(lines)
