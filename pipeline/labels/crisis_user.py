"""User-supplied crisis events: a GeoPackage / GeoJSON with one or more polygons per event.

Required fields: ``hazard`` (flood | wildfire | earthquake) and ``event_date`` (ISO 8601);
optional ``event_id`` (features sharing it are dissolved into one event) and ``name``.
Invalid polygons raise, or with ``on_invalid="warn"`` are repaired (``make_valid``) and
counted in the event's properties.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import geopandas as gpd
import shapely

from pipeline.errors import SourceError
from pipeline.labels.base import CrisisEvent

log = logging.getLogger(__name__)
HAZARDS = ("flood", "wildfire", "earthquake")


def read_user_events(path: str | Path, on_invalid: str = "error") -> list[CrisisEvent]:
    frame = _read(Path(path))
    events = []
    for event_id, group in frame.groupby("event_id", sort=True):
        events.append(_event(Path(path), str(event_id), group, on_invalid))
    return events


def _read(path: Path) -> gpd.GeoDataFrame:
    if not path.exists():
        raise SourceError(f"user event file {path} does not exist")
    frame = gpd.read_file(path)
    if frame.empty:
        raise SourceError(f"user event file {path} has no features")
    if frame.crs is None:
        raise SourceError(f"user event file {path} has no CRS; save it with one (e.g. EPSG:4326)")
    missing = [c for c in ("hazard", "event_date") if c not in frame.columns]
    if missing:
        raise SourceError(f"user event file {path} lacks field(s) {missing}; see docs/labels.md")
    bad = sorted(set(frame["hazard"]) - set(HAZARDS))
    if bad:
        raise SourceError(
            f"user event file {path}: unknown hazard(s) {bad}; use one of {list(HAZARDS)}"
        )
    if "event_id" not in frame.columns:
        frame["event_id"] = [f"{path.stem}_{i}" for i in range(len(frame))]
    return frame.to_crs(4326)


def _event(path: Path, event_id: str, group: gpd.GeoDataFrame, on_invalid: str) -> CrisisEvent:
    invalid = int((~group.geometry.is_valid).sum())
    if invalid and on_invalid != "warn":
        raise SourceError(
            f"user event file {path}: event {event_id} has {invalid} invalid polygon(s); "
            "fix them or set on_invalid: warn to repair them with make_valid"
        )
    if invalid:
        log.warning(
            "user event file %s: repaired %d invalid polygon(s) of %s", path, invalid, event_id
        )
    geometry = shapely.union_all(shapely.make_valid(group.geometry.values))
    hazards, dates = set(group["hazard"]), set(group["event_date"].astype(str))
    if len(hazards) > 1 or len(dates) > 1:
        raise SourceError(
            f"user event file {path}: event {event_id} mixes hazards {hazards} or dates {dates}"
        )
    name = str(group["name"].iloc[0]) if "name" in group.columns else event_id
    return CrisisEvent(
        event_id=event_id,
        source="user",
        hazard=hazards.pop(),
        event_date=_utc(dates.pop(), path),
        geometry=geometry,
        name=name,
        properties={"repaired_polygons": invalid, "file": path.name},
    )


def _utc(text: str, path: Path) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise SourceError(f"user event file {path}: event_date {text!r} is not ISO 8601") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)
