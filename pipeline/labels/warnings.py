"""Counted label warnings: problems that were handled (skipped, repaired, treated as nodata)
rather than raised, so they are recorded and reported instead of passing silently."""

from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger("pipeline.labels")
_COUNTS: Counter[str] = Counter()


def warn(kind: str, detail: str) -> None:
    """Count a warning of ``kind`` (logged the first time each detail is seen)."""
    key = f"{kind}: {detail}"
    if key not in _COUNTS:
        log.warning(key)
    _COUNTS[key] += 1


def snapshot() -> dict[str, int]:
    return dict(sorted(_COUNTS.items()))


def reset() -> None:
    _COUNTS.clear()
