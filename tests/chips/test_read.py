"""Chip reads from COGs served over loopback HTTP with range requests."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
import shapely.geometry
from affine import Affine
from pyproj import Transformer

from pipeline.archive.serve import serve_directory
from pipeline.chips.plan import plan_scene
from pipeline.chips.read import has_boa_offset, read_scene_chips
from pipeline.sources.base import S2_BANDS, BandAsset, Scene

EPSG = 32632
ORIGIN = (600000.0, 5040000.0)  # upper-left, on the 1200 m grid
SIZE_M = 6000  # 5 x 5 chips


def _write_cog(path: Path, data: np.ndarray, res: float, nodata: float | None = 0) -> None:
    profile = {
        "driver": "COG",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": f"EPSG:{EPSG}",
        "transform": Affine(res, 0, ORIGIN[0], 0, -res, ORIGIN[1]),
        "blocksize": 256,
        "compress": "deflate",
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def _s2_scene(
    root: Path, baseline: str = "03.00", offset: int = 0
) -> tuple[Scene, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    assets, truth = {}, {}
    for i, band in enumerate((*S2_BANDS, "SCL")):
        res = 10 if band in ("B02", "B03", "B04", "B08") else 60 if band in ("B01", "B09") else 20
        n = SIZE_M // res
        if band == "SCL":
            data = np.full((n, n), 4, np.uint8)
            data[:30, :30] = 9  # a cloud in the north-west corner
        else:
            data = (rng.integers(1, 5000, (n, n)) + i + offset).astype(np.uint16)
        _write_cog(root / f"{band}.tif", data, res)
        truth[band] = data
        assets[band] = BandAsset(
            href=f"{band}.tif",
            gsd=res,
            shape=(n, n),
            transform=(res, 0, ORIGIN[0], 0, -res, ORIGIN[1]),
        )
    scene = Scene(
        item_id="S2X_TEST",
        collection="sentinel-2-l2a",
        sensor="s2",
        platform="sentinel-2a",
        datetime=datetime(2022, 6, 1, tzinfo=UTC),
        epsg=EPSG,
        bbox=(0, 0, 0, 0),
        geometry=_footprint_lonlat(),
        assets=assets,
        processing_baseline=baseline,
    )
    return scene, truth


def _footprint_lonlat() -> dict:
    to_ll = Transformer.from_crs(EPSG, 4326, always_xy=True)
    square = shapely.box(ORIGIN[0], ORIGIN[1] - SIZE_M, ORIGIN[0] + SIZE_M, ORIGIN[1]).buffer(5)
    return shapely.geometry.mapping(
        shapely.transform(square, lambda xy: np.column_stack(to_ll.transform(xy[:, 0], xy[:, 1])))
    )


def _at(scene: Scene, base: str) -> Scene:
    """The scene with asset hrefs joined to ``base`` (a URL or a directory)."""
    assets = {b: dataclasses.replace(a, href=f"{base}/{a.href}") for b, a in scene.assets.items()}
    return dataclasses.replace(scene, assets=assets)


def test_s2_chips_over_http_match_the_files_and_fetch_each_tile_once(tmp_path):
    scene, truth = _s2_scene(tmp_path)
    planned = plan_scene(scene)
    assert len(planned) == 25
    with serve_directory(tmp_path) as server:
        chips = list(read_scene_chips(_at(scene, server.url), planned))
        stats = server.stats
    assert len(chips) == 25
    for chip in chips:
        r0 = round((ORIGIN[1] - chip.chip.cell.bounds[3]) / 10)
        c0 = round((chip.chip.cell.bounds[0] - ORIGIN[0]) / 10)
        np.testing.assert_array_equal(chip.image[1], truth["B02"][r0 : r0 + 120, c0 : c0 + 120])
        b05 = truth["B05"][r0 // 2 : r0 // 2 + 60, c0 // 2 : c0 // 2 + 60]
        np.testing.assert_array_equal(chip.image[4], np.repeat(np.repeat(b05, 2, 0), 2, 1))
        assert chip.image.shape == (12, 120, 120) and chip.image.dtype == np.float32
    assert stats.range_requests > 0
    for band in S2_BANDS:
        size = (tmp_path / f"{band}.tif").stat().st_size
        assert stats.by_path[f"/{band}.tif"] <= size * 1.05, f"{band} fetched more than once"


def test_cloud_fraction_from_scl(tmp_path):
    scene, _ = _s2_scene(tmp_path)
    chips = read_scene_chips(_at(scene, str(tmp_path)), plan_scene(scene))
    chips = {c.chip.cell.col: c for c in chips if c.chip.cell.row == 4199}
    north_west = chips[500]
    # SCL cloud block of 30 x 30 px at 20 m = 600 m x 600 m: a quarter of the first chip
    assert north_west.cloud_fraction == pytest.approx(0.25)
    assert chips[501].cloud_fraction == 0.0


def test_processing_baseline_offset_is_removed(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old, _ = _s2_scene(tmp_path / "old", "03.00", offset=0)
    new, _ = _s2_scene(tmp_path / "new", "04.00", offset=1000)
    a = next(read_scene_chips(_at(old, str(tmp_path / "old")), plan_scene(old)))
    b = next(read_scene_chips(_at(new, str(tmp_path / "new")), plan_scene(new)))
    np.testing.assert_array_equal(a.image, b.image)
    assert a.image.max() > 1000


@pytest.mark.parametrize(
    ("baseline", "expected"),
    [("02.12", False), ("03.01", False), ("04.00", True), ("05.11", True), (None, False)],
)
def test_has_boa_offset(baseline, expected):
    assert has_boa_offset(baseline) is expected
