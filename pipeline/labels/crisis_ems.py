"""Copernicus EMS rapid mapping delineation / grading products -> ``CrisisEvent``.

Layer names follow the EMS file naming convention, legacy
(``EMSR332_01VERONA_DEL_MONIT01_v1_observed_event_a``) or 2023+
(``EMSR9001_AOI01_DEL_PRODUCT_observedEventA_r1_v1``).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import Transformer

from pipeline.chips.grid import ChipGeometry
from pipeline.errors import ConfigError, SourceError
from pipeline.labels import warnings as label_warnings
from pipeline.labels.base import CrisisEvent

_LEGACY = re.compile(
    r"^(?P<code>EMSR\d+)_(?P<area_id>\d{2})(?P<locality>[A-Za-z0-9]+?)_(?P<product>REF|FEP|DEL|GRA)"
    r"(?:_MONIT(?P<monit>\d{2}))?_v(?P<version>\d+)_(?P<feature>[a-z_]+?)(?:_(?P<geom>[apl]))?$"
)
_MODERN = re.compile(
    r"^(?P<code>EMSR\d+)_AOI(?P<area_id>\d{2})_(?P<product>REF|FEP|DEL|GRA)"
    r"_(?:PRODUCT|MONIT(?P<monit>\d{2}))_(?P<feature>[A-Za-z]+?)(?P<geom>[APL])?"
    r"_r(?P<release>\d+)_v(?P<version>\d+)$"
)
_HAZARD_WORDS = {
    "flood": "flood",
    "fl": "flood",
    "earthquake": "earthquake",
    "eq": "earthquake",
    "wildfire": "wildfire",
    "wf": "wildfire",
    "forest fire": "wildfire",
}


@dataclass(frozen=True)
class EmsProductName:
    """The parts of an EMS vector layer name."""

    code: str  # "EMSR332"
    area_id: str  # "01"
    locality: str  # "VERONA" (legacy names only)
    product: str  # REF | FEP | DEL | GRA
    monitoring: int | None  # 1 for MONIT01, None for the first product
    version: int
    release: int
    feature: str  # "observed_event" or "observedEvent"
    legacy: bool

    @property
    def event_id(self) -> str:
        """``EMSR332_01VERONA`` (legacy) or ``EMSR9001_AOI01`` (2023+)."""
        area = f"{self.area_id}{self.locality}" if self.legacy else f"AOI{self.area_id}"
        return f"{self.code}_{area}"

    @property
    def product_id(self) -> str:
        """The layer name without its feature part, e.g. ``EMSR332_01VERONA_DEL_MONIT01_v1``."""
        if self.legacy:
            monit = f"_MONIT{self.monitoring:02d}" if self.monitoring else ""
            return f"{self.event_id}_{self.product}{monit}_v{self.version}"
        phase = f"MONIT{self.monitoring:02d}" if self.monitoring else "PRODUCT"
        return f"{self.event_id}_{self.product}_{phase}_r{self.release}_v{self.version}"

    def source_table_name(self) -> str:
        """The layer name of this product's source table."""
        if self.legacy:
            return f"{self.product_id}_source"
        head, tail = self.product_id.rsplit(f"_r{self.release}_", 1)
        return f"{head}_source_r{self.release}_{tail}"


def parse_ems_name(path: str | Path) -> EmsProductName:
    """Parse an EMS layer file name (any extension) into its parts."""
    stem = Path(path).name.split(".")[0]
    match = _LEGACY.match(stem) or _MODERN.match(stem)
    if match is None:
        raise SourceError(
            f"{Path(path).name!r} is not an EMS rapid mapping layer name; expected e.g. "
            "EMSR332_01VERONA_DEL_v1_observed_event_a or "
            "EMSR9001_AOI01_DEL_PRODUCT_observedEventA_r1_v1 (do not rename EMS files)"
        )
    parts = match.groupdict()
    return EmsProductName(
        code=parts["code"],
        area_id=parts["area_id"],
        locality=parts.get("locality") or "",
        product=parts["product"],
        monitoring=int(parts["monit"]) if parts["monit"] else None,
        version=int(parts["version"]),
        release=int(parts.get("release") or 1),
        feature=parts["feature"],
        legacy=match.re is _LEGACY,
    )


def hazard_from_text(value: Any) -> str | None:
    """'5-Flood' / 'Flood' / 'FL' -> 'flood'; wildfire and earthquake likewise; else None."""
    if value is None:
        return None
    text = re.sub(r"^\s*\d+\s*[-–]\s*", "", str(value)).strip().lower()
    return _HAZARD_WORDS.get(text)


def _as_utc(value: datetime | date | str, what: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise SourceError(f"{what}={value!r} is not an ISO date; use e.g. 2018-10-29") from None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _load_metadata(metadata: Mapping[str, Any] | str | Path | None) -> dict[str, Any]:
    if metadata is None or isinstance(metadata, Mapping):
        return dict(metadata or {})
    try:
        return json.loads(Path(metadata).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SourceError(f"cannot read EMS activation metadata {metadata}: {exc}") from exc


def _hazard(frame: gpd.GeoDataFrame, meta: dict[str, Any], path: Path) -> str:
    found = {h for v in frame.get("event_type", []) if (h := hazard_from_text(v))}
    meta_hazard = hazard_from_text(meta.get("hazard") or meta.get("category"))
    if len(found) > 1:
        raise SourceError(f"{path.name} mixes event types {sorted(found)}; split the layer")
    if found and meta_hazard and meta_hazard not in found:
        raise SourceError(
            f"{path.name} has event_type {found.pop()} but the metadata says {meta_hazard}; "
            "pass the metadata of this activation"
        )
    hazard = found.pop() if found else meta_hazard
    if hazard is None:
        raise SourceError(
            f"{path.name}: no flood, wildfire or earthquake event_type; pass metadata="
            "{'hazard': 'flood'} if the layer is one of these"
        )
    return hazard


def _dissolve(frame: gpd.GeoDataFrame, path: Path) -> Any:
    if frame.crs is None:
        raise SourceError(f"{path.name} has no CRS; restore its .prj (EMS layers are EPSG:4326)")
    raw = frame.to_crs(4326).geometry.dropna().to_numpy()
    invalid = int((~shapely.is_valid(raw)).sum())
    if invalid:
        label_warnings.warn(
            "invalid geometry repaired", f"{path.name}: {invalid} polygon(s) made valid"
        )
    geoms = shapely.make_valid(raw)
    parts = shapely.get_parts(shapely.get_parts(geoms))
    polygons = parts[shapely.get_type_id(parts) == 3]
    if polygons.size == 0:
        raise SourceError(f"{path.name} holds no polygons; pass an observed event area layer (_a)")
    return shapely.union_all(polygons)


def _parse_source_row(src_date: Any, src_time: Any) -> datetime | None:
    day = re.fullmatch(r"(\d{2})/(\d{2})/(\d{4})", str(src_date).strip())
    iso = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", str(src_date).strip())
    if day:
        d, m, y = (int(x) for x in day.groups())
    elif iso:
        y, m, d = (int(x) for x in iso.groups())
    else:
        return None
    clock = re.search(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", str(src_time))
    hh, mm, ss = (int(x or 0) for x in clock.groups()) if clock else (0, 0, 0)
    return datetime(y, m, d, hh, mm, ss, tzinfo=UTC)


def _check_table_name(table: Path, name: EmsProductName) -> None:
    try:
        other = parse_ems_name(table)
    except SourceError:
        return
    key = ("code", "area_id", "locality", "product", "monitoring")
    if any(getattr(other, k) != getattr(name, k) for k in key):
        raise SourceError(
            f"source table {table.name} belongs to {other.product_id}, not {name.product_id}; "
            f"pass {name.source_table_name()}.dbf"
        )


def _row_dates(rows: pd.DataFrame) -> list[datetime]:
    times = rows["source_tm"] if "source_tm" in rows else [""] * len(rows)
    found = (_parse_source_row(d, t) for d, t in zip(rows["src_date"], times, strict=True))
    return sorted(d for d in found if d is not None)


def _date_from_source_table(
    table: Path, name: EmsProductName, src_ids: set[int]
) -> tuple[datetime, dict[str, str]]:
    """Earliest post-event image date (the sources the observed event cites, if listed)."""
    _check_table_name(table, name)
    rows = pyogrio.read_dataframe(table, read_geometry=False)
    if "src_date" not in rows:
        raise SourceError(f"{table.name} has no src_date column; is it an EMS source table?")
    phase = rows.get("eventphase", pd.Series("", index=rows.index)).astype(str).str.lower()
    cited = rows["src_id"].astype(int).isin(src_ids) if "src_id" in rows and src_ids else None
    if cited is not None and not cited.any():
        raise SourceError(
            f"source table {table.name} lists none of the source ids {sorted(src_ids)} the "
            f"observed event cites; pass {name.source_table_name()}.dbf of the same product"
        )
    post_dates = _row_dates(rows[cited] if cited is not None else rows[phase == "post-event"])
    if not post_dates:
        raise SourceError(f"source table {table.name} has no dated post-event image")
    extra = {"post_event_image_date": post_dates[0].isoformat()}
    pre_dates = _row_dates(rows[phase == "pre-event"])
    if pre_dates:
        extra["pre_event_image_date"] = pre_dates[-1].isoformat()
    return post_dates[0], extra


def _event_date(
    event_date: datetime | date | str | None,
    meta: dict[str, Any],
    source_table: str | Path | None,
    name: EmsProductName,
    src_ids: set[int],
) -> tuple[datetime, dict[str, str]]:
    if event_date is not None:
        return _as_utc(event_date, "event_date"), {"event_date_source": "argument"}
    when_text = meta.get("event_date") or meta.get("eventTime")  # EMS activation API: eventTime
    if when_text:
        return _as_utc(when_text, "metadata event date"), {"event_date_source": "metadata"}
    if source_table is not None:
        when, extra = _date_from_source_table(Path(source_table), name, src_ids)
        return when, {"event_date_source": "source_table:post-event image", **extra}
    raise SourceError(
        f"no event date for {name.product_id}: give event_date, metadata (the activation JSON, "
        f"with 'event_date' or 'eventTime') or source_table (the product's "
        f"{name.source_table_name()}.dbf)"
    )


def _src_ids(frame: pd.DataFrame) -> set[int]:
    if "dmg_src_id" not in frame:
        return set()
    return {int(v) for v in frame["dmg_src_id"].dropna()}


def ems_event_date(product: Any) -> tuple[datetime, dict[str, str]]:
    """The event date of a configured EMS product (``pipeline.config.EmsProduct``) and where
    it came from, reading only attribute tables (no geometry): cheap enough for config load."""
    path = Path(product.observed_event)
    name = parse_ems_name(path)
    src_ids: set[int] = set()
    if product.event_date is None and product.source_table is not None:
        try:
            attributes = pyogrio.read_dataframe(path, read_geometry=False)
        except Exception as exc:
            raise SourceError(f"cannot read EMS layer {path}: {exc}") from exc
        src_ids = _src_ids(attributes)
    meta = _load_metadata(product.metadata)
    return _event_date(product.event_date, meta, product.source_table, name, src_ids)


def read_ems_observed_event(
    shp_path: str | Path,
    *,
    event_date: datetime | date | str | None = None,
    metadata: Mapping[str, Any] | str | Path | None = None,
    source_table: str | Path | None = None,
) -> CrisisEvent:
    """Read one EMS observed event layer into a dissolved ``CrisisEvent`` (EPSG:4326).

    The event date comes from ``event_date``, else ``metadata`` (a dict or activation
    JSON path with keys code, hazard/category, event_date), else ``source_table``
    (the earliest post-event image: the flood was seen by then).
    """
    path = Path(shp_path)
    name = parse_ems_name(path)
    if name.feature.replace("_", "").lower() != "observedevent":
        raise SourceError(f"{path.name} is a {name.feature} layer; pass the observed event layer")
    meta = _load_metadata(metadata)
    if meta.get("code") and str(meta["code"]).upper() != name.code:
        raise SourceError(f"metadata is for {meta['code']}, not {name.code}; pass the right JSON")
    try:
        frame = gpd.read_file(path, engine="pyogrio")
    except Exception as exc:
        raise SourceError(f"cannot read EMS layer {path}: {exc}") from exc
    when, date_props = _event_date(event_date, meta, source_table, name, _src_ids(frame))
    return CrisisEvent(
        event_id=name.event_id,
        source="copernicus-ems",
        hazard=_hazard(frame, meta, path),
        event_date=when,
        geometry=_dissolve(frame, path),
        name=f"{name.code} {name.locality or 'AOI' + name.area_id}".strip(),
        properties=_properties(name, frame, path, date_props),
    )


def _properties(
    name: EmsProductName, frame: gpd.GeoDataFrame, path: Path, date_props: dict[str, str]
) -> dict[str, Any]:
    subtypes = sorted({str(v) for v in frame.get("obj_desc", [])})
    return {
        "code": name.code,
        "area_id": name.area_id,
        "locality": name.locality,
        "product": name.product,
        "monitoring": name.monitoring,
        "release": name.release,
        "version": name.version,
        "product_id": name.product_id,
        "layer": path.name,
        "obj_desc": subtypes,
        "n_features": len(frame),
        **date_props,
    }


class _ProjectedEvents:
    """Event geometries projected to a chip CRS, split into parts with an STRtree."""

    def __init__(self, maxsize: int = 64) -> None:
        self._items: OrderedDict[tuple[int, int], tuple[Any, np.ndarray, Any]] = OrderedDict()
        self._maxsize = maxsize

    def get(self, geometry: Any, epsg: int) -> tuple[np.ndarray, Any]:
        key = (id(geometry), epsg)
        item = self._items.get(key)
        if item is None or item[0] is not geometry:
            tr = Transformer.from_crs(4326, epsg, always_xy=True)
            projected = shapely.transform(
                geometry, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))
            )
            parts = shapely.get_parts(projected)
            item = (geometry, parts, shapely.STRtree(parts))
            self._items[key] = item
            if len(self._items) > self._maxsize:
                self._items.popitem(last=False)
        return item[1], item[2]


_PROJECTED = _ProjectedEvents()


def affected_fraction(event: CrisisEvent, chip: ChipGeometry) -> float:
    """Area of (event polygon ∩ chip square) / chip area, computed in the chip CRS."""
    parts, tree = _PROJECTED.get(event.geometry, chip.epsg)
    square = shapely.box(*chip.bounds)
    hits = tree.query(square, predicate="intersects")
    if hits.size == 0:
        return 0.0
    area = float(shapely.area(shapely.intersection(parts[hits], square)).sum())
    return min(max(area / square.area, 0.0), 1.0)


def calendar_days(event_date: datetime, acquired: datetime) -> int:
    """Whole UTC calendar days from the event's date to the acquisition's date: 0 on the day
    of the event (whatever the hour of either), 1 on the next calendar day, -1 the day before.
    Event times are approximate in every crisis source, so dates, not hours, are compared."""
    when = _as_utc(event_date, "event_date").date()
    return (_as_utc(acquired, "acquired").date() - when).days


def crisis_phase(event: CrisisEvent, acquired: datetime, window_days: int) -> str | None:
    """'post' from the event's UTC date to ``window_days`` calendar days after it, 'pre' up to
    ``window_days`` days before it, else None (see ``calendar_days``)."""
    if window_days < 0:
        raise ConfigError(f"window_days={window_days} must be >= 0")
    days = calendar_days(event.event_date, acquired)
    if 0 <= days <= window_days:
        return "post"
    if -window_days <= days < 0:
        return "pre"
    return None
