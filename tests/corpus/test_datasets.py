"""`pipeline.datasets.CrisisLandMarkCorpus`: a PyTorch dataset over a built corpus."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from pipeline.datasets import CrisisLandMarkCorpus
from pipeline.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def corpus(tiny_corpus):
    return tiny_corpus


def test_dataloader_with_two_workers_reads_every_chip(corpus):
    meta = pd.read_parquet(corpus / "metadata.parquet").set_index("key")
    ds = CrisisLandMarkCorpus(corpus, split="corpus", sensor="s2", return_coords=True)
    seen = {}
    for batch in DataLoader(ds, batch_size=4, num_workers=2):
        for i, key in enumerate(batch["key"]):
            seen[key] = {name: batch[name][i] for name in ("image", "caption", "label", "coords")}
    expected = meta[(meta["split"] == "corpus") & (meta["sensor"] == "s2")]
    assert sorted(seen) == sorted(expected.index)
    for key, sample in seen.items():
        with h5py.File(corpus / "shards" / meta.loc[key, "shard"], "r") as h5:
            np.testing.assert_array_equal(sample["image"].numpy(), h5[key]["image"][()])
            np.testing.assert_array_equal(sample["coords"].numpy(), h5[key]["coords"][()])
        assert sample["caption"] == meta.loc[key, "caption_reference"]
        labels = [ds.LABELS[i] for i in torch.nonzero(sample["label"]).flatten()]
        assert sorted(labels) == sorted(meta.loc[key, "labels"])


def test_caption_variants_and_transforms(corpus):
    sentence = CrisisLandMarkCorpus(corpus, split="test", sensor="s1", caption="sentence")
    sampled = CrisisLandMarkCorpus(
        corpus,
        split="test",
        sensor="s1",
        caption="sampled",
        transforms=lambda s: s | {"image": s["image"] / 2},
    )
    assert len(sentence) == len(sampled) > 0
    assert sentence[0]["caption"].startswith("Sentinel-1")
    torch.manual_seed(0)
    drawn = {sampled[0]["caption"] for _ in range(40)}
    assert len(drawn) > 1 and sentence[0]["caption"] in drawn
    np.testing.assert_allclose(sampled[0]["image"] * 2, sentence[0]["image"])


def test_plot_shows_the_chip_with_its_caption(corpus):
    ds = CrisisLandMarkCorpus(corpus, split="train", sensor="s2")
    picture = ds.plot(ds[0])
    assert picture.width >= 360 and picture.height > 360
    assert len(np.unique(np.asarray(picture)[:360, :360].reshape(-1, 3), axis=0)) > 100


def test_bad_choices_name_the_options(corpus):
    with pytest.raises(ConfigError, match="s2, s1"):
        CrisisLandMarkCorpus(corpus, sensor="sar")


def test_the_docs_example_runs(corpus, tmp_path, monkeypatch):
    text = (PROJECT_ROOT / "docs" / "corpus-format.md").read_text()
    block = re.search(r"<!-- doc-test: dataset.*?```python\n(.*?)```", text, re.S)
    assert block, "docs/corpus-format.md lost its dataset example"
    monkeypatch.chdir(tmp_path)
    exec(compile(block.group(1), "corpus-format.md", "exec"), {"corpus_dir": corpus})
    assert (tmp_path / "chip.png").stat().st_size > 0
