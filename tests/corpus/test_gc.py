"""Releasing chip pixels from work/ after a publish: the build does it by default, `clm gc`
for corpora built with ``output.work_chips: keep``; resume and rebuilds then read the chips
from the published shards and give the same corpus."""

from __future__ import annotations

import shutil

import h5py
import pytest
from typer.testing import CliRunner

from pipeline.build import build
from pipeline.chips.extract import RELEASED_ATTR
from pipeline.cli import app
from pipeline.config import load_config
from pipeline.corpus.lock import LOCK_FILE, read_lock


def work_pixels(corpus) -> dict[str, int]:
    """work file name -> chips stored in it (0: released)."""
    out = {}
    for path in sorted((corpus / "work" / "chips").glob("*.h5")):
        with h5py.File(path, "r") as h5:
            out[path.name] = 0 if h5.attrs.get(RELEASED_ATTR) else len(h5)
    return out


def test_a_build_releases_every_work_pixel_file(tiny_corpus):
    pixels = work_pixels(tiny_corpus)
    assert pixels and set(pixels.values()) == {0}
    rows = sorted((tiny_corpus / "work" / "chips").glob("*.json"))
    assert [p.with_suffix(".h5").name for p in rows] == sorted(pixels)  # rows stay for resume


@pytest.fixture(scope="module")
def kept(tiny_archive, make_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("kept") / "corpus"
    output = {"dir": str(out), "shard_size": 8, "work_chips": "keep"}
    return make_corpus(tiny_archive, out, output=output)


def test_keep_keeps_and_clm_gc_releases(kept, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(kept, corpus, symlinks=True)
    before = work_pixels(corpus)
    assert sum(before.values()) > 0 and 0 not in before.values()
    size = sum(p.stat().st_size for p in (corpus / "work" / "chips").glob("*.h5"))
    result = CliRunner().invoke(app, ["gc", str(corpus)])
    assert result.exit_code == 0, result.output
    assert (
        f"released {len(before)} chip work file(s) ({sum(before.values())} chips" in result.output
    )
    after = sum(p.stat().st_size for p in (corpus / "work" / "chips").glob("*.h5"))
    assert after < size / 20
    assert set(work_pixels(corpus).values()) == {0}
    again = CliRunner().invoke(app, ["gc", str(corpus)])
    assert "released 0 chip work file(s)" in again.output


def test_gc_without_a_published_corpus_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["gc", str(tmp_path)])
    assert result.exit_code == 2 and "no published corpus" in result.output


@pytest.mark.slow  # two more tiny builds
def test_a_released_corpus_rebuilds_its_shards_from_the_published_ones(
    tiny_corpus, kept, run_config, tiny_archive, tmp_path
):
    """Re-planned shards (another shard size) of a corpus whose work pixels were released
    equal those of a build that still had them; no scene is read again."""
    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus, symlinks=True)
    rows = {p.name: p.stat().st_mtime_ns for p in (corpus / "work" / "chips").glob("*.json")}
    for name, source in (("released", corpus), ("kept", kept)):
        if name == "kept":
            shutil.copytree(kept, tmp_path / "kept", symlinks=True)
            source = tmp_path / "kept"
        output = {"dir": str(source), "shard_size": 5}
        build(
            load_config(run_config(tmp_path / f"{name}.yaml", tiny_archive, source, output=output))
        )
    after = {p.name: p.stat().st_mtime_ns for p in (corpus / "work" / "chips").glob("*.json")}
    assert after == rows  # resumed, not re-cut
    released, fresh = read_lock(corpus / LOCK_FILE), read_lock(tmp_path / "kept" / LOCK_FILE)
    assert released["outputs"] == fresh["outputs"]
    assert any(name.startswith("shards/s1-0000") for name in released["outputs"])
