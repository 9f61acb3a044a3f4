"""Shared fixtures: one tiny CLOSP / GeoCLOSP per test session (the text model loads once)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_closp():
    from pipeline.model.closp import build_model

    torch.manual_seed(0)
    return build_model("closp-tiny-cnn")


@pytest.fixture(scope="session")
def tiny_geoclosp():
    from pipeline.model.closp import build_model

    torch.manual_seed(0)
    return build_model("geoclosp-tiny-cnn")


@pytest.fixture(scope="session")
def tiny_corpus(tiny_archive, tmp_path_factory, run_config):
    """The tiny simulated corpus with its WebDataset view and queries."""
    from pipeline.build import build
    from pipeline.config import load_config
    from pipeline.corpus.queries import write_queries
    from pipeline.corpus.webdataset import write_webdataset

    out = tmp_path_factory.mktemp("tiny-corpus")
    build(load_config(run_config(out.parent / f"{out.name}.yaml", tiny_archive, out)))
    write_webdataset(out, shard_size=4)
    write_queries(out, min_support=2)
    return out


@pytest.fixture(scope="session")
def train_argv():
    """Factory: ``train_argv(corpus, run_dir, *extra)`` -> fast ``clm train`` arguments."""
    return _train_argv


def _train_argv(corpus, run_dir, *extra):
    return [
        str(corpus), "--run-dir", str(run_dir), "--epochs", "2", "--batch-size", "4",
        "--mlflow-uri", "none", "--log-every", "1", "--shuffle-buffer", "8", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="session")
def tiny_run(tiny_corpus, tmp_path_factory, train_argv):
    """A CLOSP run trained for two epochs on the tiny corpus, embedded."""
    from pipeline.model.embed import embed_corpus
    from pipeline.model.train import main

    run_dir = tmp_path_factory.mktemp("tiny-run") / "run"
    assert main(train_argv(tiny_corpus, run_dir)) == 0
    embed_corpus(run_dir, tiny_corpus)
    return run_dir


@pytest.fixture(scope="session")
def tiny_geo_run(tiny_corpus, tmp_path_factory, train_argv):
    """A GeoCLOSP run (location encoder) trained for two epochs on the tiny corpus, embedded."""
    from pipeline.model.embed import embed_corpus
    from pipeline.model.train import main

    run_dir = tmp_path_factory.mktemp("tiny-geo-run") / "run"
    assert main(train_argv(tiny_corpus, run_dir, "--model-config", "geoclosp-tiny-cnn")) == 0
    embed_corpus(run_dir, tiny_corpus)
    return run_dir
