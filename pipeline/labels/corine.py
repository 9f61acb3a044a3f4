"""CORINE Land Cover label source: the EEA 100 m raster or the vector product.

Both return ``ClassFractions`` keyed by CLC level-3 code (111..523). EEA legend
values that are not one of the 44 classes (grid codes 48 NODATA, 49 unclassified
land, 50 unclassified water, 255 unclassified; CLC codes 999, 990, 995) count as
nodata, as do pixels or areas outside the product.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from pyproj import CRS
from rasterio.warp import transform_bounds

from pipeline.chips.grid import ChipGeometry
from pipeline.errors import ConfigError, SourceError
from pipeline.labels.base import ClassFractions, report_warnings
from pipeline.labels.raster_blocks import blocks_of
from pipeline.labels.raster_fractions import as_class_fractions, block_fractions
from pipeline.labels.taxonomy import clc_classes

VALUE_TYPES = ("grid_code", "clc_code")
DEFAULT_NODATA = {"grid_code": (48, 49, 50, 255, -128), "clc_code": (999, 990, 995, -128)}


def _value_map(value_type: str) -> dict[int, int]:
    if value_type == "grid_code":
        return {cls.grid_code: cls.code for cls in clc_classes()}
    return {cls.code: cls.code for cls in clc_classes()}


@dataclass(frozen=True)
class CorineRaster:
    """CORINE raster (e.g. ``U2018_CLC2018_V2020_20u1.tif``, grid codes 1..44) at ``href``."""

    href: str
    value_type: str = "grid_code"
    nodata: tuple[int, ...] | None = None  # None: the EEA legend's nodata values
    subpixel_m: float = 2.0
    name: str = field(default="corine", init=False)

    def __post_init__(self) -> None:
        if self.value_type not in VALUE_TYPES:
            raise ConfigError(
                f"CorineRaster value_type={self.value_type!r} for {self.href}: use 'grid_code' "
                "(EEA raster values 1..44) or 'clc_code' (values 111..523)"
            )

    def class_fractions(self, chip: ChipGeometry) -> ClassFractions:
        return report_warnings(self.block_fractions([chip])[0])

    def block_fractions(self, chips: Sequence[ChipGeometry]) -> list[ClassFractions]:
        nodata = DEFAULT_NODATA[self.value_type] if self.nodata is None else self.nodata
        found = block_fractions(
            self.href,
            chips,
            nodata_values=nodata,
            value_map=_value_map(self.value_type),
            subpixel_m=self.subpixel_m,
        )
        return [as_class_fractions(self.name, self.href, f) for f in found]


@lru_cache(maxsize=16)
def _layer_crs(path: str, layer: str | None) -> CRS:
    try:
        info = pyogrio.read_info(path, layer=layer)
    except Exception as exc:
        raise SourceError(f"cannot open CORINE vector {path!r} (layer {layer!r}): {exc}") from exc
    if not info.get("crs"):
        raise SourceError(f"CORINE vector {path!r} has no CRS; add a .prj or set the layer SRS")
    return CRS.from_user_input(info["crs"])


def _code_or_none(value: object) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class CorineVector:
    """CORINE vector product (GeoPackage / Shapefile) with level-3 codes in ``code_field``."""

    path: str
    code_field: str = "Code_18"
    layer: str | None = None
    name: str = field(default="corine", init=False)

    def _read(self, epsg: int, bounds: tuple[float, float, float, float]) -> gpd.GeoDataFrame:
        """The features over ``bounds`` (in EPSG ``epsg``), in that CRS."""
        crs = _layer_crs(str(self.path), self.layer)
        bbox = transform_bounds(f"EPSG:{epsg}", crs.to_wkt(), *bounds, densify_pts=21)
        frame = gpd.read_file(self.path, layer=self.layer, bbox=bbox, engine="pyogrio")
        if len(frame) and self.code_field not in frame.columns:
            raise SourceError(
                f"CORINE vector {self.path!r} has no field {self.code_field!r} "
                f"(fields: {list(frame.columns)}); pass code_field= (e.g. 'Code_18', 'CODE_18')"
            )
        return frame.to_crs(epsg=epsg) if len(frame) else frame

    def class_fractions(self, chip: ChipGeometry) -> ClassFractions:
        return self.block_fractions([chip])[0]

    def block_fractions(self, chips: Sequence[ChipGeometry]) -> list[ClassFractions]:
        """One read per block of grid cells; each chip intersected with the features."""
        out: dict[int, ClassFractions] = {}
        for indices in blocks_of(chips):
            block = [chips[i] for i in indices]
            bounds = np.array([chip.bounds for chip in block])
            (minx, miny), (maxx, maxy) = bounds[:, :2].min(axis=0), bounds[:, 2:].max(axis=0)
            frame = self._read(block[0].epsg, (float(minx), float(miny), float(maxx), float(maxy)))
            codes = [_code_or_none(v) for v in frame[self.code_field]] if len(frame) else []
            geoms = shapely.make_valid(frame.geometry.to_numpy()) if len(frame) else None
            for i, chip in zip(indices, block, strict=True):
                out[i] = self._fractions(chip, codes, geoms)
        return [out[i] for i in range(len(chips))]

    def _fractions(self, chip: ChipGeometry, codes: list[int | None], geoms) -> ClassFractions:
        if not codes:
            return ClassFractions(self.name, {}, 1.0)
        square = shapely.box(*chip.bounds)
        known = {cls.code for cls in clc_classes()}
        areas = shapely.area(shapely.intersection(geoms, square))
        fractions: dict[int, float] = {}
        for code, geom, area in zip(codes, geoms, areas.tolist(), strict=True):
            if code not in known or geom is None or not area > 0:
                continue
            fractions[code] = fractions.get(code, 0.0) + area / square.area
        total = sum(fractions.values())
        if total > 1.0:
            fractions = {code: frac / total for code, frac in fractions.items()}
        nodata_fraction = max(1.0 - sum(fractions.values()), 0.0)
        return ClassFractions(self.name, dict(sorted(fractions.items())), nodata_fraction)
