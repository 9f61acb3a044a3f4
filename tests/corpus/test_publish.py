"""The published layout: top-level names link through ``versions/current``; corpora of the
previous layout (real files at the top level) are converted by the next writer."""

from __future__ import annotations

import os
import shutil

from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.corpus.drift import check_outputs
from pipeline.corpus.lock import LOCK_FILE, read_lock
from pipeline.corpus.publish import link_target, top_level_names
from pipeline.corpus.versions import versions


def test_top_level_names_link_into_the_current_version(tiny_corpus):
    current = tiny_corpus / "versions" / "current"
    assert os.readlink(current) == "v001"
    names = top_level_names(current.resolve())
    assert {"metadata.parquet", "shards", "corpus.h5", LOCK_FILE} <= names
    for name in names:
        assert os.readlink(tiny_corpus / name) == link_target(name)
    assert not (tiny_corpus / "versions" / ".staging").exists()


def test_a_corpus_of_the_previous_layout_is_converted(tiny_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus, symlinks=True, ignore=shutil.ignore_patterns("work"))
    for name in top_level_names(corpus / "versions" / "v001"):  # real files, as before
        link = corpus / name
        target = link.resolve()
        link.unlink()
        shutil.copytree(target, link) if target.is_dir() else os.link(target, link)
    args = ["export", "--corpus", str(corpus), "--format", "clm-hdf5"]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0 and "unchanged" in result.output, result.output
    for name in top_level_names(corpus / "versions" / "v001"):
        assert (corpus / name).is_symlink(), name
    assert check_outputs(read_lock(corpus / LOCK_FILE), corpus) == []
    assert [v.name for v in versions(corpus)] == ["v001"]
    assert not [p for p in (corpus / "versions").iterdir() if p.name.startswith(".")]
