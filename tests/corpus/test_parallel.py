"""The post-chip stages on one thread or on two worker processes write the same bytes:
shards, metadata.parquet, records, the WebDataset tars and index, the STAC view."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.build import BuildPaths
from pipeline.config import load_config
from pipeline.corpus.export import write_views
from pipeline.corpus.publish import current_version
from pipeline.corpus.write import write_corpus
from pipeline.engine import executor


def tree(root) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow  # spawns two worker processes and writes the tiny corpus twice
def test_one_or_two_workers_write_identical_corpora(tiny_corpus, tmp_path):
    config = load_config(tiny_corpus.parent / "corpus.yaml")
    paths = BuildPaths(tiny_corpus)
    trees = {}
    for workers in (1, 2):
        into = tmp_path / f"workers-{workers}"
        with executor(_on(config, workers)) as pool:
            write_corpus(
                config,
                paths.scenes,
                paths.chips,
                paths.records,
                paths.chip_dir,  # released after the build: chips come from the published shards
                pool,
                into=into,
                published=current_version(tiny_corpus),
            )
            write_views(into, config.output.views, config.output.webdataset_shard_size, pool)
        trees[workers] = tree(into)
    assert trees[1].keys() == trees[2].keys()
    assert [n for n in trees[1] if trees[1][n] != trees[2][n]] == []
    for kind in ("shards/s1-00000.h5", "metadata.parquet", "webdataset/index.json"):
        assert kind in trees[1]
    assert any(n.startswith("stac/clm-s2/") for n in trees[1])
    published = current_version(tiny_corpus)
    for name, data in trees[1].items():  # and the published build's own bytes
        assert (published / name).read_bytes() == data, name


def _on(config, workers: int):
    """``config`` run by ``workers`` engine workers (two: a Dask LocalCluster)."""
    return dataclasses.replace(config, engine=dataclasses.replace(config.engine, n_workers=workers))
