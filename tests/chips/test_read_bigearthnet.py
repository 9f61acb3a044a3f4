"""The chip reader on real BigEarthNet Sentinel-2 and Sentinel-1 patches (real pixels)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio

from pipeline.chips.grid import ChipGeometry
from pipeline.chips.plan import PlannedChip
from pipeline.chips.read import read_scene_chips
from pipeline.errors import ConfigError
from pipeline.sources.base import S1_BANDS, S2_BANDS, BandAsset, BandValues, Scene

pytestmark = pytest.mark.realdata


def _patch_dirs(real_data: Path, sensor: str) -> list[Path]:
    return sorted(p for p in (real_data / "bigearthnet" / sensor).iterdir() if p.is_dir())


def _cell(meta: dict, epsg: int) -> ChipGeometry:
    coords = meta["coordinates"]
    ulx, lry = coords["ulx"], coords.get("lry", coords.get("lly"))  # S1 JSONs say "lly"
    return ChipGeometry(epsg, 0, 0, origin_x=float(ulx), origin_y=float(lry))


def _scene(
    patch: Path, sensor: str, bands: dict[str, str], meta: dict
) -> tuple[Scene, PlannedChip]:
    with rasterio.open(next(iter(bands.values()))) as ds:
        epsg = ds.crs.to_epsg()
    cell = _cell(meta, epsg)
    scene = Scene(
        item_id=patch.name,
        collection="sentinel-2-l2a" if sensor == "s2" else "sentinel-1-grd",
        sensor=sensor,
        platform="",
        datetime=datetime(2017, 6, 1),
        epsg=epsg,
        bbox=(0, 0, 0, 0),
        geometry={},
        assets={b: BandAsset(h) for b, h in bands.items()},
        processing_baseline="02.05" if sensor == "s2" else None,
    )
    return scene, PlannedChip(patch.name, patch.name, cell)


def _native(path: str) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def test_s2_patches_read_at_10m_with_native_values(real_data):
    for patch in _patch_dirs(real_data, "S2"):
        meta = json.loads(next(patch.glob("*_labels_metadata.json")).read_text())
        bands = {b: str(patch / f"{patch.name}_{b}.tif") for b in S2_BANDS}
        scene, planned = _scene(patch, "s2", bands, meta)
        (chip,) = read_scene_chips(scene, [planned])
        assert chip.image.shape == (12, 120, 120)
        assert chip.nodata_fraction == 0.0
        for i, band in enumerate(S2_BANDS):
            native = _native(bands[band]).astype(np.float32)
            factor = 120 // native.shape[0]
            np.testing.assert_array_equal(
                chip.image[i], np.repeat(np.repeat(native, factor, 0), factor, 1)
            )
        # real L2A reflectance x 10000: vegetation patches have NIR (B08) above red (B04)
        assert chip.image[7].mean() > chip.image[3].mean()


def test_s1_patches_linear_to_db_round_trip(real_data, tmp_path):
    for patch in _patch_dirs(real_data, "S1"):
        meta = json.loads(next(patch.glob("*_labels_metadata.json")).read_text())
        bands = {}
        for band in S1_BANDS:
            src = patch / f"{patch.name}_{band}.tif"
            with rasterio.open(src) as ds:
                profile, db = ds.profile, ds.read(1)
            linear_path = tmp_path / f"{patch.name}_{band}_linear.tif"
            with rasterio.open(linear_path, "w", **{**profile, "nodata": 0}) as dst:
                dst.write((10 ** (db / 10)).astype(np.float32), 1)
            bands[band] = str(linear_path)
        scene, planned = _scene(patch, "s1", bands, meta)
        (chip,) = read_scene_chips(scene, [planned])
        for i, band in enumerate(S1_BANDS):
            expected = _native(str(patch / f"{patch.name}_{band}.tif"))
            np.testing.assert_allclose(chip.image[i], expected, atol=1e-3)
        assert chip.image[0].mean() > chip.image[1].mean()  # VV above VH, as on real land


def _declared(scene: Scene, unit: str) -> Scene:
    assets = {
        b: dataclasses.replace(a, values=BandValues(unit=unit)) for b, a in scene.assets.items()
    }
    return dataclasses.replace(scene, assets=assets)


def _max_round_trip_error(expected: np.ndarray) -> np.ndarray:
    """dB -> float32 linear -> dB -> float32: the linear value is rounded to float32 (relative
    error <= 2**-24, i.e. 10 / ln 10 * 2**-24 = 2.6e-7 dB after the log) and the dB result is
    rounded to float32 once more (<= half an ulp); the bound allows one whole ulp."""
    return np.spacing(np.abs(expected).astype(np.float32)) + 2.6e-7


def test_s1_patches_read_as_distributed_db_equal_the_linear_route(real_data, tmp_path):
    """The real BigEarthNet S1 patches are float32 dB: declared ``db`` they are read as they
    are, and give the chips the linear route gives on linear GeoTIFFs derived from them."""
    for patch in _patch_dirs(real_data, "S1"):
        meta = json.loads(next(patch.glob("*_labels_metadata.json")).read_text())
        originals = {b: str(patch / f"{patch.name}_{b}.tif") for b in S1_BANDS}
        scene, planned = _scene(patch, "s1", originals, meta)
        (as_db,) = read_scene_chips(_declared(scene, "db"), [planned])
        linear = {}
        for band, src in originals.items():
            with rasterio.open(src) as ds:
                profile, db = ds.profile, ds.read(1).astype(np.float64)
            linear[band] = str(tmp_path / f"{patch.name}_{band}_linear.tif")
            with rasterio.open(linear[band], "w", **profile) as dst:
                dst.write((10 ** (db / 10)).astype(np.float32), 1)
        (as_linear,) = read_scene_chips(
            _declared(_scene(patch, "s1", linear, meta)[0], "linear_power"), [planned]
        )
        assert as_db.nodata_fraction == as_linear.nodata_fraction == 0.0
        for i, band in enumerate(S1_BANDS):
            native = _native(originals[band])
            np.testing.assert_array_equal(as_db.image[i], np.maximum(native, -50.0))
            diff = np.abs(as_linear.image[i].astype(np.float64) - as_db.image[i])
            assert (diff <= _max_round_trip_error(as_db.image[i])).all(), (patch.name, diff.max())


def test_s1_db_patches_declared_linear_fail_naming_the_asset_and_the_fix(real_data):
    patch = _patch_dirs(real_data, "S1")[0]
    meta = json.loads(next(patch.glob("*_labels_metadata.json")).read_text())
    bands = {b: str(patch / f"{patch.name}_{b}.tif") for b in S1_BANDS}
    scene, planned = _scene(patch, "s1", bands, meta)  # undeclared: S1 defaults to linear power
    with pytest.raises(ConfigError) as caught:
        list(read_scene_chips(scene, [planned]))
    message = str(caught.value)
    assert f"scene {patch.name}: band VV at {bands['VV']}" in message
    assert "declared linear_power" in message and "negative" in message
    assert "source.bands.VV.unit: db" in message
