"""Plan the chips of a scene: the grid cells fully inside both the raster and the footprint."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
import shapely.geometry
from pyproj import Transformer

from pipeline.chips.grid import ChipGeometry, cells_within
from pipeline.errors import SourceError
from pipeline.sources.base import Scene

# the band whose grid places the chips: B02 (10 m) for S2; for S1 the first polarisation the
# scene has (single-polarisation and HH/HV scenes lack VH)
EXTENT_BANDS = {"s2": ("B02",), "s1": ("VH", "VV", "HV", "HH")}
MIN_FOOTPRINT_COVERAGE = 0.5  # share of the item footprint the raster extent must cover


@dataclass(frozen=True)
class PlannedChip:
    key: str
    item_id: str
    cell: ChipGeometry


def chip_key(item_id: str, cell: ChipGeometry) -> str:
    """Stable key: the scene id plus the grid column and row (like BigEarthNet patch names)."""
    return f"{item_id}_{cell.col}_{cell.row}"


def plan_scene(
    scene: Scene,
    aoi_bbox: tuple[float, float, float, float] | None = None,
    min_footprint_overlap: float = 0.5,
) -> list[PlannedChip]:
    """Cells inside the raster extent that the data footprint mostly covers (and in the AOI).

    Item footprints are approximate (simplified, rounded lon/lat), so a cell is kept when at
    least ``min_footprint_overlap`` of it lies in the footprint; the chip stage then measures
    the real nodata fraction of every chip.
    """
    to_utm = Transformer.from_crs(4326, scene.epsg, always_xy=True)
    footprint = reproject(shapely.geometry.shape(scene.geometry), to_utm)
    extent = _raster_extent(scene)
    check_raster_covers_footprint(scene, extent, footprint)
    if aoi_bbox is not None:
        extent = extent.intersection(reproject(shapely.box(*aoi_bbox).segmentize(0.01), to_utm))
    if extent.is_empty:
        return []
    planned = []
    for cell in cells_within(scene.epsg, extent.bounds):
        square = shapely.box(*cell.bounds)
        inside = extent.contains(square) if aoi_bbox is None else extent.intersects(square)
        if inside and footprint.intersection(square).area >= min_footprint_overlap * square.area:
            planned.append(PlannedChip(chip_key(scene.item_id, cell), scene.item_id, cell))
    return planned


def check_raster_covers_footprint(
    scene: Scene, extent: shapely.Geometry, footprint: shapely.Geometry
) -> None:
    """``SourceError`` when the raster (placed by the item's proj:epsg and proj:transform)
    does not cover the item's own footprint: its chips would be silently lost."""
    covered = footprint.intersection(extent).area / footprint.area if footprint.area else 0.0
    if covered >= MIN_FOOTPRINT_COVERAGE:
        return
    dx = extent.centroid.x - footprint.centroid.x
    dy = extent.centroid.y - footprint.centroid.y
    raise SourceError(
        f"scene {scene.item_id}: proj:epsg {scene.epsg} and proj:transform put the raster "
        f"{math.hypot(dx, dy) / 1000:.0f} km {_bearing(dx, dy)} of the item footprint "
        f"({covered:.0%} of the footprint covered); check the item's proj:epsg/proj:transform"
    )


def _bearing(dx: float, dy: float) -> str:
    names = ("east", "north-east", "north", "north-west", "west", "south-west", "south")
    return (*names, "south-east")[round(math.degrees(math.atan2(dy, dx)) / 45) % 8]


def reproject(geometry: shapely.Geometry, transformer: Transformer) -> shapely.Geometry:
    """``geometry`` with every vertex transformed (x, y order)."""
    return shapely.transform(
        geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
    )


def _raster_extent(scene: Scene) -> shapely.geometry.Polygon:
    """Raster bounds (scene CRS) of the finest band, from the item's proj:transform/shape."""
    band = next((b for b in EXTENT_BANDS[scene.sensor] if b in scene.assets), scene.bands[1])
    asset = scene.assets[band]
    if asset.transform is None or asset.shape is None:
        raise SourceError(
            f"scene {scene.item_id}: asset {band} has no proj:transform/proj:shape; "
            "the planner needs them to place chips"
        )
    a, _, c, _, e, f = asset.transform[:6]
    rows, cols = asset.shape
    return shapely.geometry.box(c, f + e * rows, c + a * cols, f)
