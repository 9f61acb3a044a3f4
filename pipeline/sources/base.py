"""The scene-source contract and the normalized scene record every source produces."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, astuple, dataclass, field
from datetime import datetime
from typing import Any, Protocol

S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
S1_BANDS = ("VV", "VH")
SENSOR_BANDS = {"s2": S2_BANDS, "s1": S1_BANDS}


@dataclass(frozen=True)
class BandValues:
    """What a band's pixel values are (the band contract; ``pipeline.sources.band_values``).

    ``unit``: S1 ``linear_power`` | ``linear_amplitude`` | ``db``; S2 ``dn``. The value in
    ``unit`` is ``raw * scale + offset`` (S2: reflectance = DN * scale + offset); ``nodata``
    is the raw value marking missing pixels. ``None``: not declared (the sensor default).
    """

    unit: str | None = None
    scale: float | None = None
    offset: float | None = None
    nodata: float | None = None

    def over(self, base: BandValues) -> BandValues:
        """These values where declared, ``base``'s elsewhere."""
        return BandValues(
            *(
                mine if mine is not None else theirs
                for mine, theirs in zip(astuple(self), astuple(base), strict=True)
            )
        )

    @property
    def declared(self) -> bool:
        return any(v is not None for v in astuple(self))


@dataclass(frozen=True)
class BandAsset:
    """One band's raster asset: where it is, when the item says so its grid, and what its
    values are (``values``: unit, scale, offset, nodata)."""

    href: str
    gsd: float | None = None
    shape: tuple[int, int] | None = None
    transform: tuple[float, ...] | None = None
    values: BandValues = field(default_factory=BandValues)


@dataclass(frozen=True)
class Scene:
    """A normalized scene record, the same whichever archive or provider it came from."""

    item_id: str
    collection: str
    sensor: str  # "s2" | "s1"
    platform: str
    datetime: datetime
    epsg: int
    bbox: tuple[float, float, float, float]  # EPSG:4326
    geometry: Mapping[str, Any]  # GeoJSON footprint, EPSG:4326
    assets: Mapping[str, BandAsset]  # normalized band name -> asset ("B02", "SCL", "VV", ...)
    cloud_cover: float | None = None
    processing_baseline: str | None = None
    orbit_state: str | None = None
    relative_orbit: int | None = None
    polarizations: tuple[str, ...] = ()
    instrument_mode: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # True when the provider already removed the S2 BOA_ADD_OFFSET from the pixels
    # (Earth Search ``earthsearch:boa_offset_applied``, Sentinel Hub ``harmonizeValues``).
    boa_offset_applied: bool = False

    @property
    def bands(self) -> tuple[str, ...]:
        return SENSOR_BANDS[self.sensor]

    def to_record(self) -> dict[str, Any]:
        """A flat row for ``scenes.parquet`` (nested values as JSON text)."""
        row = asdict(self)
        row["datetime"] = self.datetime.isoformat()
        for key in ("bbox", "geometry", "assets", "polarizations", "extra"):
            row[key] = json.dumps(row[key], sort_keys=True)
        return row

    @classmethod
    def from_record(cls, row: Mapping[str, Any]) -> Scene:
        assets = {
            name: BandAsset(
                href=a["href"],
                gsd=a["gsd"],
                shape=tuple(a["shape"]) if a["shape"] else None,
                transform=tuple(a["transform"]) if a["transform"] else None,
                values=BandValues(**(a.get("values") or {})),
            )
            for name, a in json.loads(row["assets"]).items()
        }
        return cls(
            item_id=row["item_id"],
            collection=row["collection"],
            sensor=row["sensor"],
            platform=row["platform"],
            datetime=datetime.fromisoformat(row["datetime"]),
            epsg=int(row["epsg"]),
            bbox=tuple(json.loads(row["bbox"])),
            geometry=json.loads(row["geometry"]),
            assets=assets,
            cloud_cover=_opt_float(row.get("cloud_cover")),
            processing_baseline=row.get("processing_baseline"),
            orbit_state=row.get("orbit_state"),
            relative_orbit=_opt_int(row.get("relative_orbit")),
            polarizations=tuple(json.loads(row["polarizations"])),
            instrument_mode=row.get("instrument_mode"),
            extra=json.loads(row["extra"]),
            boa_offset_applied=bool(row.get("boa_offset_applied") or False),
        )


def _opt_float(value: Any) -> float | None:
    return None if value is None or value != value else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None or value != value else int(value)


@dataclass(frozen=True)
class SearchQuery:
    """What to search for, already validated (see ``pipeline.config``)."""

    collections: tuple[str, ...]
    start: datetime
    end: datetime
    bbox: tuple[float, float, float, float] | None = None
    max_cloud_cover: float = 100.0


@dataclass(frozen=True)
class SkippedItem:
    """An item a source found but could not normalize (kept for the search report)."""

    item_id: str
    collection: str
    reason: str


@dataclass(frozen=True)
class SearchResult:
    """What one search found: normalized scenes, items it had to skip, and whether it stopped
    early on purpose (``source.max_items``) rather than at the end of the results."""

    scenes: tuple[Scene, ...]
    skipped: tuple[SkippedItem, ...] = ()
    truncated: bool = False


class SceneSource(Protocol):
    """Anything that can list scenes: a stac-geoparquet archive, a STAC API, Sentinel Hub."""

    @property
    def name(self) -> str: ...

    def search(self, query: SearchQuery) -> Iterable[Scene]: ...
