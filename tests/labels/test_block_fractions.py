"""Block label fractions against the per-chip computation they replace (kept in
``per_chip_reference.py``) and against exact geometry, on generated rasters: random
resolutions, offsets, CRSs, nodata and class codes, chips inside, across the edges of and
outside the product, over block boundaries."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from per_chip_reference import per_chip_fractions, per_chip_vector_fractions
from pyproj import Transformer

from pipeline.chips.grid import ChipGeometry
from pipeline.labels.raster_blocks import BLOCK_CELLS, pixel_lattice
from pipeline.labels.raster_fractions import block_fractions, open_dataset

COL0, ROW0 = 6 * BLOCK_CELLS - 2, 523 * BLOCK_CELLS - 2  # 4 x 4 cells over 4 blocks
CHIPS = [ChipGeometry(32632, COL0 + c, ROW0 + r) for r in range(4) for c in range(4)]
FAR = ChipGeometry(32632, COL0 + 40, ROW0 - 40)  # nowhere near the product
_count = itertools.count()
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _write(folder: Path, data: np.ndarray, transform: Affine, crs: str, nodata) -> str:
    path = folder / f"product-{next(_count)}.tif"
    profile = {"driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1}
    profile |= {"dtype": data.dtype, "crs": crs, "transform": transform, "nodata": nodata}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return str(path)


def _chips_area() -> tuple[float, float, float, float]:
    xs = [v for c in CHIPS for v in (c.bounds[0], c.bounds[2])]
    ys = [v for c in CHIPS for v in (c.bounds[1], c.bounds[3])]
    return min(xs), min(ys), max(xs), max(ys)


codes = st.sampled_from(
    [
        (np.uint8, [1, 2, 3, 7, 48, 255]),
        (np.uint16, [10, 20, 30, 40, 60000]),
        (np.int32, [-5, 3, 211, 70000, 123456]),
    ]
)


@st.composite
def products(draw, crs: str):
    """A categorical product covering a random part of (or missing) the 4 x 4 chips."""
    dtype, values = draw(codes)
    res = draw(st.sampled_from([10.0, 20.0, 30.0, 37.5, 60.0, 100.0, 250.0]))
    minx, miny, maxx, maxy = _chips_area()
    if crs != "EPSG:32632":
        tr = Transformer.from_crs(32632, crs, always_xy=True)
        xs, ys = tr.transform([minx, maxx, minx, maxx], [miny, miny, maxy, maxy])
        minx, miny, maxx, maxy = min(xs), min(ys), max(xs), max(ys)
    span = max(maxx - minx, maxy - miny)
    west = minx + draw(st.floats(-0.4, 0.6)) * span
    north = maxy - draw(st.floats(-0.4, 0.6)) * span
    width = max(1, int(draw(st.floats(0.1, 1.3)) * span / res))
    height = max(1, int(draw(st.floats(0.1, 1.3)) * span / res))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    data = rng.choice(values, size=(height, width)).astype(dtype)
    nodata = draw(st.sampled_from([None, values[-1]]))
    return data, Affine(res, 0.0, west, 0.0, -res, north), nodata, values


def _compare(href: str, values: list[int], nodata, method: str, tolerance: float) -> float:
    value_map = {v: 1000 + i for i, v in enumerate(values[:-2])}  # the last two are unknown
    kwargs = {"nodata_values": [] if nodata is None else [nodata], "value_map": value_map}
    block = block_fractions(href, [*CHIPS, FAR], method=method, **kwargs)
    worst = 0.0
    for chip, got in zip([*CHIPS, FAR], block, strict=True):
        want, want_nodata = per_chip_fractions(href, chip, method=method, **kwargs)
        keys = set(want) | set(got.fractions)
        diffs = [abs(want.get(k, 0.0) - got.fractions.get(k, 0.0)) for k in keys]
        worst = max([worst, abs(want_nodata - got.nodata_fraction), *diffs])
        assert sum(got.fractions.values()) + got.nodata_fraction == pytest.approx(1.0)
    assert worst <= tolerance, worst
    return worst


@SETTINGS
@given(product=products("EPSG:32632"))
def test_exact_block_equals_per_chip_bit_for_bit(tmp_path, product) -> None:
    data, transform, nodata, values = product
    href = _write(tmp_path, data, transform, "EPSG:32632", nodata)
    assert _compare(href, values, nodata, "exact", 0.0) == 0.0


@SETTINGS
@given(product=products("EPSG:32632"))
def test_forced_warp_in_the_chip_crs_equals_per_chip(tmp_path, product) -> None:
    data, transform, nodata, values = product
    href = _write(tmp_path, data, transform, "EPSG:32632", nodata)
    _compare(href, values, nodata, "warp", 1e-6)


@settings(SETTINGS, max_examples=12)
@given(product=products("EPSG:3035"))
def test_warp_from_another_crs_agrees_with_per_chip_gdal(tmp_path, product) -> None:
    """GDAL's per-chip warp puts some sub-pixel centres on the other side of a product pixel
    edge (its approximate transform differs from PROJ's by ~1e-5 product pixels): measured
    4 (100 m product) to 12 (10 m) sub-pixels per chip, at most 5.3e-5 in a fraction (one
    sub-pixel is 1/360000 = 2.8e-6). The block sampling equals an exact projection of every
    centre (``test_sampling_equals_exact_projection_of_every_sub_pixel``)."""
    data, transform, nodata, values = product
    href = _write(tmp_path, data, transform, "EPSG:3035", nodata)
    _compare(href, values, nodata, "auto", 1e-4)


def _exact_sampling(href: str, chip: ChipGeometry, n: int) -> np.ndarray:
    """Product values at every sub-pixel centre, each centre projected exactly by PROJ."""
    ds = open_dataset(href)
    minx, _, _, maxy = chip.bounds
    centres = (np.arange(n) + 0.5) * chip.size_m / n
    xs, ys = np.meshgrid(minx + centres, maxy - centres)
    tr = Transformer.from_crs(chip.epsg, ds.crs.to_wkt(), always_xy=True)
    sx, sy = tr.transform(xs.ravel(), ys.ravel())
    inv = ~ds.transform
    cols = np.floor(inv.a * sx + inv.b * sy + inv.c).astype(int)
    rows = np.floor(inv.d * sx + inv.e * sy + inv.f).astype(int)
    data = ds.read(1)
    inside = (cols >= 0) & (cols < ds.width) & (rows >= 0) & (rows < ds.height)
    return np.where(inside, data[np.where(inside, rows, 0), np.where(inside, cols, 0)], -1)


@pytest.mark.parametrize("crs", ["EPSG:3035", "EPSG:32633", "EPSG:4326"])
def test_sampling_equals_exact_projection_of_every_sub_pixel(tmp_path, crs) -> None:
    minx, miny, maxx, maxy = _chips_area()
    tr = Transformer.from_crs(32632, crs, always_xy=True)
    xs, ys = tr.transform([minx, maxx, minx, maxx], [miny, miny, maxy, maxy])
    res = 100.0 if crs != "EPSG:4326" else 0.001
    west, north = min(xs) - 3.3 * res, max(ys) + 2.7 * res
    shape = (int((max(ys) - min(ys)) / res) + 6, int((max(xs) - min(xs)) / res) + 6)
    data = np.random.default_rng(7).integers(1, 6, size=shape).astype(np.uint8)
    href = _write(tmp_path, data, Affine(res, 0, west, 0, -res, north), crs, None)
    n = 200  # 6 m sub-pixels keep the exact reference quick
    got = block_fractions(href, CHIPS[:3], subpixel_m=1200 / n)
    for chip, fractions in zip(CHIPS[:3], got, strict=True):
        sampled = _exact_sampling(href, chip, n)
        counts = {int(v): int((sampled == v).sum()) for v in np.unique(sampled) if v > 0}
        assert fractions.fractions == {v: c / n**2 for v, c in counts.items()}


def test_lattice_interpolation_error_is_negligible() -> None:
    """The bilinear lattice (60 m) against the exact projection of a chip's sub-pixel centres,
    UTM 32N to EPSG:3035: far below the 1e-6 product pixel that could flip a sample."""

    class Product:
        crs = rasterio.crs.CRS.from_epsg(3035)
        transform = Affine(100.0, 0, 4_400_000.0, 0, -100.0, 2_600_000.0)

    from pipeline.labels.raster_blocks import _interpolate

    cols, rows = pixel_lattice(Product, CHIPS[:1])
    n = 600
    centres = (np.arange(n) + 0.5) * 2.0
    minx, _, _, maxy = CHIPS[0].bounds
    xs, ys = np.meshgrid(minx + centres, maxy - centres)
    sx, sy = Transformer.from_crs(32632, 3035, always_xy=True).transform(xs, ys)
    inv = ~Product.transform
    exact_cols, exact_rows = inv.a * sx + inv.c, inv.e * sy + inv.f
    assert np.abs(_interpolate(cols, n)[0] - exact_cols).max() < 1e-6
    assert np.abs(_interpolate(rows, n)[0] - exact_rows).max() < 1e-6


def _shapely_reference(href: str, chip: ChipGeometry) -> dict[int, float]:
    ds = open_dataset(href)
    data = ds.read(1)
    tr = Transformer.from_crs(ds.crs.to_wkt(), chip.epsg, always_xy=True)
    square = shapely.box(*chip.bounds)
    out: dict[int, float] = {}
    for row, col in itertools.product(range(data.shape[0]), range(data.shape[1])):
        x0, y0 = ds.transform @ (col, row)
        x1, y1 = ds.transform @ (col + 1, row + 1)
        pixel = shapely.segmentize(shapely.box(x0, y1, x1, y0), 10.0)
        projected = shapely.transform(pixel, lambda xy: np.column_stack(tr.transform(*xy.T)))
        area = projected.intersection(square).area
        if area > 0:
            out[int(data[row, col])] = out.get(int(data[row, col]), 0.0) + area / square.area
    return out


def test_block_and_per_chip_warps_against_exact_areas(tmp_path) -> None:
    """Both are within the sub-grid's quantisation of the true overlap areas."""
    chip = CHIPS[5]
    minx, miny, maxx, maxy = chip.bounds
    tr = Transformer.from_crs(32632, 3035, always_xy=True)
    xs, ys = tr.transform([minx, maxx, minx, maxx], [miny, miny, maxy, maxy])
    data = np.random.default_rng(3).integers(1, 5, size=(18, 18)).astype(np.uint8)
    transform = Affine(100.0, 0, min(xs) - 250.5, 0, -100.0, max(ys) + 230.25)
    href = _write(tmp_path, data, transform, "EPSG:3035", None)
    truth = _shapely_reference(href, chip)
    block = block_fractions(href, [chip])[0].fractions
    per_chip = per_chip_fractions(href, chip)[0]
    for value, area in truth.items():
        assert block[value] == pytest.approx(area, abs=2e-3)
        assert per_chip[value] == pytest.approx(area, abs=2e-3)


@settings(SETTINGS, max_examples=8)
@given(seed=st.integers(0, 2**32 - 1), shift=st.floats(-3000, 3000))
def test_corine_vector_block_equals_per_chip(tmp_path, seed, shift) -> None:
    """Random overlapping CORINE polygons in EPSG:3035 (some outside the taxonomy, some
    outside the chips): one read per block gives the per-chip fractions."""
    import geopandas as gpd

    from pipeline.labels.corine import CorineVector

    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = _chips_area()
    tr = Transformer.from_crs(32632, 3035, always_xy=True)
    xs, ys = tr.transform([minx, maxx], [miny, maxy])
    x0, y0 = min(xs) + shift, min(ys) - shift
    boxes = [
        shapely.box(x, y, x + w, y + h)
        for x, y, w, h in zip(
            rng.uniform(x0 - 1000, x0 + 5000, 40),
            rng.uniform(y0 - 1000, y0 + 5000, 40),
            rng.uniform(100, 2000, 40),
            rng.uniform(100, 2000, 40),
            strict=True,
        )
    ]
    codes = rng.choice([211, 311, 512, 112, 999], size=40)
    path = tmp_path / f"clc-{next(_count)}.gpkg"
    gpd.GeoDataFrame({"Code_18": codes}, geometry=boxes, crs="EPSG:3035").to_file(path)
    got = CorineVector(str(path)).block_fractions([*CHIPS, FAR])
    for chip, fractions in zip([*CHIPS, FAR], got, strict=True):
        want = per_chip_vector_fractions(str(path), chip, "Code_18")
        total = sum(want.values())
        if total > 1.0:
            want = {k: v / total for k, v in want.items()}
        assert fractions.fractions.keys() == want.keys()
        for code, value in want.items():
            assert fractions.fractions[code] == pytest.approx(value, abs=1e-12)
