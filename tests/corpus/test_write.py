"""The corpus stage beyond the reference layout: sources, provenance, split recording,
shard order, and a geo-block split end to end (re-running only the corpus stage)."""

from __future__ import annotations

import json
import shutil

import pandas as pd

from pipeline.build import BuildPaths, publish_corpus
from pipeline.config import load_config
from pipeline.corpus.splits import SplitChip, block_of
from pipeline.sources.select import read_scenes


def test_manifest_records_split_rule_views_and_outputs(tiny_corpus):
    manifest = json.loads((tiny_corpus / "manifest.json").read_text())
    assert manifest["split_rule"] == {"method": "stratified", "train_fraction": 0.2, "seed": 0}
    assert manifest["views"] == ["clm-hdf5", "webdataset", "stac"]
    assert {"corpus.h5", "queries.jsonl", "qrels/", "webdataset/", "stac/"} <= set(
        manifest["outputs"]
    )


def test_sources_list_every_scene_with_unresolved_hrefs(tiny_corpus):
    scenes = read_scenes(tiny_corpus / "sources.parquet")
    assert len(scenes) == 8
    assert [(s.datetime, s.item_id) for s in scenes] == sorted(
        (s.datetime, s.item_id) for s in scenes
    )
    assert all(a.href.startswith("scenes/") for s in scenes for a in s.assets.values())


def test_shards_hold_chips_in_acquisition_order(tiny_corpus):
    meta = pd.read_parquet(tiny_corpus / "metadata.parquet")
    for sensor, group in meta.groupby("sensor"):
        ordered = group.sort_values(["datetime", "key"])
        assert list(ordered["shard"]) == sorted(ordered["shard"]), sensor


def test_geo_block_split_end_to_end(tiny_corpus, tiny_archive, run_config, tmp_path):
    corpus = tmp_path / "geo"
    shutil.copytree(tiny_corpus, corpus, symlinks=True)
    output = {"dir": str(corpus), "shard_size": 8, "webdataset_shard_size": 8}
    output |= {"split_method": "geo-block", "geo_block_size": 2, "views": ["clm-hdf5"]}
    config = load_config(run_config(tmp_path / "geo.yaml", tiny_archive, corpus, output=output))
    paths = BuildPaths(corpus)
    version = publish_corpus(config, paths.chips, paths.records)

    manifest = json.loads((corpus / "manifest.json").read_text())
    assert manifest["split_rule"]["method"] == "geo-block"
    assert manifest["split_rule"]["block_size_cells"] == 2
    meta = pd.read_parquet(corpus / "metadata.parquet")
    blocks: dict[str, set[str]] = {}
    for row in meta.itertuples():
        epsg, col, cell_row = (int(v) for v in row.cell.split("_"))
        block = block_of(SplitChip(row.key, (), epsg, col, cell_row), 2)
        blocks.setdefault(block, set()).add(row.split)
    assert all(len(s) == 1 for s in blocks.values()) and len(blocks) > 2
    assert version.name == "v002" and version.diff["added"] == {}
    assert version.diff["split_changed"] > 0
