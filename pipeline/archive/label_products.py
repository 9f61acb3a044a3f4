"""Label products derived from the truth map: a CORINE-like raster and a Dynamic-World-like one.

CORINE: the 10 m truth mode-aggregated to 100 m, patches under the 25 ha minimum
mapping unit dissolved into their neighbours, reprojected to the EEA grid
(EPSG:3035, 100 m), values as EEA GRID_CODE 1..44 and 48 for nodata. Dynamic
World: the truth mapped to the 9 DW classes with realistic disagreement (class
boundaries, grass/crops and shrub/trees confusions per field, scattered pixels).
"""

from __future__ import annotations

import numpy as np
from affine import Affine
from rasterio.warp import Resampling, reproject, transform_bounds
from scipy import ndimage

from pipeline.archive.cog import RasterGrid
from pipeline.archive.landscape import Landscape
from pipeline.archive.noise import derive_rng
from pipeline.archive.spectra import CLC_GRID_CODE, CLC_TO_DW

CORINE_EPSG = 3035
CORINE_RES = 100.0
CORINE_NODATA = 48
CORINE_MMU_PIXELS = 25  # 25 ha at 100 m
DW_NODATA = 255
_AGRICULTURE = tuple(range(12, 22))  # grid codes of 211..243
_FOREST = (23, 24)  # 311, 312 (313 is the mosaic)
_DW_CONFUSIONS = {2: (4, 0.07), 4: (2, 0.05), 5: (1, 0.12), 1: (5, 0.04), 3: (2, 0.15)}


def _lookup(table: dict[int, int], fill: int) -> np.ndarray:
    lut = np.full(1024, fill, dtype=np.uint8)
    for code, value in table.items():
        lut[code] = value
    return lut


def corine_raster(full: Landscape, aoi_bounds: tuple[float, ...]) -> tuple[np.ndarray, RasterGrid]:
    """The CORINE-like product covering ``aoi_bounds`` (UTM) with a margin, on the EEA grid."""
    grid_codes = _lookup(CLC_GRID_CODE, CORINE_NODATA)[full.clc]
    coarse = generalise_mosaics(block_mode(grid_codes, 10))
    coarse = dissolve_small_patches(coarse, CORINE_MMU_PIXELS)
    src_transform = full.transform @ Affine.scale(10)
    grid = _eea_grid(full.epsg, aoi_bounds)
    out = np.full(grid.shape, CORINE_NODATA, dtype=np.uint8)
    reproject(
        coarse, out, src_transform=src_transform, src_crs=f"EPSG:{full.epsg}",
        dst_transform=grid.transform, dst_crs=f"EPSG:{CORINE_EPSG}",
        resampling=Resampling.nearest, src_nodata=CORINE_NODATA, dst_nodata=CORINE_NODATA,
    )  # fmt: skip
    return out, grid


def _eea_grid(epsg: int, bounds: tuple[float, ...], margin: float = 200.0) -> RasterGrid:
    left, bottom, right, top = transform_bounds(f"EPSG:{epsg}", f"EPSG:{CORINE_EPSG}", *bounds)
    left = np.floor((left - margin) / CORINE_RES) * CORINE_RES
    bottom = np.floor((bottom - margin) / CORINE_RES) * CORINE_RES
    right = np.ceil((right + margin) / CORINE_RES) * CORINE_RES
    top = np.ceil((top + margin) / CORINE_RES) * CORINE_RES
    shape = (round((top - bottom) / CORINE_RES), round((right - left) / CORINE_RES))
    return RasterGrid(CORINE_EPSG, Affine(CORINE_RES, 0, left, 0, -CORINE_RES, top), shape)


def block_mode(codes: np.ndarray, factor: int) -> np.ndarray:
    """Most frequent value of every ``factor`` x ``factor`` block (ties: the lowest value)."""
    height, width = codes.shape
    blocks = codes.reshape(height // factor, factor, width // factor, factor)
    values = np.unique(codes)
    counts = np.stack([(blocks == value).sum(axis=(1, 3)) for value in values])
    return values[np.argmax(counts, axis=0)].astype(codes.dtype)


def generalise_mosaics(codes: np.ndarray, window: int = 5, dominance: float = 0.5) -> np.ndarray:
    """CORINE's mosaic classes: mixed small fields -> 242, mixed broadleaf/conifer -> 313."""
    out = codes.copy()
    for members, mosaic in ((_AGRICULTURE, 20), (_FOREST, 25)):
        inside = np.isin(codes, members)
        shares = [ndimage.uniform_filter((codes == m).astype(np.float32), window) for m in members]
        total = ndimage.uniform_filter(inside.astype(np.float32), window)
        dominant = np.max(shares, axis=0) / np.maximum(total, 1e-6)
        out[inside & (dominant < dominance)] = mosaic
    return out


def dissolve_small_patches(codes: np.ndarray, min_pixels: int) -> np.ndarray:
    """Give patches smaller than ``min_pixels`` the class of the nearest larger patch."""
    keep = np.zeros(codes.shape, dtype=bool)
    for value in np.unique(codes):
        labels, count = ndimage.label(codes == value)
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        large = sizes >= min_pixels
        large[0] = False
        keep |= large[labels]
    if not keep.any():
        return codes
    _, (rows, cols) = ndimage.distance_transform_edt(~keep, return_indices=True)
    return codes[rows, cols]


def dynamic_world_raster(land: Landscape, seed: int, aoi: str) -> np.ndarray:
    """DW labels (0..8) from the truth with a few percent of realistic disagreement."""
    rng = derive_rng(seed, aoi, "dynamic-world")
    dw = _lookup(CLC_TO_DW, DW_NODATA)[land.clc]
    dw = _confuse_fields(rng, dw, land.field_id)
    dw = _blur_boundaries(rng, dw, 0.35)
    speckle = rng.random(dw.shape) < 0.01
    dw[speckle] = rng.choice(np.array([1, 2, 4], dtype=np.uint8), size=int(speckle.sum()))
    return dw


def _confuse_fields(rng: np.random.Generator, dw: np.ndarray, field_id: np.ndarray) -> np.ndarray:
    count = int(field_id.max()) + 1
    per_field = np.full(count, DW_NODATA, dtype=np.uint8)
    per_field[field_id.ravel()] = dw.ravel()
    draws = rng.random(count)
    swapped = per_field.copy()
    for source, (target, probability) in _DW_CONFUSIONS.items():
        swapped[(per_field == source) & (draws < probability)] = target
    return np.where(swapped[field_id] != per_field[field_id], swapped[field_id], dw).astype(
        np.uint8
    )


def _blur_boundaries(rng: np.random.Generator, dw: np.ndarray, probability: float) -> np.ndarray:
    padded = np.pad(dw, 1, mode="edge")
    height, width = dw.shape
    d_row = rng.integers(-1, 2, size=dw.shape)
    d_col = rng.integers(-1, 2, size=dw.shape)
    rows = np.arange(height)[:, None] + 1 + d_row
    cols = np.arange(width)[None, :] + 1 + d_col
    neighbour = padded[rows, cols]
    boundary = ndimage.maximum_filter(dw, 3) != ndimage.minimum_filter(dw, 3)
    flip = boundary & (rng.random(dw.shape) < probability)
    return np.where(flip, neighbour, dw).astype(np.uint8)
