"""The published layout: top-level names link through ``versions/current``; corpora of the
previous layout (real files at the top level) are converted by the next writer."""

from __future__ import annotations

import os
import shutil

from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.corpus.drift import check_outputs
from pipeline.corpus.lock import LOCK_FILE, read_lock
from pipeline.corpus.publish import discard_temporaries, keep_only, link_target, top_level_names
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


def test_staging_cleanup_removes_exactly_what_it_should(tmp_path):
    """``discard_temporaries`` drops hidden entries at any depth (a hidden directory whole);
    ``keep_only`` drops the files not kept and the directories left empty."""
    staging = tmp_path / "staging"
    for rel in (
        "shards/s1-00000.h5",
        "shards/.s1-00001.h5.abc.tmp",
        ".stac-staging/clm-s1/k/k.json",
        "stac/clm-s1/k/k.json",
        "stac/clm-s1/gone/gone.json",
        "webdataset/old.tar",
        "metadata.parquet",
    ):
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_text(rel)
    (staging / ".link-to-shards").symlink_to(staging / "shards", target_is_directory=True)
    discard_temporaries(staging)
    assert not (staging / ".stac-staging").exists()
    assert not (staging / ".link-to-shards").is_symlink()
    assert (staging / "shards").is_dir()  # a hidden link to it is removed, not followed
    keep_only(staging, {"shards/s1-00000.h5", "stac/clm-s1/k/k.json", "metadata.parquet"})
    left = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*"))
    assert left == [
        "metadata.parquet",
        "shards",
        "shards/s1-00000.h5",
        "stac",
        "stac/clm-s1",
        "stac/clm-s1/k",
        "stac/clm-s1/k/k.json",
    ]
