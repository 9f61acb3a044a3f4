"""Reprojection of shapely geometries between EPSG codes."""

from __future__ import annotations

import shapely
from pyproj import Transformer


def reproject(geometry: shapely.Geometry, src_epsg: int, dst_epsg: int) -> shapely.Geometry:
    """``geometry`` transformed from ``src_epsg`` to ``dst_epsg`` (x/y axis order)."""
    transformer = Transformer.from_crs(src_epsg, dst_epsg, always_xy=True)
    return shapely.transform(geometry, transformer.transform, interleaved=False)
