"""Cloud-Optimized GeoTIFF writing for the simulated archive (atomic, deterministic)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from pipeline.storage import atomic_path


@dataclass(frozen=True)
class RasterGrid:
    """A north-up pixel grid: CRS, transform and shape."""

    epsg: int
    transform: Affine
    shape: tuple[int, int]

    @property
    def resolution(self) -> float:
        return float(self.transform.a)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        height, width = self.shape
        minx, maxy = self.transform.c, self.transform.f
        return (minx, maxy - height * self.resolution, minx + width * self.resolution, maxy)

    def coarsened(self, factor: int) -> RasterGrid:
        height, width = self.shape
        return RasterGrid(
            self.epsg, self.transform @ Affine.scale(factor), (height // factor, width // factor)
        )


@dataclass(frozen=True)
class AssetFile:
    """One written raster asset: its key in the STAC item, file and grid."""

    key: str
    path: Path
    grid: RasterGrid
    dtype: str
    nodata: float | int


def write_cog(
    path: Path,
    array: np.ndarray,
    grid: RasterGrid,
    nodata: float | int | None,
    description: str = "",
    overview_resampling: str | None = None,
) -> None:
    """Write one band as a tiled, deflate-compressed COG (predictor 2 for ints, 3 for floats).

    Overviews are built only when ``overview_resampling`` is given (scenes skip them:
    the archive is read at full resolution and they would add a third to its size).
    """
    predictor = 3 if np.issubdtype(array.dtype, np.floating) else 2
    profile = {
        "driver": "COG",
        "width": grid.shape[1],
        "height": grid.shape[0],
        "count": 1,
        "dtype": array.dtype.name,
        "crs": f"EPSG:{grid.epsg}",
        "transform": grid.transform,
        "nodata": nodata,
        "compress": "deflate",
        "predictor": predictor,
        "blocksize": 256,
        "overviews": "auto" if overview_resampling else "none",
        "overview_resampling": overview_resampling or "nearest",
        "num_threads": "all_cpus",
    }
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(array, 1)
        if description:
            dst.set_band_description(1, description)
    path.chmod(0o644)


def truncate_mantissa(values: np.ndarray, keep_bits: int = 8) -> np.ndarray:
    """Round float32 values to ``keep_bits`` mantissa bits so speckle compresses better."""
    as_int = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    drop = 23 - keep_bits
    rounded = (as_int + np.uint32(1 << (drop - 1))) & np.uint32((0xFFFFFFFF >> drop) << drop)
    return rounded.view(np.float32)
