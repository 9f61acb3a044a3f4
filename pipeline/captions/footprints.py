"""``clm annotate``: caption records for chip footprints a user supplies, so the annotation
layer works on any chip set, not only on chips this pipeline cut.

Input: a vector file (GeoJSON, GeoPackage...) of square footprints, one feature per chip,
with properties ``datetime`` (ISO 8601) and ``sensor`` (``s1``, ``sentinel-1``,
``Sentinel-1A``, ``S2B``...), and optionally ``key``, ``platform``, ``item_id``.

Footprints land on the chip grid (``pipeline.chips.grid``), all at once (vectorised):

- in a projected CRS, an axis-aligned square; on the grid when its corner is a multiple of
  its size, else a square of its own origin (e.g. BigEarthNet patches on their tile's grid);
- in a geographic CRS (lon/lat), the outline of a 1.2 km grid cell of a UTM zone: the grid
  of ``epsg`` when given, else the first of the footprint's own zone, the zone west of it
  and the zone east of it whose grid it matches to ``SNAP_TOLERANCE_M`` (chips near a zone
  boundary are often cut from a tile of the neighbouring zone). It is snapped to that cell,
  so lon/lat and UTM input give identical records; anything else is refused, naming the
  feature.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS, Transformer

from pipeline.captions.stage import caption_records
from pipeline.chips.grid import CHIP_SIZE_M, PIXEL_SIZE_M, ChipGeometry
from pipeline.config import RunConfig
from pipeline.errors import SourceError
from pipeline.storage import atomic_path

COLLECTION = {"s2": "sentinel-2-l2a", "s1": "sentinel-1-grd"}
SNAP_TOLERANCE_M = 0.5  # lon/lat written with 7 decimals is within 1.1 cm of the corner
_SENSOR = re.compile(r"^(?:s|sentinel)[-_ ]?([12])[a-d]?$", re.IGNORECASE)


def annotate_footprints(
    config: RunConfig, chips_path: Path, out: Path, epsg: int | None = None
) -> Path:
    """Write one validated caption record per footprint of ``chips_path`` to ``out``, through
    the caption stage's parallel path (static labels a block of cells per task)."""
    chips = read_footprints(chips_path, epsg)
    lines = caption_records(config, chips, cache_dir=None)
    with atomic_path(out) as tmp, tmp.open("w") as fh:
        fh.writelines(lines)
    return out


def read_footprints(path: Path, epsg: int | None = None) -> list[dict[str, Any]]:
    """One chip dict per feature of ``path``, its footprint snapped to a grid cell."""
    if not Path(path).exists():
        raise SourceError(f"chip footprint file {path} does not exist")
    frame = gpd.read_file(path)
    if frame.empty:
        raise SourceError(f"{path} has no features; give one polygon per chip")
    if frame.crs is None:
        raise SourceError(
            f"{path} has no CRS; write the file with one (GeoJSON defaults to EPSG:4326)"
        )
    cells = footprint_cells(frame.geometry.values, frame.crs, str(path), epsg)
    rows = frame.drop(columns=frame.geometry.name).to_dict("records")
    return [_chip(f"{path} feature {i}", i, row, cells[i]) for i, row in enumerate(rows)]


def sensor_of(text: Any) -> str | None:
    """``s1``/``s2`` for the common spellings (s1, S2, sentinel-1, Sentinel-1A, S2B...)."""
    match = _SENSOR.match(str(text).strip())
    return f"s{match.group(1)}" if match else None


def _chip(where: str, index: int, props: dict[str, Any], cell: ChipGeometry) -> dict[str, Any]:
    for name in ("datetime", "sensor"):
        if not props.get(name):
            raise SourceError(
                f"{where}: property {name!r} is missing; every chip needs datetime and sensor"
            )
    sensor = sensor_of(props["sensor"])
    if sensor is None:
        raise SourceError(
            f"{where}: sensor {props['sensor']!r} is not Sentinel-1 or Sentinel-2; "
            "use s1/s2 (or sentinel-1, Sentinel-2A...)"
        )
    return {
        "key": str(props.get("key") or f"chip-{index:06d}"),
        "item_id": str(props.get("item_id") or ""),
        "collection": COLLECTION[sensor],
        "sensor": sensor,
        "platform": str(props.get("platform") or ""),
        "datetime": _utc(props["datetime"], where),
        "cell": cell.cell_id,
        "geometry": cell,
        "cloud_fraction": 0.0,
        "nodata_fraction": 0.0,
        "pixel_sha256": "",
    }


def _utc(value: Any, where: str) -> str:
    try:
        when = (
            value
            if isinstance(value, datetime)
            else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        )
    except ValueError as exc:
        raise SourceError(f"{where}: datetime {value!r} is not ISO 8601") from exc
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()


def footprint_cells(
    geometries: Any, crs: Any, where: str, epsg: int | None = None
) -> list[ChipGeometry]:
    """The grid cell of every footprint (see the module docstring), vectorised."""
    geoms = np.asarray(geometries, dtype=object)
    _check_geometries(geoms, where)
    crs = CRS.from_user_input(crs)
    if crs.is_geographic:
        return _snap_lonlat(geoms, crs, where, epsg)
    if crs.to_epsg() is None:
        raise SourceError(f"{where}: CRS {crs.name} has no EPSG code; reproject the footprints")
    return _projected_squares(shapely.bounds(geoms), crs.to_epsg(), where)


def footprint_cell(geometry: Any, crs: Any, where: str) -> ChipGeometry:
    """The grid cell of one footprint (``footprint_cells`` for many)."""
    return footprint_cells([geometry], crs, where)[0]


def _check_geometries(geoms: np.ndarray, where: str) -> None:
    bad = np.flatnonzero(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if bad.size:
        raise SourceError(f"{where} feature {bad[0]}: empty geometry")
    invalid = np.flatnonzero(~shapely.is_valid(geoms))
    if invalid.size:
        i = invalid[0]
        reason = shapely.is_valid_reason(geoms[i])
        raise SourceError(f"{where} feature {i}: invalid geometry ({reason}); fix it first")


def _projected_squares(bounds: np.ndarray, epsg: int, where: str) -> list[ChipGeometry]:
    width, height = bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1]
    odd = np.flatnonzero(~np.isclose(width, height, rtol=0.02))
    if odd.size:
        i = odd[0]
        raise SourceError(
            f"{where} feature {i}: footprint is {width[i]:.0f} x {height[i]:.0f} m; "
            "chips must be squares"
        )
    pixels = np.maximum(1, np.round((width + height) / 2 / PIXEL_SIZE_M)).astype(int)
    cells = []
    for (minx, miny, _, _), n in zip(bounds, pixels, strict=True):
        size = n * PIXEL_SIZE_M
        col, row = round(minx / size), round(miny / size)
        if abs(col * size - minx) < 1e-6 and abs(row * size - miny) < 1e-6:
            cells.append(ChipGeometry(epsg, col, row, pixels=int(n)))
        else:
            cells.append(ChipGeometry(epsg, 0, 0, pixels=int(n), origin_x=minx, origin_y=miny))
    return cells


def _snap_lonlat(geoms: np.ndarray, crs: CRS, where: str, epsg: int | None) -> list[ChipGeometry]:
    """Snap lon/lat outlines of grid cells to their cell in the first UTM zone that fits."""
    centres = shapely.get_coordinates(shapely.centroid(geoms))
    own = utm_zone_epsg(centres[:, 0], centres[:, 1])
    tries = [np.full(len(geoms), epsg)] if epsg else [own, _neighbour(own, -1), _neighbour(own, 1)]
    found: dict[int, ChipGeometry] = {}
    worst = np.full(len(geoms), np.inf)
    for zones in tries:
        todo = np.array([i for i in range(len(geoms)) if i not in found], dtype=int)
        for zone in np.unique(zones[todo]) if todo.size else []:
            idx = todo[zones[todo] == zone]
            cells, offset = _cells_in_zone(geoms[idx], crs, int(zone))
            worst[idx] = np.minimum(worst[idx], offset)
            found.update({int(i): c for i, c in zip(idx, cells, strict=True) if c is not None})
    missing = [i for i in range(len(geoms)) if i not in found]
    if missing:
        i = missing[0]
        tried = ", ".join(f"EPSG:{int(t[i])}" for t in tries)
        raise SourceError(
            f"{where} feature {i}: not the lon/lat outline of a 1.2 km grid cell of {tried} "
            f"(off by {worst[i]:.1f} m); give chip footprints in their projected CRS, or pass "
            "--epsg with the zone whose grid they were cut on"
        )
    return [found[i] for i in range(len(geoms))]


def _cells_in_zone(
    geoms: np.ndarray, crs: CRS, zone: int
) -> tuple[list[ChipGeometry | None], np.ndarray]:
    """The grid cell each outline matches in ``zone`` (None if none) and how far off it is."""
    to_utm = Transformer.from_crs(crs, zone, always_xy=True)
    projected = shapely.transform(
        geoms, lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1]))
    )
    bounds = shapely.bounds(projected)
    corner = np.round(bounds[:, :2] / CHIP_SIZE_M) * CHIP_SIZE_M
    grid = np.column_stack([corner, corner + CHIP_SIZE_M])
    offset = np.abs(bounds - grid).max(axis=1)
    area_ok = np.isclose(shapely.area(projected), CHIP_SIZE_M**2, rtol=1e-3)
    fits = (offset <= SNAP_TOLERANCE_M) & area_ok
    cells = [
        ChipGeometry(zone, round(c[0] / CHIP_SIZE_M), round(c[1] / CHIP_SIZE_M)) if ok else None
        for c, ok in zip(np.round(corner / CHIP_SIZE_M) * CHIP_SIZE_M, fits, strict=True)
    ]
    return cells, np.where(area_ok, offset, np.inf)


def utm_zone_epsg(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """EPSG code of the standard UTM zone (326xx north, 327xx south) of each lon/lat."""
    zone = np.clip(np.floor((np.asarray(lon) + 180.0) / 6.0).astype(int) + 1, 1, 60)
    return np.where(np.asarray(lat) >= 0, 32600, 32700) + zone


def _neighbour(zones: np.ndarray, step: int) -> np.ndarray:
    base = zones - zones % 100
    return base + (zones % 100 - 1 + step) % 60 + 1
