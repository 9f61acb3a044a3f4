"""The band contract at the reader: S1 in dB, linear power or linear amplitude, the source's
nodata, scale/offset, and the guard against a wrong declaration (real GeoTIFFs)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from pipeline.archive.serve import serve_directory
from pipeline.chips.grid import ChipGeometry
from pipeline.chips.plan import PlannedChip
from pipeline.chips.read import S1_DB_FLOOR, read_scene_chips
from pipeline.errors import ConfigError
from pipeline.sources.band_values import apply_overrides
from pipeline.sources.base import BandAsset, BandValues, Scene

EPSG = 32632
ORIGIN = (600000.0, 5040000.0)  # upper-left, on the 1200 m grid: 2 x 2 chips
CHIPS = [ChipGeometry(EPSG, col, row) for row in (4199, 4198) for col in (500, 501)]
RES = 20.0
N = 120  # 2400 m at 20 m


def _write(path: Path, data: np.ndarray, nodata: float | None) -> str:
    profile = {"driver": "GTiff", "width": N, "height": N, "count": 1, "dtype": "float32"}
    profile |= {"crs": f"EPSG:{EPSG}", "nodata": nodata, "tiled": True, "blockxsize": 64}
    profile |= {"blockysize": 64, "transform": Affine(RES, 0, ORIGIN[0], 0, -RES, ORIGIN[1])}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.astype(np.float32), 1)
    return str(path)


def _db_truth(seed: int) -> np.ndarray:
    """Backscatter of land in dB: VV about -12, VH about -19, with speckle."""
    rng = np.random.default_rng(seed)
    return (rng.normal(-12.0 - 7 * seed, 3.0, (N, N))).astype(np.float32)


def _scene(hrefs: dict[str, str], values: BandValues | None = None) -> Scene:
    return Scene(
        item_id="S1X_BAND_VALUES",
        collection="sentinel-1-grd",
        sensor="s1",
        platform="sentinel-1a",
        datetime=datetime(2022, 6, 1, tzinfo=UTC),
        epsg=EPSG,
        bbox=(0, 0, 0, 0),
        geometry={},
        assets={b: BandAsset(h, values=values or BandValues()) for b, h in hrefs.items()},
    )


def _chips(scene: Scene) -> list:
    planned = [PlannedChip(f"k_{c.col}_{c.row}", scene.item_id, c) for c in CHIPS]
    return list(read_scene_chips(scene, planned))


def _at_10m(a: np.ndarray, chip: ChipGeometry) -> np.ndarray:
    """The chip's window of a 20 m array, replicated to 10 m."""
    c0, r0 = round((chip.bounds[0] - ORIGIN[0]) / RES), round((ORIGIN[1] - chip.bounds[3]) / RES)
    part = a[r0 : r0 + 60, c0 : c0 + 60]
    return np.repeat(np.repeat(part, 2, 0), 2, 1)


def test_db_geotiff_at_20m_with_nodata_minus_99_gives_10m_chips(tmp_path):
    truth = {"VV": _db_truth(0), "VH": _db_truth(1)}
    stored = {b: a.copy() for b, a in truth.items()}
    stored["VV"][:30, :30] = -99.0  # 600 m x 600 m in the north-west chip, VV only
    hrefs = {b: _write(tmp_path / f"{b}.tif", a, -99.0) for b, a in stored.items()}
    chips = _chips(_scene(hrefs, BandValues(unit="db", nodata=-99.0)))
    assert [c.nodata_fraction for c in chips] == [0.25, 0.0, 0.0, 0.0]
    for pixels in chips:
        cell = pixels.chip.cell
        hole = _at_10m(stored["VV"], cell) == -99.0
        for i, band in enumerate(("VV", "VH")):
            expected = np.maximum(_at_10m(truth[band], cell), S1_DB_FLOOR)
            np.testing.assert_array_equal(pixels.image[i][~hole], expected[~hole])
            assert (pixels.image[i][hole] == S1_DB_FLOOR).all()  # both channels: a pixel is out
    assert chips[0].image.shape == (2, 120, 120) and chips[0].image.dtype == np.float32


@pytest.mark.parametrize(("unit", "exponent"), [("linear_power", 10), ("linear_amplitude", 20)])
def test_linear_power_and_amplitude_give_the_db_values(tmp_path, unit, exponent):
    truth = {"VV": _db_truth(0), "VH": _db_truth(1)}
    hrefs = {
        b: _write(tmp_path / f"{b}.tif", 10 ** (a.astype(np.float64) / exponent), 0)
        for b, a in truth.items()
    }
    for pixels in _chips(_scene(hrefs, BandValues(unit=unit))):
        for i, band in enumerate(("VV", "VH")):
            expected = _at_10m(truth[band], pixels.chip.cell)
            np.testing.assert_allclose(pixels.image[i], expected, rtol=0, atol=1e-5)


def test_scale_and_offset_are_applied_before_the_conversion(tmp_path):
    """Digital numbers with a declared scale: dB = raw * 0.01 - 30."""
    truth = {"VV": _db_truth(0), "VH": _db_truth(1)}
    raw = {b: np.round((a + 30.0) * 100.0) for b, a in truth.items()}
    hrefs = {b: _write(tmp_path / f"{b}.tif", a, None) for b, a in raw.items()}
    values = BandValues(unit="db", scale=0.01, offset=-30.0)
    for pixels in _chips(_scene(hrefs, values)):
        for i, band in enumerate(("VV", "VH")):
            expected = _at_10m(raw[band], pixels.chip.cell) * 0.01 - 30.0
            np.testing.assert_allclose(pixels.image[i], expected, rtol=0, atol=1e-5)


def test_db_data_declared_linear_fails_naming_the_asset_and_the_fix(tmp_path):
    hrefs = {
        b: _write(tmp_path / f"{b}.tif", _db_truth(i), None) for i, b in enumerate(["VV", "VH"])
    }
    with serve_directory(tmp_path) as server:
        remote = {b: f"{server.url}/{b}.tif?sig=SECRET123" for b in hrefs}
        with pytest.raises(ConfigError) as caught:
            _chips(_scene(remote))  # undeclared: S1 defaults to linear power
    message = str(caught.value)
    assert "SECRET123" not in message
    assert (
        f"scene S1X_BAND_VALUES: band VV at {server.url}/VV.tif?... is declared linear_power"
        in message
    )
    assert "100% of its valid pixels are negative" in message
    assert "source.bands.VV.unit: db" in message and "source.bands.s1.unit: db" in message


def test_linear_data_declared_db_fails(tmp_path):
    hrefs = {
        b: _write(tmp_path / f"{b}.tif", 10 ** (_db_truth(i) / 10), 0)
        for i, b in enumerate(["VV", "VH"])
    }
    with pytest.raises(
        ConfigError, match=r"declared db but no valid pixel is below 0 dB"
    ) as caught:
        _chips(_scene(hrefs, BandValues(unit="db")))
    assert "source.bands.VV.unit: linear_power" in str(caught.value)


def test_digital_numbers_declared_db_fail(tmp_path):
    hrefs = {b: _write(tmp_path / f"{b}.tif", np.full((N, N), 400.0), 0) for b in ("VV", "VH")}
    with pytest.raises(ConfigError, match="its median is 400"):
        _chips(_scene(hrefs, BandValues(unit="db")))


def test_the_run_config_declaration_wins_over_the_items(tmp_path):
    """The item says linear (like the demo's ``raster:bands``); ``source.bands`` says dB."""
    truth = {"VV": _db_truth(0), "VH": _db_truth(1)}
    hrefs = {b: _write(tmp_path / f"{b}.tif", a, -99.0) for b, a in truth.items()}
    item_says = _scene(hrefs, BandValues(unit="linear_power", nodata=0.0))
    with pytest.raises(ConfigError):
        _chips(item_says)
    [overridden] = apply_overrides([item_says], {"s1": BandValues(unit="db", nodata=-99.0)})
    assert overridden.assets["VV"].values == BandValues(unit="db", nodata=-99.0)
    [by_band] = apply_overrides(
        [item_says], {"s1": BandValues(unit="db"), "VH": BandValues(unit="linear_power")}
    )
    assert by_band.assets["VH"].values.unit == "linear_power"  # the band's entry wins
    pixels = _chips(overridden)[1]
    np.testing.assert_array_equal(pixels.image[0], _at_10m(truth["VV"], pixels.chip.cell))


def test_an_unknown_unit_fails_with_the_fix(tmp_path):
    hrefs = {b: _write(tmp_path / f"{b}.tif", _db_truth(0), None) for b in ("VV", "VH")}
    scene = _scene(hrefs, BandValues(unit="furlongs"))
    with pytest.raises(ConfigError, match=r"declares unit 'furlongs'.*source.bands.VV.unit"):
        _chips(scene)
    assert dataclasses.replace(scene.assets["VV"].values, unit=None).declared is False
