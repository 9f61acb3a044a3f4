"""Hugging Face `datasets` loads the HF export and the WebDataset view: every row, right pixels."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app

SPLIT = {"train": "train", "test": "corpus"}


@pytest.fixture
def hf_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    return tmp_path / "hf-cache"


def shard_images(corpus):
    meta = pd.read_parquet(corpus / "metadata.parquet").set_index("key")
    out = {}
    for key, shard in meta["shard"].items():
        with h5py.File(corpus / "shards" / shard, "r") as h5:
            out[key] = h5[key]["image"][()]
    return meta, out


def test_parquet_export_loads_every_row(tiny_corpus, tmp_path, hf_offline):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "hf"
    args = ["export", "--corpus", str(tiny_corpus), "--format", "hf", "--out", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    meta, images = shard_images(tiny_corpus)
    seen = 0
    for sensor in ("s2", "s1"):
        files = {s: str(out / "data" / sensor / f"{s}-*.parquet") for s in ("train", "test")}
        ds = datasets.load_dataset("parquet", data_files=files, cache_dir=str(hf_offline))
        for split in ("train", "test"):
            rows = ds[split].with_format("numpy")
            assert sorted(rows["key"]) == sorted(
                meta[(meta.sensor == sensor) & (meta.split == SPLIT[split])].index
            )
            for row in rows:
                np.testing.assert_array_equal(row["image"], images[row["key"]])
                assert row["caption_reference"] == meta.loc[row["key"], "caption_reference"]
                assert row["caption_sentence"] == meta.loc[row["key"], "caption"]
                assert sorted(row["labels"]) == sorted(meta.loc[row["key"], "labels"])
                seen += 1
    assert seen == len(meta)


def test_dataset_card_declares_the_loaded_features(tiny_corpus, tmp_path, hf_offline):
    datasets = pytest.importorskip("datasets")
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCard

    out = tmp_path / "hf"
    args = ["export", "--corpus", str(tiny_corpus), "--format", "hf", "--out", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    card = DatasetCard.load(out / "README.md")
    infos = DatasetInfosDict.from_dataset_card_data(card.data)
    ds = datasets.load_dataset(str(out), "s1", cache_dir=str(hf_offline))
    assert infos["s1"].features == ds["train"].features
    assert {s: ds[s].num_rows for s in ds} == {
        s: info.num_examples for s, info in infos["s1"].splits.items()
    }
    assert card.data.license == "other" and card.data.license_name
    assert "Copernicus Sentinel data" in card.text and "CORINE" in card.text


def test_webdataset_view_loads_every_sample(tiny_corpus, hf_offline):
    datasets = pytest.importorskip("datasets")
    meta, images = shard_images(tiny_corpus)
    wds = tiny_corpus / "webdataset"
    files = {s: str(wds / f"*-{s}-*.tar") for s in ("train", "corpus")}
    loaded = {
        "data_files": datasets.load_dataset(
            "webdataset", data_files=files, cache_dir=str(hf_offline)
        ),
        "card": datasets.load_dataset(str(wds), cache_dir=str(hf_offline)),
    }
    for ds in loaded.values():
        assert sum(ds[s].num_rows for s in ds) == len(meta)
        for split in ("train", "corpus"):
            for row in ds[split].with_format("numpy"):
                key = row["__key__"]
                np.testing.assert_array_equal(row["image.npy.gz"], images[key])
                assert row["txt"] == row["json"]["captions"]["reference"]
                assert row["txt"] == meta.loc[key, "caption_reference"]
                assert row["json"]["split"] == split == meta.loc[key, "split"]
                assert json.loads(row["json"]["record"])["key"] == key
