"""GDACS alerts (GeoRSS feed) as crisis events.

GDACS gives an event's time, epicentre/centroid and severity, not a delineation of the
affected area, so the affected area is approximated by a disc of ``radius_km`` around the
alert point (per hazard, configurable). Event types outside the label space (tropical
cyclones, droughts, volcanoes) are skipped and counted.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path

import shapely
from pyproj import CRS, Transformer

from pipeline.errors import SourceError
from pipeline.labels.base import CrisisEvent

log = logging.getLogger(__name__)
NS = {
    "gdacs": "http://www.gdacs.org",
    "geo": "http://www.w3.org/2003/01/geo/wgs84_pos#",
    "georss": "http://www.georss.org/georss",
}
HAZARD_OF_TYPE = {"EQ": "earthquake", "FL": "flood", "WF": "wildfire"}
DEFAULT_RADIUS_KM = {"earthquake": 20.0, "flood": 10.0, "wildfire": 5.0}


@dataclass(frozen=True)
class GdacsFeed:
    events: tuple[CrisisEvent, ...]
    skipped: Mapping[str, int] = field(default_factory=dict)  # event type -> count


def read_gdacs_feed(path: str | Path, radius_km: Mapping[str, float] | None = None) -> GdacsFeed:
    """Parse a GDACS GeoRSS capture into crisis events (one per alert item)."""
    radii = {**DEFAULT_RADIUS_KM, **(radius_km or {})}
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise SourceError(f"GDACS feed {path} is not readable GeoRSS XML: {exc}") from exc
    events: list[CrisisEvent] = []
    skipped: dict[str, int] = {}
    for item in root.iter("item"):
        kind = _text(item, "gdacs:eventtype", path)
        hazard = HAZARD_OF_TYPE.get(kind)
        if hazard is None:
            skipped[kind] = skipped.get(kind, 0) + 1
            continue
        events.append(_event(item, kind, hazard, radii[hazard], path))
    if skipped:
        log.warning("GDACS feed %s: skipped event types outside the label space: %s", path, skipped)
    return GdacsFeed(tuple(events), skipped)


def _text(item: ET.Element, tag: str, path: str | Path) -> str:
    node = item.find(tag, NS)
    if node is None or not (node.text or "").strip():
        raise SourceError(f"GDACS feed {path}: an item lacks <{tag}>; is this a GDACS feed?")
    return node.text.strip()  # type: ignore[union-attr]


def _event(
    item: ET.Element, kind: str, hazard: str, radius_km: float, path: str | Path
) -> CrisisEvent:
    lat = float(_text(item, "geo:Point/geo:lat", path))
    lon = float(_text(item, "geo:Point/geo:long", path))
    event_id = (
        f"GDACS_{kind}{_text(item, 'gdacs:eventid', path)}_{_text(item, 'gdacs:episodeid', path)}"
    )
    name_node = item.find("gdacs:eventname", NS)
    return CrisisEvent(
        event_id=event_id,
        source="gdacs",
        hazard=hazard,
        event_date=parsedate_to_datetime(_text(item, "gdacs:fromdate", path)),
        geometry=disc(lon, lat, radius_km),
        name=(name_node.text or "").strip()
        if name_node is not None and name_node.text
        else event_id,
        properties={
            "alert_level": _text(item, "gdacs:alertlevel", path),
            "country": (item.findtext("gdacs:country", "", NS) or "").strip(),
            "severity": (item.findtext("gdacs:severity", "", NS) or "").strip(),
            "radius_km": radius_km,
            "area_is_approximate": True,
        },
    )


def disc(lon: float, lat: float, radius_km: float) -> shapely.Polygon:
    """A geodesic disc around (lon, lat) as a lon/lat polygon (via an azimuthal projection)."""
    local = CRS.from_proj4(f"+proj=aeqd +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m")
    to_ll = Transformer.from_crs(local, 4326, always_xy=True)
    circle = shapely.Point(0, 0).buffer(radius_km * 1000.0, quad_segs=32)
    xs, ys = to_ll.transform(*circle.exterior.xy)
    return shapely.Polygon(zip(xs, ys, strict=True))
