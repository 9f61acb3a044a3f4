"""The per-chip label fractions as they were computed before block computation: one
``transform_bounds`` + window read + GDAL nearest ``reproject`` per chip (``warp``), or one
window read per chip (``exact``). Kept as the reference the block computation
(``pipeline.labels.raster_fractions.block_fractions``) is tested against."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window

from pipeline.chips.grid import ChipGeometry
from pipeline.errors import ChipReadError, ConfigError
from pipeline.labels.raster_fractions import METHODS, open_dataset

_OUTSIDE = np.iinfo(np.int32).min


def _is_north_up(ds) -> bool:
    t = ds.transform
    return t.b == 0 and t.d == 0 and t.a > 0 and t.e < 0


def _axis_overlap(start: float, step: float, n0: int, n1: int, lo: float, hi: float) -> np.ndarray:
    """Overlap length of pixels ``n0..n1-1`` (edges ``start + i*step``) with ``[lo, hi]``."""
    edges = start + step * np.arange(n0, n1 + 1, dtype=np.float64)
    a, b = np.minimum(edges[:-1], edges[1:]), np.maximum(edges[:-1], edges[1:])
    return np.clip(np.minimum(b, hi) - np.maximum(a, lo), 0.0, None)


def _covering_window(ds, bounds: tuple[float, float, float, float], pad: int) -> Window | None:
    """Window of ``ds`` pixels covering ``bounds`` (in the raster CRS), clipped to the raster."""
    minx, miny, maxx, maxy = bounds
    inverse = ~ds.transform
    corners = [inverse @ xy for xy in ((minx, miny), (minx, maxy), (maxx, miny), (maxx, maxy))]
    cols, rows = zip(*corners, strict=True)
    col0 = max(math.floor(min(cols) + 1e-9) - pad, 0)
    row0 = max(math.floor(min(rows) + 1e-9) - pad, 0)
    col1 = min(math.ceil(max(cols) - 1e-9) + pad, ds.width)
    row1 = min(math.ceil(max(rows) - 1e-9) + pad, ds.height)
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)


def _read(ds, band: int, window: Window, href: str) -> np.ndarray:
    try:
        return ds.read(band, window=window).astype(np.int64)
    except (RasterioIOError, IndexError) as exc:
        raise ChipReadError(f"cannot read band {band} of {href!r}: {exc}") from exc


def _exact_weights(ds, chip: ChipGeometry, band: int, href: str) -> tuple[np.ndarray, np.ndarray]:
    """Raw values and their exact overlap areas with the chip (m²)."""
    minx, miny, maxx, maxy = chip.bounds
    win = _covering_window(ds, chip.bounds, pad=0)
    if win is None:
        return np.empty(0, np.int64), np.empty(0)
    t = ds.transform
    c0, r0 = int(win.col_off), int(win.row_off)
    ox = _axis_overlap(t.c, t.a, c0, c0 + int(win.width), minx, maxx)
    oy = _axis_overlap(t.f, t.e, r0, r0 + int(win.height), miny, maxy)
    return _read(ds, band, win, href).ravel(), np.outer(oy, ox).ravel()


def _warped_weights(
    ds, chip: ChipGeometry, band: int, href: str, subpixel_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Raw values of a nearest-neighbour warp onto a ``subpixel_m`` sub-grid, weight 1 each."""
    n = round(chip.size_m / subpixel_m)
    if n < 1 or not math.isclose(n * subpixel_m, chip.size_m):
        raise ConfigError(f"subpixel_m={subpixel_m} must divide the chip size {chip.size_m} m")
    chip_crs = CRS.from_epsg(chip.epsg)
    src_bounds = transform_bounds(chip_crs, ds.crs, *chip.bounds, densify_pts=21)
    win = _covering_window(ds, src_bounds, pad=2)
    if win is None:
        return np.empty(0, np.int64), np.empty(0)
    src = _read(ds, band, win, href).astype(np.int32)
    dst = np.full((n, n), _OUTSIDE, dtype=np.int32)
    minx, _, _, maxy = chip.bounds
    dst_transform = Affine(subpixel_m, 0.0, minx, 0.0, -subpixel_m, maxy)
    reproject(
        src,
        dst,
        src_transform=ds.transform @ Affine.translation(win.col_off, win.row_off),
        src_crs=ds.crs,
        src_nodata=None,
        dst_transform=dst_transform,
        dst_crs=chip_crs,
        dst_nodata=_OUTSIDE,
        resampling=Resampling.nearest,
    )
    values = dst.ravel().astype(np.int64)
    return values, np.ones(values.size)


def _tally(
    values: np.ndarray,
    weights: np.ndarray,
    total: float,
    nodata: set[int],
    value_map: Mapping[int, int] | None,
    unknown: set[int] | None = None,
) -> tuple[dict[int, float], float]:
    """Weight per class summed first, then divided once by ``total`` (the chip's weight)."""
    sums_by_key: dict[int, float] = {}
    uniq, inverse = np.unique(values, return_inverse=True)
    sums = np.bincount(inverse.ravel(), weights=weights, minlength=uniq.size)
    for raw, weight in zip(uniq.tolist(), sums.tolist(), strict=True):
        if raw == _OUTSIDE or raw in nodata or weight <= 0:
            continue
        if value_map is not None and raw not in value_map:
            if unknown is not None:
                unknown.add(int(raw))
            continue
        key = value_map[raw] if value_map is not None else raw
        sums_by_key[key] = sums_by_key.get(key, 0.0) + weight
    fractions = {key: weight / total for key, weight in sorted(sums_by_key.items())}
    nodata_fraction = min(max((total - sum(sums_by_key.values())) / total, 0.0), 1.0)
    return fractions, nodata_fraction


def _use_exact(ds, chip: ChipGeometry, method: str) -> bool:
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is not one of {METHODS}")
    same = ds.crs is not None and ds.crs == CRS.from_epsg(chip.epsg) and _is_north_up(ds)
    if method == "exact" and not same:
        raise ConfigError("method='exact' needs a north-up raster in the chip CRS; use 'auto'")
    return method == "exact" or (method == "auto" and same)


def per_chip_fractions(
    href: str,
    chip: ChipGeometry,
    *,
    nodata_values: Iterable[int] = (),
    value_map: Mapping[int, int] | None = None,
    band: int = 1,
    subpixel_m: float = 2.0,
    method: str = "auto",
) -> tuple[dict[int, float], float]:
    """(class value -> fraction of the chip area, nodata fraction) of a categorical raster.

    ``value_map`` renames raw values (e.g. CORINE grid code 12 -> CLC code 211); raw
    values missing from it are counted as nodata and reported: a counted warning
    (``on_unknown="warn"``) or a ``SourceError`` (``"error"``). ``method`` is ``"auto"``,
    ``"exact"`` or ``"warp"``.
    """
    ds = open_dataset(str(href))
    if ds.crs is None:
        raise ChipReadError(f"label raster {href!r} has no CRS; assign one (gdal_edit.py -a_srs)")
    nodata = {int(v) for v in nodata_values}
    if ds.nodata is not None and not math.isnan(ds.nodata):
        nodata.add(int(ds.nodata))
    if _use_exact(ds, chip, method):
        values, weights = _exact_weights(ds, chip, band, str(href))
        total = chip.size_m * chip.size_m
    else:
        values, weights = _warped_weights(ds, chip, band, str(href), subpixel_m)
        total = float(round(chip.size_m / subpixel_m) ** 2)
    return _tally(values, weights, total, nodata, value_map)


def per_chip_vector_fractions(path: str, chip: ChipGeometry, code_field: str) -> dict[int, float]:
    """CORINE vector fractions of one chip as computed before blocks: a bbox read per chip."""
    import geopandas as gpd
    import pyogrio
    import shapely

    from pipeline.labels.taxonomy import clc_classes

    crs = CRS.from_user_input(pyogrio.read_info(path)["crs"])
    bbox = transform_bounds(CRS.from_epsg(chip.epsg), crs, *chip.bounds, densify_pts=21)
    frame = gpd.read_file(path, bbox=bbox, engine="pyogrio").to_crs(epsg=chip.epsg)
    square = shapely.box(*chip.bounds)
    known = {cls.code for cls in clc_classes()}
    fractions: dict[int, float] = {}
    for code, geom in zip(frame[code_field], frame.geometry, strict=True):
        if int(code) not in known:
            continue
        area = shapely.intersection(shapely.make_valid(geom), square).area
        if area > 0:
            fractions[int(code)] = fractions.get(int(code), 0.0) + area / square.area
    return dict(sorted(fractions.items()))
