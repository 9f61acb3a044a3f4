"""`clm export`: one view of an existing corpus, the same bytes as the build wrote."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.corpus.drift import check_outputs
from pipeline.corpus.lock import LOCK_FILE, read_lock
from pipeline.corpus.versions import versions


@pytest.mark.parametrize("view", ["clm-hdf5", "webdataset", "stac"])
def test_export_rewrites_a_view_identically(view, tiny_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus, symlinks=True, ignore=shutil.ignore_patterns("work"))
    target = {"clm-hdf5": "corpus.h5", "webdataset": "webdataset", "stac": "stac"}[view]
    built = corpus / "versions" / "v001" / target  # a copy: make it a corpus without the view
    shutil.rmtree(built) if built.is_dir() else built.unlink()
    (corpus / target).unlink()
    args = ["export", "--corpus", str(corpus), "--format", view, "--shard-size", "8"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "published as v002" in result.output
    assert check_outputs(read_lock(corpus / LOCK_FILE), corpus) == []
    assert not built.exists(), "a published version never changes"
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "unchanged" in again.output, again.output
    assert [v.name for v in versions(corpus)] == ["v001", "v002"]


def test_export_names_the_formats_on_a_typo(tiny_corpus):
    result = CliRunner().invoke(app, ["export", "--corpus", str(tiny_corpus), "--format", "hdf5"])
    assert result.exit_code == 2
    assert "clm-hdf5" in result.output and "webdataset" in result.output


def test_export_of_a_missing_corpus_says_how_to_build_it(tmp_path):
    result = CliRunner().invoke(app, ["export", "--corpus", str(tmp_path), "--format", "stac"])
    assert result.exit_code == 2 and "clm build" in result.output
