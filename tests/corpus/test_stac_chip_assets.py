"""Per-chip COG assets of the STAC view: odc-stac and rasterio read a chip, without knowing
about HDF5, as exactly the array of its HDF5 shard; the bytes are deterministic."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import h5py
import numpy as np
import odc.stac
import pandas as pd
import pystac
import pytest
import rasterio

from pipeline.config import load_config
from pipeline.corpus.stac_chip_assets import COG_ASSET, chip_asset_kind
from pipeline.corpus.stac_view import validate_catalog, write_stac
from pipeline.errors import ConfigError
from pipeline.sources.base import SENSOR_BANDS


@pytest.fixture(scope="module")
def cog_corpus(tiny_corpus, tmp_path_factory) -> Path:
    corpus = tmp_path_factory.mktemp("cog") / "corpus"
    # the published files as plain files (the view is written in place, not published)
    shutil.copytree(tiny_corpus, corpus, ignore=shutil.ignore_patterns("work", "versions"))
    write_stac(corpus, chip_assets="cog")
    return corpus


def _first_item(corpus: Path, collection_id: str) -> pystac.Item:
    catalog = pystac.Catalog.from_file(str(corpus / "stac" / "catalog.json"))
    return next(iter(catalog.get_child(collection_id).get_items()))


def _hdf5_image(corpus: Path, key: str) -> np.ndarray:
    shard = pd.read_parquet(corpus / "metadata.parquet").set_index("key").loc[key, "shard"]
    with h5py.File(corpus / "shards" / shard, "r") as h5:
        return np.asarray(h5[key]["image"][()])


@pytest.mark.parametrize(("collection_id", "sensor"), [("clm-s2", "s2"), ("clm-s1", "s1")])
def test_odc_stac_and_rasterio_read_the_hdf5_array(cog_corpus, collection_id, sensor):
    item = _first_item(cog_corpus, collection_id)
    expected = _hdf5_image(cog_corpus, item.id)
    data = odc.stac.load([item])  # no bands named: the COG is the only raster asset
    assert list(data.data_vars) == list(SENSOR_BANDS[sensor])
    loaded = np.stack([data[band].values[0] for band in SENSOR_BANDS[sensor]])
    assert loaded.dtype == np.float32 and np.array_equal(loaded, expected)
    assert data.odc.geobox.crs.epsg == int(item.properties["proj:code"].split(":")[1])
    minx, _, _, maxy = item.properties["proj:bbox"]
    assert float(data.x[0]) == minx + 5 and float(data.y[0]) == maxy - 5  # pixel centres
    with rasterio.open(item.assets[COG_ASSET].get_absolute_href()) as cog:
        assert np.array_equal(cog.read(), expected)
        assert cog.descriptions == SENSOR_BANDS[sensor]
        assert cog.bounds == tuple(item.properties["proj:bbox"])


def test_band_metadata_names_types_and_nodata(cog_corpus):
    s2 = _first_item(cog_corpus, "clm-s2").assets[COG_ASSET].extra_fields
    assert [b["name"] for b in s2["eo:bands"]] == list(SENSOR_BANDS["s2"])
    assert s2["eo:bands"][3]["common_name"] == "red"
    assert {(b["data_type"], b["nodata"], b["scale"]) for b in s2["raster:bands"]} == {
        ("float32", 0.0, 0.0001)
    }
    s1 = _first_item(cog_corpus, "clm-s1").assets[COG_ASSET].extra_fields
    assert [b["unit"] for b in s1["raster:bands"]] == ["dB", "dB"]
    assert s1["proj:shape"] == [120, 120] and len(s1["proj:transform"]) == 6


def test_cog_catalog_validates_and_bytes_are_deterministic(cog_corpus, tmp_path):
    meta = pd.read_parquet(cog_corpus / "metadata.parquet")
    sources = len(list((cog_corpus / "stac" / "clm-sources").glob("*/*.json")))
    assert validate_catalog(cog_corpus / "stac") == 1 + 3 + len(meta) + sources
    cogs = sorted((cog_corpus / "stac").rglob("*.tif"))
    assert len(cogs) == len(meta)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in cogs}
    write_stac(cog_corpus, chip_assets="cog")
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in cogs}
    assert after == before


def test_the_option_comes_from_the_run_config(tiny_archive, run_config, tmp_path):
    output = {"dir": str(tmp_path / "c"), "stac_chip_assets": "cog"}
    config = load_config(
        run_config(tmp_path / "c.yaml", tiny_archive, tmp_path / "c", output=output)
    )
    recipe = config.to_dict()
    assert chip_asset_kind({"config": recipe}) == "cog"
    assert chip_asset_kind({"config": recipe}, "none") == "none"
    assert chip_asset_kind({"config": {"output": {}}}) == "none"  # corpora built before
    with pytest.raises(ConfigError, match="choose one of none, cog"):
        chip_asset_kind({}, "zarr")
    bad = {"dir": str(tmp_path / "c"), "stac_chip_assets": "zarr"}
    with pytest.raises(ConfigError, match="stac_chip_assets"):
        load_config(run_config(tmp_path / "d.yaml", tiny_archive, tmp_path / "c", output=bad))


def test_without_the_option_no_cog_and_the_item_keeps_its_grid(tiny_corpus):
    item = _first_item(tiny_corpus, "clm-s2")
    assert COG_ASSET not in item.assets
    assert item.properties["proj:shape"] == [120, 120]
    assert not list((tiny_corpus / "stac").rglob("*.tif"))
