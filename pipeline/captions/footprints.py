"""``clm annotate``: caption records for chip footprints a user supplies, so the annotation
layer works on any chip set, not only on chips this pipeline cut.

Input: a vector file (GeoJSON, GeoPackage...) of square, axis-aligned footprints, one
feature per chip, with properties ``datetime`` (ISO 8601) and ``sensor`` (``s1``/``s2``),
and optionally ``key``, ``platform``, ``item_id``. Footprints in a geographic CRS are
projected to their UTM zone.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely

from pipeline.captions.record import build_record
from pipeline.captions.stage import locations_of
from pipeline.chips.grid import PIXEL_SIZE_M, ChipGeometry
from pipeline.config import RunConfig
from pipeline.errors import SourceError
from pipeline.labels.annotate import Annotator
from pipeline.sources.base import SENSOR_BANDS
from pipeline.storage import atomic_path

COLLECTION = {"s2": "sentinel-2-l2a", "s1": "sentinel-1-grd"}


def annotate_footprints(config: RunConfig, chips_path: Path, out: Path) -> Path:
    """Write one validated caption record per footprint of ``chips_path`` to ``out``."""
    chips = read_footprints(chips_path)
    annotator = Annotator.from_config(config.labels)
    locations = locations_of({c["cell"]: c["geometry"] for c in chips})
    with atomic_path(out) as tmp, tmp.open("w") as fh:
        for chip in chips:
            annotation = annotator.annotate(
                chip["geometry"], datetime.fromisoformat(chip["datetime"])
            )
            record = build_record(
                chip, SENSOR_BANDS[chip["sensor"]], locations[chip["cell"]], annotation
            )
            fh.write(json.dumps(record, sort_keys=True) + "\n")
    return out


def read_footprints(path: Path) -> list[dict[str, Any]]:
    if not Path(path).exists():
        raise SourceError(f"chip footprint file {path} does not exist")
    frame = gpd.read_file(path)
    if frame.empty:
        raise SourceError(f"{path} has no features; give one polygon per chip")
    if frame.crs is None:
        raise SourceError(
            f"{path} has no CRS; write the file with one (GeoJSON defaults to EPSG:4326)"
        )
    return [_chip(path, i, row, frame.crs) for i, row in enumerate(frame.itertuples(index=False))]


def _chip(path: Path, index: int, row: Any, crs: Any) -> dict[str, Any]:
    where = f"{path} feature {index}"
    props = row._asdict()
    for name in ("datetime", "sensor"):
        if not props.get(name):
            raise SourceError(
                f"{where}: property {name!r} is missing; every chip needs datetime and sensor"
            )
    if props["sensor"] not in SENSOR_BANDS:
        raise SourceError(f"{where}: sensor {props['sensor']!r} is not 's1' or 's2'")
    cell = footprint_cell(row.geometry, crs, where)
    key = str(props.get("key") or f"chip-{index:06d}")
    return {
        "key": key,
        "item_id": str(props.get("item_id") or ""),
        "collection": COLLECTION[props["sensor"]],
        "sensor": props["sensor"],
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


def footprint_cell(geometry: Any, crs: Any, where: str) -> ChipGeometry:
    """The chip square of an axis-aligned square footprint (projected to UTM if geographic)."""
    if geometry is None or geometry.is_empty:
        raise SourceError(f"{where}: empty geometry")
    if not geometry.is_valid:
        raise SourceError(
            f"{where}: invalid geometry ({shapely.is_valid_reason(geometry)}); fix it first"
        )
    series = gpd.GeoSeries([geometry], crs=crs)
    if series.crs.is_geographic:
        series = series.to_crs(series.estimate_utm_crs())
    epsg = series.crs.to_epsg()
    if epsg is None:
        raise SourceError(f"{where}: CRS {series.crs} has no EPSG code; reproject the footprints")
    minx, miny, maxx, maxy = series.iloc[0].bounds
    width, height = maxx - minx, maxy - miny
    if not math.isclose(width, height, rel_tol=0.02):
        raise SourceError(
            f"{where}: footprint is {width:.0f} x {height:.0f} m; chips must be squares"
        )
    pixels = max(1, round((width + height) / 2 / PIXEL_SIZE_M))
    return ChipGeometry(epsg, 0, 0, pixels=pixels, origin_x=minx, origin_y=miny)
