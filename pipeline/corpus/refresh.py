"""What an incremental refresh adds: the scenes and crisis events that appeared since the
last build, judged against that build's ``corpus.lock``.

An item is new when its id is not in the lock (whatever its timestamps: late arrivals
with an older ``updated``/``created`` are new too); a known item whose latest timestamp
is past the lock's watermark changed upstream and is reported, not rebuilt (``clm
rebuild --lock`` reports what changed). Crisis events are new when their source (EMS product,
GDACS feed, user event file) is not in the lock or its files changed (a feed that grew). Existing chips are never re-extracted: the chip stage keeps per-scene work files.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.corpus.lock import scene_stamp
from pipeline.sources.base import Scene
from pipeline.sources.select import report_path


@dataclass(frozen=True)
class RefreshPlan:
    new_items: tuple[str, ...]
    new_events: tuple[str, ...]  # observed-event product hrefs
    changed_upstream: tuple[str, ...]  # known item ids updated after the watermark
    watermark: str | None

    @property
    def is_empty(self) -> bool:
        return not self.new_items and not self.new_events

    def describe(self) -> str:
        if self.is_empty:
            return f"nothing new since the last build (watermark {self.watermark})"
        parts = [f"{len(self.new_items)} new scene(s)", f"{len(self.new_events)} new event(s)"]
        if self.changed_upstream:
            parts.append(f"{len(self.changed_upstream)} known item(s) changed upstream (kept)")
        return ", ".join(parts) + f" since watermark {self.watermark}"

    def to_dict(self) -> dict[str, Any]:
        """A small summary for XCom and logs."""
        return {
            "new_items": list(self.new_items),
            "new_events": list(self.new_events),
            "changed_upstream": list(self.changed_upstream),
            "watermark": self.watermark,
        }


def plan_refresh(
    lock: Mapping[str, Any], found: Sequence[Scene], events: Sequence[Mapping[str, Any]]
) -> RefreshPlan:
    """What is new in ``found`` (the scenes selected now) and ``events`` (``event_entries``
    of the run config) compared with ``lock``."""
    known = {item["id"]: item for item in lock["items"]}
    mark = lock.get("watermark")
    new = tuple(s.item_id for s in found if s.item_id not in known)
    changed = tuple(
        s.item_id
        for s in found
        if s.item_id in known and mark is not None and _after(scene_stamp(s), mark)
    )
    locked_events = {e["href"]: e["files"] for e in lock["events"]}
    new_events = tuple(e["href"] for e in events if locked_events.get(e["href"]) != e["files"])
    return RefreshPlan(new, new_events, changed, mark)


def _after(stamp: str, mark: str) -> bool:
    return datetime.fromisoformat(stamp) > datetime.fromisoformat(mark)


def merged_scenes(
    current: Sequence[Scene], previous: Sequence[Scene], dropped: Collection[str] = ()
) -> list[Scene]:
    """The scenes selected now, plus earlier ones the source no longer returns (a corpus never
    loses chips because an item vanished upstream), minus those the selection now rejects
    (e.g. superseded by a reprocessed product), in search order (datetime, item id)."""
    by_id = {s.item_id: s for s in previous if s.item_id not in dropped}
    by_id.update({s.item_id: s for s in current})
    return sorted(by_id.values(), key=lambda s: (s.datetime, s.item_id))


def rejected_ids(scenes_path: Path) -> set[str]:
    """Item ids the search stage found but its selection rules rejected (``selection.json``)."""
    report = report_path(scenes_path)
    if not report.is_file():
        return set()
    return {r["item_id"] for r in json.loads(report.read_text()).get("rejected", [])}
