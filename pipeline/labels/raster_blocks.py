"""Class weights of a categorical raster for a whole block of chips at once.

Chips are grouped into blocks of ``BLOCK_CELLS`` x ``BLOCK_CELLS`` grid cells of one grid
(``blocks_of``); each block reads the label product once and counts every chip's weights
with one ``np.bincount`` over (chip, class):

* ``exact_block``: the raster is in the chip CRS and north-up. Each product pixel is
  weighted by its exact overlap area with each chip square (x overlap times y overlap),
  the window of each chip chosen as a single-chip computation would choose it, so every
  chip's weights are the same numbers, summed in the same order, whatever block it is in.
* ``sampled_block``: anything else. Each chip is sampled at the centres of a
  ``subpixel_m`` sub-grid (nearest product pixel) and the sub-pixels are counted. The
  centres are located in the product by projecting a lattice of ``LATTICE_M`` spacing per
  chip exactly (PROJ) and interpolating bilinearly in between: over 60 m the projection
  is affine to well under a micrometre (measured 8e-8 product pixels, UTM to EPSG:3035),
  so the sampling is that of an exact per-sub-pixel projection, and a chip's counts do not
  depend on which other chips share its block.

Results come back as ``Tallies``: the sorted raw values present in the block and the
weight of each (whole overlap areas or sub-pixel counts) per chip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import rasterio
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from pipeline.chips.grid import ChipGeometry
from pipeline.errors import ChipReadError, ConfigError
from pipeline.sources.redact import redact

BLOCK_CELLS = 8  # grid cells per block side
LATTICE_M = 60.0  # spacing of the exactly projected lattice inside a chip
TIE_PX = 1e-10  # a centre on a pixel edge samples the pixel after it (as GDAL's nearest)
CHUNK_CHIPS = 4  # chips sampled at once (bounds memory: 4 x 600 x 600 x 8 bytes per array)


@dataclass(frozen=True)
class Tallies:
    """Weights of a block: ``sums[i, j]`` is the weight of raw value ``raws[j]`` in chip i."""

    raws: np.ndarray  # (nraw,) int64, sorted
    sums: np.ndarray  # (nchips, nraw) float64
    total: float  # the weight of a whole chip (area in m², or sub-pixel count)


def grid_of(chip: ChipGeometry) -> tuple[int, int, float, float, float]:
    return (chip.epsg, chip.pixels, chip.pixel_size, chip.origin_x, chip.origin_y)


def blocks_of(chips: Sequence[ChipGeometry], size: int = BLOCK_CELLS) -> list[list[int]]:
    """Indices of ``chips`` grouped by grid and by ``size`` x ``size`` block of cells."""
    groups: dict[tuple, list[int]] = {}
    for i, chip in enumerate(chips):
        key = (*grid_of(chip), chip.col // size, chip.row // size)
        groups.setdefault(key, []).append(i)
    return [groups[key] for key in sorted(groups)]


def read_window(ds, band: int, window: Window, href: str) -> np.ndarray:
    try:
        return ds.read(band, window=window).astype(np.int64)
    except (RasterioIOError, IndexError) as exc:
        raise ChipReadError(
            f"cannot read band {band} of label raster {redact(href)!r}: {redact(str(exc))}"
        ) from exc


def covering_window(ds, bounds: tuple[float, float, float, float], pad: int) -> Window | None:
    """Window of ``ds`` pixels covering ``bounds`` (in the raster CRS), clipped to the raster."""
    minx, miny, maxx, maxy = bounds
    inverse = ~ds.transform
    corners = [inverse @ xy for xy in ((minx, miny), (minx, maxy), (maxx, miny), (maxx, maxy))]
    cols, rows = zip(*corners, strict=True)
    return _clip(ds, min(cols), min(rows), max(cols), max(rows), pad)


def _clip(ds, col0: float, row0: float, col1: float, row1: float, pad: int) -> Window | None:
    c0 = max(math.floor(col0 + 1e-9) - pad, 0)
    r0 = max(math.floor(row0 + 1e-9) - pad, 0)
    c1 = min(math.ceil(col1 - 1e-9) + pad, ds.width)
    r1 = min(math.ceil(row1 - 1e-9) + pad, ds.height)
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def _union(windows: Sequence[Window]) -> Window:
    c0 = min(int(w.col_off) for w in windows)
    r0 = min(int(w.row_off) for w in windows)
    c1 = max(int(w.col_off + w.width) for w in windows)
    r1 = max(int(w.row_off + w.height) for w in windows)
    return Window(c0, r0, c1 - c0, r1 - r0)


def encode(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, index of each pixel's value) of an integer array."""
    if data.size and data.min() >= 0 and data.max() < 1 << 16:
        present = np.flatnonzero(np.bincount(data.ravel()))
        lookup = np.zeros(int(present[-1]) + 1, dtype=np.int64)
        lookup[present] = np.arange(present.size)
        return present.astype(np.int64), lookup[data]
    raws, index = np.unique(data, return_inverse=True)
    return raws.astype(np.int64), index.reshape(data.shape)


def axis_overlap(start: float, step: float, n0: int, n1: int, lo: float, hi: float) -> np.ndarray:
    """Overlap length of pixels ``n0..n1-1`` (edges ``start + i*step``) with ``[lo, hi]``."""
    edges = start + step * np.arange(n0, n1 + 1, dtype=np.float64)
    a, b = np.minimum(edges[:-1], edges[1:]), np.maximum(edges[:-1], edges[1:])
    return np.clip(np.minimum(b, hi) - np.maximum(a, lo), 0.0, None)


def _empty(nchips: int, total: float) -> Tallies:
    return Tallies(np.empty(0, np.int64), np.zeros((nchips, 0)), total)


def exact_block(ds, chips: Sequence[ChipGeometry], band: int, href: str) -> Tallies:
    """Exact overlap areas (m²) of the product pixels with every chip of the block."""
    total = chips[0].size_m * chips[0].size_m
    windows = [covering_window(ds, chip.bounds, pad=0) for chip in chips]
    present = [w for w in windows if w is not None]
    if not present:
        return _empty(len(chips), total)
    block = _union(present)
    raws, index = encode(read_window(ds, band, block, href))
    keys, weights = [], []
    t = ds.transform
    for i, (chip, win) in enumerate(zip(chips, windows, strict=True)):
        if win is None:
            continue
        minx, miny, maxx, maxy = chip.bounds
        c0, r0 = int(win.col_off), int(win.row_off)
        c1, r1 = c0 + int(win.width), r0 + int(win.height)
        ox = axis_overlap(t.c, t.a, c0, c1, minx, maxx)
        oy = axis_overlap(t.f, t.e, r0, r1, miny, maxy)
        local = index[
            r0 - block.row_off : r1 - block.row_off, c0 - block.col_off : c1 - block.col_off
        ]
        keys.append(i * raws.size + local.ravel())
        weights.append(np.outer(oy, ox).ravel())
    sums = np.bincount(
        np.concatenate(keys), np.concatenate(weights), minlength=len(chips) * raws.size
    )
    return Tallies(raws, sums.reshape(len(chips), raws.size), total)


def sampled_block(
    ds, chips: Sequence[ChipGeometry], band: int, href: str, subpixel_m: float
) -> Tallies:
    """Sub-pixel counts of every chip of the block (nearest product pixel per centre)."""
    n = subgrid_size(chips[0], subpixel_m)
    touching = _touching(ds, chips)
    if touching.size == 0:
        return _empty(len(chips), float(n * n))
    cols, rows = pixel_lattice(ds, [chips[i] for i in touching])
    win = _clip(ds, cols.min(), rows.min(), cols.max(), rows.max(), pad=2)
    if win is None:
        return _empty(len(chips), float(n * n))
    raws, index = encode(read_window(ds, band, win, href))
    padded = np.pad(index, 1, constant_values=raws.size)  # the border stands for "outside"
    counts = np.zeros((len(chips), raws.size + 1), dtype=np.int64)
    for start in range(0, touching.size, CHUNK_CHIPS):
        part = slice(start, start + CHUNK_CHIPS)
        sampled = sample_index(padded, win, cols[part], rows[part], n)
        keys = sampled + (np.arange(sampled.shape[0]) * (raws.size + 1))[:, None, None]
        found = np.bincount(keys.ravel(), minlength=sampled.shape[0] * (raws.size + 1))
        counts[touching[part]] = found.reshape(sampled.shape[0], raws.size + 1)
    return Tallies(raws, counts[:, : raws.size].astype(np.float64), float(n * n))


def _touching(ds, chips: Sequence[ChipGeometry], margin: float = 2.0) -> np.ndarray:
    """Indices of the chips whose corners, projected, come within ``margin`` product pixels of
    the raster (a chip's edges bulge far less than that between its corners)."""
    cols, rows = pixel_lattice(ds, chips, intervals=1)
    return np.flatnonzero(
        (cols.max(axis=(1, 2)) > -margin)
        & (cols.min(axis=(1, 2)) < ds.width + margin)
        & (rows.max(axis=(1, 2)) > -margin)
        & (rows.min(axis=(1, 2)) < ds.height + margin)
    )


def subgrid_size(chip: ChipGeometry, subpixel_m: float) -> int:
    n = round(chip.size_m / subpixel_m)
    if n < 1 or not math.isclose(n * subpixel_m, chip.size_m):
        raise ConfigError(f"subpixel_m={subpixel_m} must divide the chip size {chip.size_m} m")
    return n


@lru_cache(maxsize=64)
def _transformer(epsg: int, wkt: str) -> Transformer:
    return Transformer.from_crs(ProjCRS.from_epsg(epsg), ProjCRS.from_wkt(wkt), always_xy=True)


def pixel_lattice(
    ds, chips: Sequence[ChipGeometry], intervals: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Product pixel coordinates (col, row) of each chip's lattice, shape (chips, K+1, K+1);
    lattice row j lies ``j * size / K`` south of the chip's top edge, column k east of its
    left edge."""
    k = intervals or lattice_intervals(chips[0])
    steps = np.arange(k + 1, dtype=np.float64) * (chips[0].size_m / k)
    bounds = np.array([chip.bounds for chip in chips])
    shape = (len(chips), k + 1, k + 1)
    xs = np.broadcast_to(bounds[:, 0, None, None] + steps[None, None, :], shape).copy()
    ys = np.broadcast_to(bounds[:, 3, None, None] - steps[None, :, None], shape).copy()
    if ds.crs != rasterio.crs.CRS.from_epsg(chips[0].epsg):
        xs, ys = _transformer(chips[0].epsg, ds.crs.to_wkt()).transform(xs, ys)
    inv = ~ds.transform
    return inv.a * xs + inv.b * ys + inv.c, inv.d * xs + inv.e * ys + inv.f


def lattice_intervals(chip: ChipGeometry) -> int:
    return max(1, math.ceil(chip.size_m / LATTICE_M - 1e-9))


def sample_index(
    padded: np.ndarray, win: Window, cols: np.ndarray, rows: np.ndarray, n: int
) -> np.ndarray:
    """Index of the product pixel under each sub-pixel centre, (chips, n, n), read from the
    window's index array ``padded`` with a one-pixel border of "outside" (centres beyond the
    window, which is clipped to the raster, land on the border)."""
    height, width = padded.shape
    col = _pixel(cols, n, int(win.col_off) - 1, width - 1)
    row = _pixel(rows, n, int(win.row_off) - 1, height - 1)
    row *= width
    row += col
    return padded.ravel()[row]


def _pixel(lattice: np.ndarray, n: int, offset: int, last: int) -> np.ndarray:
    """Padded-array pixel index of the sub-pixel centres (clipped onto the border)."""
    coord = _interpolate(lattice, n)
    coord += TIE_PX
    np.floor(coord, out=coord)
    coord -= offset
    np.clip(coord, 0, last, out=coord)
    return coord.astype(np.int64)


def _interpolate(lattice: np.ndarray, n: int) -> np.ndarray:
    """Bilinear interpolation of a (chips, K+1, K+1) lattice at the n x n sub-pixel centres."""
    k = lattice.shape[1] - 1
    pos = (np.arange(n, dtype=np.float64) + 0.5) * k / n
    cell = np.minimum(np.floor(pos).astype(np.int64), k - 1)
    t = pos - cell
    along_x = lattice[:, :, cell] * (1.0 - t) + lattice[:, :, cell + 1] * t
    step = np.diff(along_x, axis=1)
    out = step[:, cell, :]
    out *= t[None, :, None]
    out += along_x[:, cell, :]
    return out
