"""The simulated demo archive (scale "tiny"): structure, determinism, STAC, COGs and physics."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pyogrio
import pystac
import pytest
import rasterio
import stac_geoparquet.arrow
from rasterio import features
from rasterio.warp import transform as warp_transform

from pipeline.archive.aoi import prepare_aoi
from pipeline.archive.label_products import CORINE_NODATA, DW_NODATA
from pipeline.archive.layout import S1_COLLECTION, S2_COLLECTION, ArchiveLayout
from pipeline.archive.optical import encode_dn, render_s2
from pipeline.archive.scenes import plan_scenes
from pipeline.archive.simulate import simulate_archive
from pipeline.archive.sites import sites_for
from pipeline.archive.spectra import CLC_GRID_CODE, CLC_TO_DW
from pipeline.archive.stac_catalog import OfflineValidator
from pipeline.errors import ConfigError

SAR_SCHEMA = (
    Path(__file__).resolve().parents[3]
    / "shared/real-data/stac/stac-extensions-sar/json-schema/schema.json"
)
NATIVE_RES = {"B01": 60, "B09": 60, "B05": 20, "B06": 20, "B07": 20, "B8A": 20, "B11": 20,
              "B12": 20, "SCL": 20, "B02": 10, "B03": 10, "B04": 10, "B08": 10}  # fmt: skip
URBAN = (111, 112, 121)
FOREST = (311, 312, 313)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("tiny-archive")
    return root, simulate_archive(root, seed=0, scale="tiny")


@pytest.fixture(scope="module")
def items(archive: tuple[Path, dict]) -> list[pystac.Item]:
    root, manifest = archive
    catalog = pystac.Catalog.from_file(str(root / manifest["catalog"]))
    return sorted(catalog.get_items(recursive=True), key=lambda item: item.id)


def _digests(root: Path) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files
    }


def _read(path: Path) -> tuple[np.ndarray, rasterio.Affine]:
    with rasterio.open(path) as src:
        return src.read(1), src.transform


def _asset(item: pystac.Item, key: str) -> np.ndarray:
    return _read(Path(item.assets[key].get_absolute_href()))[0]


def _db(values: np.ndarray) -> np.ndarray:
    """Backscatter in dB, NaN where there is no data."""
    with np.errstate(divide="ignore"):
        return np.where(values > 0, 10 * np.log10(values), np.nan)


def _epsg(item: pystac.Item) -> int:
    """pystac migrates ``proj:epsg`` (projection v1.1) to ``proj:code`` (v2) when reading."""
    code = item.properties.get("proj:code") or f"EPSG:{item.properties['proj:epsg']}"
    return int(str(code).split(":")[1])


def _scene(items: list[pystac.Item], collection: str, epsg: int, day: str) -> pystac.Item:
    matches = [i for i in items if i.collection_id == collection and _epsg(i) == epsg
               and i.datetime.strftime("%Y-%m-%d") == day]  # fmt: skip
    assert len(matches) == 1, (collection, epsg, day)
    return matches[0]


def _truth(root: Path, manifest: dict, name: str) -> tuple[np.ndarray, rasterio.Affine]:
    aoi = next(a for a in manifest["aois"] if a["name"] == name)
    return _read(root / aoi["truth"])


def _event_mask(root: Path, manifest: dict, hazard: str, shape, transform) -> np.ndarray:
    event = next(e for e in manifest["events"] if e["hazard"] == hazard)
    aoi = next(a for a in manifest["aois"] if a["name"] == event["aoi"])
    frame = pyogrio.read_dataframe(root / event["layers"]["observed_event"]).to_crs(aoi["epsg"])
    mask = features.rasterize(
        [(g, 1) for g in frame.geometry], out_shape=shape, transform=transform
    )
    return mask.astype(bool)


# --- structure and determinism -------------------------------------------------------------


def test_manifest_lists_complete_archive(archive: tuple[Path, dict]) -> None:
    root, manifest = archive
    assert json.loads((root / "archive.json").read_text()) == manifest
    assert manifest["version"] == 1 and manifest["scale"] == "tiny" and manifest["seed"] == 0
    assert manifest["generator"].startswith("crisislandmark ")
    assert manifest["collections"] == {S2_COLLECTION: 4, S1_COLLECTION: 4}
    for aoi in manifest["aois"]:
        assert all(v % 1200 == 0 for v in aoi["bounds"])
        assert aoi["bounds"][2] - aoi["bounds"][0] == 3600
        for key in ("truth", "corine", "dynamic_world"):
            assert (root / aoi[key]).is_file()
    for event in manifest["events"]:
        assert all((root / path).is_file() for path in event["layers"].values())
        assert (root / event["metadata"]).is_file()
    assert (root / manifest["catalog"]).is_file() and (root / manifest["items_parquet"]).is_file()


def test_same_seed_is_byte_identical_other_seed_differs(
    archive: tuple[Path, dict], tmp_path: Path
) -> None:
    root, _ = archive
    simulate_archive(tmp_path / "again", seed=0, scale="tiny")
    again = _digests(tmp_path / "again")
    assert again == _digests(root)
    simulate_archive(tmp_path / "other", seed=1, scale="tiny")
    other = _digests(tmp_path / "other")
    tifs = [name for name in other if name.endswith(".tif")]
    assert tifs and all(other[name] != again[name] for name in tifs if name in again)


def test_unknown_scale_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown archive scale"):
        simulate_archive(tmp_path, scale="huge")


# --- STAC -----------------------------------------------------------------------------------


def test_every_item_validates_offline(items: list[pystac.Item]) -> None:
    validator = OfflineValidator()
    for item in items:
        item.validate(validator=validator)
    assert "https://stac-extensions.github.io/eo/v1.1.0/schema.json" in validator.skipped


@pytest.mark.realdata
def test_s1_items_validate_against_real_sar_schema(items: list[pystac.Item]) -> None:
    if not SAR_SCHEMA.is_file():
        pytest.skip("../shared/real-data (STAC SAR extension schema) is not available")
    validator = OfflineValidator([SAR_SCHEMA])
    for item in items:
        if item.collection_id == S1_COLLECTION:
            item.validate(validator=validator)
    assert not any("/sar/" in uri for uri in validator.skipped)


def test_items_follow_real_naming_and_properties(items: list[pystac.Item]) -> None:
    for item in items:
        if item.collection_id == S2_COLLECTION:
            assert item.id.startswith(("S2A_MSIL2A_", "S2B_MSIL2A_"))
            assert f"_T{item.properties['s2:mgrs_tile']}_" in item.id
            assert set(item.assets) == set(NATIVE_RES)
            assert 0 <= item.properties["eo:cloud_cover"] <= 100
            assert item.properties["s2:product_uri"].endswith(".SAFE")
        else:
            assert item.id.startswith(("S1A_IW_GRDH_1SDV_", "S1B_IW_GRDH_1SDV_"))
            assert set(item.assets) == {"vv", "vh"}
            assert item.properties["sar:polarizations"] == ["VV", "VH"]
            assert item.properties["sar:instrument_mode"] == "IW"
        assert all(asset.roles == ["data"] for asset in item.assets.values())


def test_geoparquet_hrefs_are_relative_to_archive_root(archive: tuple[Path, dict]) -> None:
    root, manifest = archive
    table = pq.read_table(root / manifest["items_parquet"])
    records = list(stac_geoparquet.arrow.stac_table_to_items(table))
    assert len(records) == sum(manifest["collections"].values())
    for record in records:
        for asset in record["assets"].values():
            assert asset["href"].startswith("scenes/") and (root / asset["href"]).is_file()


# --- rasters ----------------------------------------------------------------------------------


def test_assets_are_tiled_cogs_at_native_resolution(items: list[pystac.Item]) -> None:
    for item in items:
        for key, asset in item.assets.items():
            with rasterio.open(asset.get_absolute_href()) as src:
                assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
                assert src.block_shapes[0] == (256, 256) or max(src.shape) < 256
                assert src.nodata == 0
                assert list(src.shape) == asset.extra_fields["proj:shape"]
                if item.collection_id == S2_COLLECTION:
                    assert src.res == (NATIVE_RES[key], NATIVE_RES[key])
                    assert src.dtypes[0] == ("uint8" if key == "SCL" else "uint16")
                else:
                    assert src.res == (10, 10) and src.dtypes[0] == "float32"


def test_scl_clouds_are_brighter_in_blue(items: list[pystac.Item]) -> None:
    scene = _scene(items, S2_COLLECTION, 32632, "2021-11-08")
    scl = _asset(scene, "SCL")
    blue = _asset(scene, "B02").reshape(scl.shape[0], 2, scl.shape[1], 2).mean(axis=(1, 3))
    cloudy, clear = np.isin(scl, (8, 9)), np.isin(scl, (4, 5, 6))
    assert cloudy.sum() > 100 and clear.sum() > 100
    assert np.median(blue[cloudy]) > 2 * np.median(blue[clear])


def test_processing_baseline_offset(items: list[pystac.Item]) -> None:
    for item in (i for i in items if i.collection_id == S2_COLLECTION):
        new = item.datetime.strftime("%Y-%m-%d") >= "2022-01-25"
        assert (item.properties["s2:processing_baseline"] == "04.00") == new
        assert item.assets["B08"].extra_fields["raster:bands"][0]["offset"] == (
            -0.1 if new else 0.0
        )
        nir = _asset(item, "B08")
        assert (nir[nir > 0].min() >= 1000) == new
    valid = np.ones((1, 2), dtype=bool)
    assert encode_dn(np.array([[0.1234, 0.0]]), valid, 1000).tolist() == [[2234, 1000]]
    assert encode_dn(np.array([[0.1234, 0.0]]), valid, 0).tolist() == [[1234, 1]]


def test_same_surface_differs_by_exactly_the_offset() -> None:
    site = sites_for("tiny")[0]
    state, _ = prepare_aoi(site, seed=0)
    scene = next(s for s in plan_scenes(site) if s.sensor == "s2")
    old = render_s2(state, scene)
    props = {**scene.props, "s2:processing_baseline": "04.00"}
    new = render_s2(state, dataclasses.replace(scene, props=props))
    for name, dn in old.bands.items():
        valid = dn > 0
        diff = new.bands[name][valid].astype(int) - dn[valid]
        assert np.all(diff == 1000), name


# --- physics ------------------------------------------------------------------------------


def test_water_is_darker_than_forest_in_nir_and_vv(archive: tuple[Path, dict], items) -> None:
    root, manifest = archive
    truth, _ = _truth(root, manifest, "portugal")
    water, forest = np.isin(truth, (511, 512)), np.isin(truth, FOREST)
    optical = _scene(items, S2_COLLECTION, 32629, "2022-06-30")
    nir = _asset(optical, "B08").astype(float) - 1000
    clear = np.kron(np.isin(_asset(optical, "SCL"), (4, 5, 6)), np.ones((2, 2), bool))
    assert np.median(nir[water & clear]) < 0.3 * np.median(nir[forest & clear])
    vv = _db(_asset(_scene(items, S1_COLLECTION, 32629, "2022-07-06"), "vv"))
    assert np.nanmedian(vv[water]) < np.nanmedian(vv[forest]) - 8


def test_towns_are_brightest_in_vv(archive: tuple[Path, dict], items) -> None:
    root, manifest = archive
    for name, epsg, day in (("veneto", 32632, "2021-11-13"), ("portugal", 32629, "2022-07-06")):
        truth, _ = _truth(root, manifest, name)
        vv = _db(_asset(_scene(items, S1_COLLECTION, epsg, day), "vv"))
        valid = ~np.isnan(vv)
        town = np.nanmedian(vv[np.isin(truth, URBAN) & valid])
        for code in np.unique(truth):
            pixels = (truth == code) & valid
            if code not in URBAN and pixels.sum() > 200:
                assert town > np.nanmedian(vv[pixels]) + 2, code


def test_flood_is_open_water_in_sar_only_while_visible(archive: tuple[Path, dict], items) -> None:
    root, manifest = archive
    event = next(e for e in manifest["events"] if e["hazard"] == "flood")
    assert event["visible_days"] == 10 and event["code"] == "EMSR9001"
    truth, transform = _truth(root, manifest, "veneto")
    flood = _event_mask(root, manifest, "flood", truth.shape, transform)
    flood &= ~np.isin(truth, (511, 512)) & (truth >= 200)
    assert flood.sum() > 500
    before = _db(_asset(_scene(items, S1_COLLECTION, 32632, "2021-11-13"), "vv"))
    after = _db(_asset(_scene(items, S1_COLLECTION, 32632, "2021-11-19"), "vv"))
    assert np.nanmedian(after[flood]) < -17
    assert np.nanmedian(before[flood]) > -14
    optical = _scene(items, S2_COLLECTION, 32632, "2021-11-23")
    clear = np.kron(np.isin(_asset(optical, "SCL"), (4, 5, 6)), np.ones((2, 2), bool))
    assert np.median(_asset(optical, "B08")[flood & clear]) < 700


def test_burn_scar_raises_swir_over_nir_after_the_fire(archive: tuple[Path, dict], items) -> None:
    root, manifest = archive
    truth, transform = _truth(root, manifest, "portugal")
    burnt = _event_mask(root, manifest, "wildfire", truth.shape, transform) & np.isin(truth, FOREST)
    ratios = {}
    for day in ("2022-06-30", "2022-07-20"):
        scene = _scene(items, S2_COLLECTION, 32629, day)
        scl = _asset(scene, "SCL")
        nir = (
            _asset(scene, "B08").reshape(scl.shape[0], 2, scl.shape[1], 2).mean(axis=(1, 3)) - 1000
        )
        ratio = (_asset(scene, "B12").astype(float) - 1000) / nir
        burnt20 = burnt.reshape(scl.shape[0], 2, scl.shape[1], 2).all(axis=(1, 3))
        ratios[day] = np.median(ratio[burnt20 & np.isin(scl, (4, 5))])
    assert ratios["2022-07-20"] > 3 * ratios["2022-06-30"]
    vh_pre = _db(_asset(_scene(items, S1_COLLECTION, 32629, "2022-07-06"), "vh"))
    vh_post = _db(_asset(_scene(items, S1_COLLECTION, 32629, "2022-07-18"), "vh"))
    assert np.nanmedian(vh_post[burnt]) < np.nanmedian(vh_pre[burnt]) - 1.5


# --- label products and events ---------------------------------------------------------------


def test_corine_is_eea_grid_and_mostly_agrees(archive: tuple[Path, dict]) -> None:
    root, manifest = archive
    for aoi in manifest["aois"]:
        truth, transform = _read(root / aoi["truth"])
        with rasterio.open(root / aoi["corine"]) as src:
            assert (
                src.crs.to_epsg() == 3035 and src.res == (100, 100) and src.nodata == CORINE_NODATA
            )
            corine, corine_transform = src.read(1), src.transform
        rows, cols = np.mgrid[5 : truth.shape[0] : 10, 5 : truth.shape[1] : 10]
        xs, ys = rasterio.transform.xy(transform, rows.ravel(), cols.ravel())
        x3035, y3035 = warp_transform(f"EPSG:{aoi['epsg']}", "EPSG:3035", xs, ys)
        r, c = rasterio.transform.rowcol(corine_transform, x3035, y3035)
        codes = {grid: clc for clc, grid in CLC_GRID_CODE.items()}
        sampled = np.array([codes.get(int(v), 0) for v in corine[np.array(r), np.array(c)]])
        expected = truth[rows.ravel(), cols.ravel()]
        assert (sampled // 100 == expected // 100).mean() > 0.8
        assert (sampled == expected).mean() > 0.4


def test_dynamic_world_agrees_with_mapped_truth_but_not_fully(archive: tuple[Path, dict]) -> None:
    root, manifest = archive
    lut = np.full(1024, DW_NODATA, dtype=np.uint8)
    for code, label in CLC_TO_DW.items():
        lut[code] = label
    for aoi in manifest["aois"]:
        truth, _ = _read(root / aoi["truth"])
        dw, _ = _read(root / aoi["dynamic_world"])
        agreement = (dw == lut[truth]).mean()
        assert 0.85 < agreement < 0.99
        assert set(np.unique(dw)) <= set(range(9))


def test_events_look_like_ems_products(archive: tuple[Path, dict]) -> None:
    root, manifest = archive
    expected = {"flood": "5-Flood", "wildfire": "8-Wildfire"}
    for event in manifest["events"]:
        layers = event["layers"]
        assert (
            Path(layers["observed_event"]).stem
            == f"{event['code']}_AOI01_DEL_PRODUCT_observedEventA_r1_v1"
        )
        info = pyogrio.read_info(root / layers["observed_event"])
        assert info["crs"] == "EPSG:4326" and info["features"] > 0
        observed = pyogrio.read_dataframe(root / layers["observed_event"], read_geometry=False)
        assert set(observed["event_type"]) == {expected[event["hazard"]]}
        assert {"obj_desc", "det_method", "notation", "dmg_src_id"} <= set(observed.columns)
        source = pyogrio.read_dataframe(root / layers["source"], read_geometry=False)
        assert list(source["eventphase"]) == ["Pre-event", "Post-event"]
        aoi = pyogrio.read_dataframe(root / layers["area_of_interest"], read_geometry=False)
        assert aoi["emsr_id"].tolist() == [event["code"]]
        activation = json.loads((root / event["metadata"]).read_text())
        assert activation["code"] == event["code"] and activation["synthetic"] is True
    layout = ArchiveLayout(root)
    assert (layout.events_dir / "EMSR9002").is_dir()


# --- demo scale ------------------------------------------------------------------------------


def test_demo_calendar_covers_both_crises_and_baselines() -> None:
    sites = sites_for("demo")
    assert [s.epsg for s in sites] == [32632, 32629, 32635]
    for site in sites:
        assert site.bounds[2] - site.bounds[0] == 12000 and all(v % 1200 == 0 for v in site.bounds)
        scenes = plan_scenes(site)
        assert (
            sum(s.sensor == "s2" for s in scenes) == 6
            and sum(s.sensor == "s1" for s in scenes) == 7
        )
        baselines = {s.props["s2:processing_baseline"] for s in scenes if s.sensor == "s2"}
        assert "04.00" in baselines and len(baselines) > 1
        for event in site.events:
            after = [s for s in scenes if s.when > event.event_time]
            if event.hazard == "flood":
                window = [s for s in after if (s.when - event.event_time).days < event.visible_days]
                assert sum(s.sensor == "s1" for s in window) >= 2
                assert sum(s.sensor == "s2" for s in window) >= 1
            else:
                assert sum(s.sensor == "s2" for s in after) >= 2
                assert sum(s.sensor == "s1" for s in after) >= 2


@pytest.mark.slow
def test_demo_archive_yields_enough_chips(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from pipeline.chips.extract import QualityRules
    from pipeline.chips.plan import plan_scene
    from pipeline.chips.read import read_scene_chips
    from pipeline.sources.base import BandAsset, SearchQuery
    from pipeline.sources.geoparquet import GeoParquetSource

    manifest = simulate_archive(tmp_path, seed=0, scale="demo")
    assert manifest["collections"] == {S2_COLLECTION: 18, S1_COLLECTION: 21}
    query = SearchQuery(
        (S2_COLLECTION, S1_COLLECTION),
        datetime(2021, 1, 1, tzinfo=UTC),
        datetime(2023, 1, 1, tzinfo=UTC),
    )
    kept = 0
    for scene in GeoParquetSource(tmp_path / "items.parquet").search(query):
        assets = {
            band: BandAsset(str(tmp_path / a.href), a.gsd, a.shape, a.transform)
            for band, a in scene.assets.items()
        }
        scene = dataclasses.replace(scene, assets=assets)
        for pixels in read_scene_chips(scene, plan_scene(scene)):
            kept += QualityRules().rejection(pixels) is None
    assert kept >= 3000
