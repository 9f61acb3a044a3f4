"""Corpus fixtures: one tiny corpus built once per session (read it, never modify it; copy
it with ``copy_corpus`` first), and a helper to build corpora from other archives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.build import build
from pipeline.config import load_config


def build_corpus(run_config, archive: Path, out: Path, **overrides) -> Path:
    """Build a corpus of ``archive`` into ``out`` with the test run config."""
    config = run_config(out.parent / f"{out.name}.yaml", archive, out, **overrides)
    build(load_config(config))
    return out


@pytest.fixture(scope="session")
def tiny_corpus(tiny_archive, tmp_path_factory, run_config) -> Path:
    """The tiny archive's corpus with every view (shards 8 chips, WebDataset 8 samples)."""
    out = tmp_path_factory.mktemp("tiny-corpus") / "corpus"
    return build_corpus(
        run_config,
        tiny_archive,
        out,
        output={
            "dir": str(out),
            "shard_size": 8,
            "webdataset_shard_size": 8,
            "views": ["clm-hdf5", "webdataset", "stac"],
        },
    )


@pytest.fixture(scope="session")
def make_corpus(run_config):
    """Factory: ``make_corpus(archive, out, **run_config_overrides) -> out`` (a full build)."""

    def make(archive: Path, out: Path, **overrides) -> Path:
        return build_corpus(run_config, archive, out, **overrides)

    return make


@pytest.fixture
def copy_archive(tiny_archive, tmp_path):
    """Factory: a private copy of the tiny archive (to tamper with or to grow)."""

    def make(name: str = "archive") -> Path:
        target = tmp_path / name
        shutil.copytree(tiny_archive, target)
        return target

    return make
