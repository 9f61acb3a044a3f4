"""Provider profiles normalize every provider's item layout onto the same scene record."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, SourceError
from pipeline.sources.base import Scene
from pipeline.sources.profiles import BUILTIN_PROFILES, load_profile, scene_from_item

DATA = Path(__file__).parent / "data"


def _item(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.realdata
def test_stactools_s2_l2a_example_parses_through_a_mapping_file(real_data):
    profile = load_profile(DATA / "stactools-mapping.yaml")
    path = next((real_data / "stac" / "stactools-sentinel2-examples").rglob("*_L2A.json"))
    scene = scene_from_item(_item(path), profile)
    assert scene.sensor == "s2" and scene.epsg == 32707
    assert scene.processing_baseline == "02.12" and scene.extra["provider"] == "stactools-examples"
    assert scene.assets["B02"].href.endswith("_B02_10m.tif")
    assert scene.assets["B02"].shape == (10980, 10980) and scene.assets["SCL"].gsd == 20
    assert Scene.from_record(scene.to_record()) == scene


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("pattern", "product", "polarizations"),
    [
        ("S1A_IW_GRDH_*.json", "GRD", ("VV", "VH")),
        ("S1A_EW_GRDM_*.json", "GRD", ("HH", "HV")),
        ("S1A_2020*_ASC.json", "RTC", ("VV", "VH")),
    ],
)
def test_stactools_s1_examples_parse(real_data, pattern, product, polarizations):
    profile = load_profile(DATA / "stactools-mapping.yaml")
    path = next((real_data / "stac" / "stactools-sentinel1-examples").rglob(pattern))
    scene = scene_from_item(_item(path), profile)
    assert scene.sensor == "s1" and scene.extra["product"] == product
    assert scene.polarizations == polarizations and set(scene.assets) == set(polarizations)
    assert scene.orbit_state in ("ascending", "descending") and scene.relative_orbit


@pytest.mark.realdata
def test_items_outside_the_profile_fail_naming_the_collection(real_data):
    profile = load_profile(DATA / "stactools-mapping.yaml")
    path = next((real_data / "stac" / "stactools-sentinel2-examples").rglob("*_L1C.json"))
    with pytest.raises(SourceError, match=r"sentinel2-l1c-example.*mapping file"):
        scene_from_item(_item(path), profile)


def test_cdse_stac_1_1_item_with_per_resolution_assets():
    scene = scene_from_item(_item(DATA / "cdse-s2-l2a-item.json"), BUILTIN_PROFILES["cdse"])
    assert scene.epsg == 32632  # from proj:code
    assert scene.processing_baseline == "05.09"  # from processing:version
    assert scene.assets["B02"].href.endswith("B02_10m.jp2")
    assert scene.assets["B01"].href.endswith("B01_60m.jp2")
    assert scene.assets["B8A"].href.endswith("B8A_20m.jp2") and "SCL" in scene.assets
    assert scene.extra["tile"] == "32TQR" and scene.extra["processed"].startswith("2023-07-05T13")


def test_baseline_falls_back_to_the_product_name():
    item = _item(DATA / "cdse-s2-l2a-item.json")
    del item["properties"]["processing:version"]
    assert scene_from_item(item, BUILTIN_PROFILES["cdse"]).processing_baseline == "05.09"
    item["id"] = "S2B_MSIL2A_20230705T101559_R065_T32TQR"
    with pytest.raises(SourceError, match="processing baseline"):
        scene_from_item(item, BUILTIN_PROFILES["cdse"])


def test_s2_items_missing_a_band_fail_naming_it():
    item = copy.deepcopy(_item(DATA / "cdse-s2-l2a-item.json"))
    del item["assets"]["B11_20m"]
    with pytest.raises(SourceError, match="B11_20m"):
        scene_from_item(item, BUILTIN_PROFILES["cdse"])


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"name": "x"}, "collections"),
        ({"name": "x", "collections": {"c": {"sensor": "s3", "assets": {"B02": "b"}}}}, "s3"),
        ({"name": "x", "collections": {"c": {"sensor": "s2", "assets": {"B10": "b"}}}}, "B10"),
    ],
)
def test_bad_mapping_files_are_rejected(tmp_path, doc, message):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=message):
        load_profile(path)


def test_unknown_profile_name():
    with pytest.raises(ConfigError, match="built-in profile"):
        load_profile("nasa-cmr")


def test_earth_search_v0_item_normalises_with_baseline_and_tile_from_the_product_id():
    """Earth Search v0 (sentinel-s2-l2a-cogs) keeps the baseline only in sentinel:product_id.
    The fixture follows the v0 field names; it was written for this test."""
    item = _item(DATA / "earth-search-v0-s2-l2a-cogs-item.json")
    scene = scene_from_item(item, BUILTIN_PROFILES["earth-search-v0"])
    assert scene.sensor == "s2" and scene.epsg == 32632 and scene.platform == "sentinel-2b"
    assert scene.processing_baseline == "03.01"  # _N0301_ in sentinel:product_id
    assert scene.extra["tile"] == "32TQR" and scene.cloud_cover == 3.52
    assert scene.assets["B01"].href.endswith("/B01.tif") and scene.assets["B01"].gsd == 60
    assert scene.assets["SCL"].shape == (5490, 5490)
    assert not scene.boa_offset_applied
    assert Scene.from_record(scene.to_record()) == scene
    newer = copy.deepcopy(item)
    newer["properties"]["sentinel:product_id"] = newer["properties"]["sentinel:product_id"].replace(
        "_N0301_", "_N0400_"
    )
    assert (
        scene_from_item(newer, BUILTIN_PROFILES["earth-search-v0"]).processing_baseline == "04.00"
    )
    del newer["properties"]["sentinel:product_id"]
    with pytest.raises(SourceError, match="product_name"):
        scene_from_item(newer, BUILTIN_PROFILES["earth-search-v0"])


def test_cdse_datatake_id_and_a_mapped_product_name_property():
    item = copy.deepcopy(_item(DATA / "cdse-s2-l2a-item.json"))
    item["properties"]["eopf:datatake_id"] = "GS2B_20230705T101559_033076_N05.09"
    scene = scene_from_item(item, BUILTIN_PROFILES["cdse"])
    assert scene.extra["datatake_id"] == "GS2B_20230705T101559_033076_N05.09"
    product = item["id"]
    del item["properties"]["processing:version"], item["properties"]["grid:code"]
    item["id"] = "cdse-item-0001"  # an opaque id: the product name lives in a property
    item["properties"]["my:product"] = product
    with pytest.raises(SourceError, match="processing baseline"):
        scene_from_item(item, BUILTIN_PROFILES["cdse"])
    doc = {
        "name": "cdse-renamed",
        "collections": {"sentinel-2-l2a": {"sensor": "s2", "assets": dict(
            BUILTIN_PROFILES["cdse"].collections["sentinel-2-l2a"].assets)}},
        "properties": {"product_name": ["my:product"]},
    }  # fmt: skip
    from pipeline.sources.profiles import profile_from_mapping

    scene = scene_from_item(item, profile_from_mapping(doc, where="test"))
    assert scene.processing_baseline == "05.09" and scene.extra["tile"] == "32TQR"
