"""Kill -9 a build at several points; the next run finishes with the corpus of a clean build.

Each case runs ``clm build`` in a subprocess that SIGKILLs itself right before the N-th call
of one pipeline function (or the N-th item of a generator): mid scene file, mid caption
file, mid shard, mid view, mid lock, between the version's rename and the switch of
``versions/current``, mid top-level links. Nothing half-written may be visible under a final
name, and a first build killed before its switch shows no corpus at the top level; the
resumed build must equal the clean one (``corpus.lock`` bytes, every output), completed
shards (in the staging version) must not be rewritten, and no temporary may be left.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import h5py
import pandas as pd
import pytest

from pipeline.config import CORPUS_VIEWS
from pipeline.corpus.drift import check_outputs
from pipeline.corpus.lock import LOCK_FILE, read_lock
from pipeline.corpus.versions import versions

STAGING = Path("versions") / ".staging"

KILLER = r"""
import importlib, inspect, os, signal, sys
module_name, attr, after, config = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
module = importlib.import_module(module_name)
original = getattr(module, attr)
count = 0
def tick():
    global count
    count += 1
    if count >= after:
        os.kill(os.getpid(), signal.SIGKILL)
def counted(items):
    for item in items:
        tick()
        yield item
def wrapper(*args, **kwargs):
    if inspect.isgeneratorfunction(original):
        return counted(original(*args, **kwargs))
    tick()
    return original(*args, **kwargs)
setattr(module, attr, wrapper)
from pipeline.cli import app
sys.argv = ["clm", "build", "--config", config]
app()
"""

KILL_POINTS = {  # id: (module, function, kill before its N-th call / item)
    "mid-scene-chips": ("pipeline.chips.extract", "read_scene_chips", 30),
    "mid-captions": ("pipeline.captions.stage", "build_record", 20),
    "mid-shard": ("pipeline.corpus.shards", "_finished", 2),
    "mid-webdataset": ("pipeline.corpus.webdataset", "_add_member", 60),
    "mid-stac": ("pipeline.corpus.stac_view", "validate_catalog", 1),
    "mid-lock": ("pipeline.corpus.lock", "fingerprint", 40),
    "after-version-rename": ("pipeline.corpus.publish", "_point_current", 1),
    "mid-top-level-links": ("pipeline.corpus.publish", "_link_name", 4),
}

ALL_VIEWS = list(CORPUS_VIEWS)  # the kill points include the WebDataset writer


def kill_build_at(config, module, function, after):
    result = subprocess.run(
        [sys.executable, "-c", KILLER, module, function, str(after), str(config)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]


def resume(config):
    result = subprocess.run(
        [str(Path(sys.executable).parent / "clm"), "build", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def assert_nothing_half_written(corpus):
    """Every file under a final name is complete and readable."""
    for path in corpus.rglob("*"):
        if path.name.startswith(".") or any(p.name.startswith(".") for p in path.parents):
            continue
        if not path.exists():  # a top-level link into a version not yet switched to: absent
            continue
        if path.suffix == ".h5" and path.parent.name == "shards":
            with h5py.File(path, "r") as h5:
                assert "content_sha256" in h5.attrs, path
        elif path.suffix in (".json", ".lock"):
            json.loads(path.read_text())
        elif path.suffix == ".parquet":
            pd.read_parquet(path)
        elif path.suffix == ".tar":
            with tarfile.open(path) as tar:
                tar.getmembers()
        elif path.name == "corpus.h5":
            h5py.File(path, "r").close()


def shard_inodes(corpus):
    """Shards written so far: published, or in the staging version of an interrupted run."""
    folder = "shards" if (corpus / "shards").is_dir() else STAGING / "shards"
    return {p.name: p.stat().st_ino for p in (corpus / folder).glob("*.h5")}


def assert_old_or_nothing(corpus):
    """Before the switch nothing is visible at the top level; after it, a complete corpus."""
    if (corpus / LOCK_FILE).exists():
        assert check_outputs(read_lock(corpus / LOCK_FILE), corpus) == []
    else:
        names = {p.name for p in corpus.iterdir() if p.exists()}  # a dangling link is absent
        names -= {"work", "versions", ".writer.lock"}
        assert not names, f"a corpus that looks built but has no lock: {names}"


@pytest.mark.slow
@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_killed_build_resumes_to_the_clean_corpus(
    point, tiny_corpus, tiny_archive, run_config, tmp_path
):
    out = tmp_path / "corpus"
    config = run_config(
        tmp_path / "run.yaml",
        tiny_archive,
        out,
        output={"dir": str(out), "shard_size": 8, "webdataset_shard_size": 8, "views": ALL_VIEWS},
    )
    kill_build_at(config, *KILL_POINTS[point])
    assert_nothing_half_written(out)
    assert_old_or_nothing(out)
    done_before = shard_inodes(out)

    resume(config)

    assert (out / LOCK_FILE).read_bytes() == (tiny_corpus / LOCK_FILE).read_bytes()
    for name in read_lock(out / LOCK_FILE)["outputs"]:
        assert (out / name).read_bytes() == (tiny_corpus / name).read_bytes(), name
    assert [v.name for v in versions(out)] == ["v001"]
    after = shard_inodes(out)
    assert {k: after[k] for k in done_before} == done_before, "completed shards were rewritten"
    assert not [p for p in out.rglob("*.tmp")], "temporaries left behind"


SECOND_PUBLISH_KILL_POINTS = {  # id: (module, function, N, what readers must see afterwards)
    "mid-seeding": ("pipeline.corpus.publish", "link_file", 10, "old"),
    "mid-webdataset": ("pipeline.corpus.webdataset", "_add_member", 60, "old"),
    "mid-lock": ("pipeline.corpus.lock", "fingerprint", 40, "old"),
    # the first call of each is the writer's recovery step, before anything is written
    "after-version-rename": ("pipeline.corpus.publish", "_point_current", 2, "old"),
    "after-switch": ("pipeline.corpus.publish", "linked_names", 2, "new"),
}


@pytest.mark.slow
@pytest.mark.parametrize("point", sorted(SECOND_PUBLISH_KILL_POINTS))
def test_killed_publish_shows_the_old_corpus_or_the_new(
    point, tiny_corpus, tiny_archive, run_config, tmp_path
):
    """Rebuild a published corpus with another split and without the STAC view, killed inside
    publishing: readers see the complete old corpus or the complete new one; the next run
    publishes v002 and v001 is untouched."""
    import shutil

    out = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, out, symlinks=True)
    output = {"dir": str(out), "shard_size": 8, "webdataset_shard_size": 8}
    output |= {"train_fraction": 0.3, "views": ["clm-hdf5", "webdataset"]}
    config = run_config(tmp_path / "resplit.yaml", tiny_archive, out, output=output)
    old_lock = (out / LOCK_FILE).read_bytes()
    module, function, after, expected = SECOND_PUBLISH_KILL_POINTS[point]

    kill_build_at(config, module, function, after)

    assert_nothing_half_written(out)
    seen = "old" if (out / LOCK_FILE).read_bytes() == old_lock else "new"
    assert seen == expected
    assert check_outputs(read_lock(out / LOCK_FILE), out) == []
    assert (out / "stac").exists() == (seen == "old")
    resume(config)
    assert (out / LOCK_FILE).read_bytes() != old_lock
    assert check_outputs(read_lock(out / LOCK_FILE), out) == []
    assert [v.name for v in versions(out)] == ["v001", "v002"]
    v1 = out / "versions" / "v001"
    assert check_outputs(read_lock(v1 / LOCK_FILE), v1) == []
    assert (v1 / "shards" / "s1-00000.h5").stat().st_ino == shard_inodes(out)["s1-00000.h5"]
    assert not (out / "stac").exists() and not [p for p in out.rglob("*.tmp")]
