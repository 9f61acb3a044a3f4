"""Plan the chips of a scene: the grid cells fully inside both the raster and the footprint."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
import shapely.geometry
from pyproj import Transformer

from pipeline.chips.grid import ChipGeometry, cells_within
from pipeline.errors import SourceError
from pipeline.sources.base import Scene


@dataclass(frozen=True)
class PlannedChip:
    key: str
    item_id: str
    cell: ChipGeometry


def chip_key(item_id: str, cell: ChipGeometry) -> str:
    """Stable key: the scene id plus the grid column and row (like BigEarthNet patch names)."""
    return f"{item_id}_{cell.col}_{cell.row}"


def plan_scene(
    scene: Scene, aoi_bbox: tuple[float, float, float, float] | None = None
) -> list[PlannedChip]:
    """Cells inside the scene's raster extent and data footprint (and the AOI, if given)."""
    to_utm = Transformer.from_crs(4326, scene.epsg, always_xy=True)
    footprint = reproject(shapely.geometry.shape(scene.geometry), to_utm)
    area = footprint.intersection(_raster_extent(scene)).buffer(1e-6)
    if aoi_bbox is not None:
        area = area.intersection(reproject(shapely.box(*aoi_bbox).segmentize(0.01), to_utm))
    if area.is_empty:
        return []
    cells = cells_within(scene.epsg, area.bounds)
    return [
        PlannedChip(chip_key(scene.item_id, cell), scene.item_id, cell)
        for cell in cells
        if area.contains(shapely.geometry.box(*cell.bounds))
    ]


def reproject(geometry: shapely.Geometry, transformer: Transformer) -> shapely.Geometry:
    """``geometry`` with every vertex transformed (x, y order)."""
    return shapely.transform(
        geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
    )


def _raster_extent(scene: Scene) -> shapely.geometry.Polygon:
    """Raster bounds (scene CRS) of the finest band, from the item's proj:transform/shape."""
    asset = scene.assets[scene.bands[1]]  # B02 (10 m) for S2, VH for S1
    if asset.transform is None or asset.shape is None:
        raise SourceError(
            f"scene {scene.item_id}: asset {scene.bands[1]} has no proj:transform/proj:shape; "
            "the planner needs them to place chips"
        )
    a, _, c, _, e, f = asset.transform[:6]
    rows, cols = asset.shape
    return shapely.geometry.box(c, f + e * rows, c + a * cols, f)
