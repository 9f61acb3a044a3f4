"""The band contract from STAC ``raster:bands``, mapping files and the run config."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.sources.band_values import normalize_unit, resolved
from pipeline.sources.base import BandValues, Scene, SearchQuery
from pipeline.sources.geoparquet import GeoParquetSource
from pipeline.sources.profiles import CLM_ARCHIVE, load_profile, scene_from_item

RTC_ITEM = (
    "stac/stactools-sentinel1-examples/rtc/sentinel1-rtc-aws/2020/S1A_20200103_17RMJ_ASC/"
    "S1A_20200103_17RMJ_ASC.json"
)
RTC_MAPPING = {
    "name": "indigo-rtc",
    "collections": {
        "sentinel1-rtc-aws": {
            "sensor": "s1",
            "product": "RTC",
            "assets": {"VV": "gamma0_vv", "VH": "gamma0_vh"},
        }
    },
}


def _profile(tmp_path: Path, mapping: dict):
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(mapping))
    return load_profile(path)


def test_real_rtc_item_raster_bands_fill_the_contract(real_data, tmp_path):
    """stactools' Sentinel-1 RTC item (real-derived): ``raster:bands`` give nodata 0 and no
    unit, so the unit is the S1 default, linear power (gamma0 RTC is linear power)."""
    item = json.loads((real_data / RTC_ITEM).read_text())
    scene = scene_from_item(item, _profile(tmp_path, RTC_MAPPING))
    assert scene.assets["VV"].values == BandValues(nodata=0.0)
    assert resolved(scene, "VV") == BandValues(unit="linear_power", nodata=0.0)


def test_real_rtc_item_declared_db_in_the_mapping_file(real_data, tmp_path):
    item = json.loads((real_data / RTC_ITEM).read_text())
    mapping = copy.deepcopy(RTC_MAPPING)
    mapping["collections"]["sentinel1-rtc-aws"]["band_values"] = {
        "s1": {"unit": "dB", "nodata": -99},
        "VH": {"nodata": -32768},
    }
    scene = scene_from_item(item, _profile(tmp_path, mapping))
    assert scene.assets["VV"].values == BandValues(unit="db", nodata=-99.0)
    assert scene.assets["VH"].values == BandValues(unit="db", nodata=-32768.0)


def _hand_written_db_item() -> dict:
    """Hand-written (not a provider's): a geocoded S1 item whose ``raster:bands`` say dB,
    as SNAP / pyroSAR-style catalogues write them; VV in STAC 1.0 ``raster:bands``, VH in
    STAC 1.1 ``bands`` with ``raster:scale``/``raster:offset``."""
    grid = {"proj:shape": [120, 120], "proj:transform": [20, 0, 600000, 0, -20, 5040000]}
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": "S1A_IW_GRDH_1SDV_20220601T053000_DB",
        "collection": "sentinel-1-grd",
        "bbox": [10.0, 45.0, 10.1, 45.1],
        "geometry": {"type": "Point", "coordinates": [10.0, 45.0]},
        "properties": {
            "datetime": "2022-06-01T05:30:00Z",
            "proj:epsg": 32632,
            "sar:polarizations": ["VV", "VH"],
            "sar:instrument_mode": "IW",
        },
        "assets": {
            "vv": {"href": "vv.tif", **grid, "raster:bands": [{"unit": "dB", "nodata": -99}]},
            "vh": {
                "href": "vh.tif",
                **grid,
                "bands": [
                    {"unit": "dB", "nodata": -99, "raster:scale": 0.01, "raster:offset": -30}
                ],
            },
        },
    }


def test_hand_written_item_raster_bands_say_db():
    scene = scene_from_item(_hand_written_db_item(), CLM_ARCHIVE)
    assert scene.assets["VV"].values == BandValues(unit="db", nodata=-99.0)
    assert scene.assets["VH"].values == BandValues("db", 0.01, -30.0, -99.0)


def test_demo_items_declare_linear_power_and_s2_scale(tiny_archive):
    query = SearchQuery(
        ("sentinel-1-grd", "sentinel-2-l2a"),
        datetime(2020, 1, 1, tzinfo=UTC),
        datetime(2024, 1, 1, tzinfo=UTC),
    )
    scenes = list(GeoParquetSource(tiny_archive / "items.parquet").search(query))
    s1 = next(s for s in scenes if s.sensor == "s1")
    s2 = next(s for s in scenes if s.sensor == "s2")
    assert s1.assets["VV"].values == BandValues(unit="linear_power", nodata=0.0)
    # S2: the scale is taken, the offset is left to the baseline rule (see band_values)
    assert s2.assets["B04"].values == BandValues(unit="dn", scale=0.0001, nodata=0.0)
    assert s2.assets["SCL"].values == BandValues()


def test_scenes_round_trip_their_contract():
    scene = scene_from_item(_hand_written_db_item(), CLM_ARCHIVE)
    assert Scene.from_record(scene.to_record()) == scene


def test_unit_spellings():
    assert [normalize_unit(u) for u in ("dB", "decibels", "linear sigma0", "Amplitude")] == [
        "db",
        "db",
        "linear_power",
        "linear_amplitude",
    ]


def test_run_config_declares_band_values(tiny_archive, tmp_path, run_config):
    source = {"kind": "geoparquet", "bands": {"s1": {"unit": "dB", "nodata": -99}}}
    config = load_config(
        run_config(tmp_path / "run.yaml", tiny_archive, tmp_path / "out", source=source)
    )
    assert config.source.bands == {"s1": BandValues(unit="db", nodata=-99.0)}


@pytest.mark.parametrize(
    ("bands", "match"),
    [
        ({"s1": {"unit": "dn"}}, "not a s1 unit"),
        ({"VV": {"unit": "db", "gain": 2}}, "gain"),
        ({"s3": {"unit": "db"}}, "s3"),
    ],
)
def test_run_config_rejects_bad_band_values(tiny_archive, tmp_path, run_config, bands, match):
    source = {"kind": "geoparquet", "bands": bands}
    path = run_config(tmp_path / "run.yaml", tiny_archive, tmp_path / "out", source=source)
    with pytest.raises(ConfigError, match=match):
        load_config(path)
