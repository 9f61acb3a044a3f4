"""Kill -9 a build at several points; the next run finishes with the corpus of a clean build.

Each case runs ``clm build`` in a subprocess that SIGKILLs itself right before the N-th call
of one pipeline function (or the N-th item of a generator): mid scene file, mid caption
file, mid shard, mid view, mid lock, mid version. Nothing half-written may be visible
under a final name; the resumed build must equal the clean one (``corpus.lock`` bytes,
every output), completed shards must not be rewritten, and no temporary may be left.
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

from pipeline.corpus.lock import LOCK_FILE, read_lock
from pipeline.corpus.versions import versions

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
    "mid-shard": ("pipeline.corpus.write", "_write_chip", 21),
    "mid-webdataset": ("pipeline.corpus.webdataset", "_add_member", 60),
    "mid-stac": ("pipeline.corpus.stac_view", "validate_catalog", 1),
    "mid-lock": ("pipeline.corpus.lock", "fingerprint", 40),
    "mid-version": ("pipeline.corpus.versions", "_link", 30),
}


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
    return {p.name: p.stat().st_ino for p in (corpus / "shards").glob("*.h5")}


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
        output={"dir": str(out), "shard_size": 8, "webdataset_shard_size": 8},
    )
    kill_build_at(config, *KILL_POINTS[point])
    assert_nothing_half_written(out)
    done_before = shard_inodes(out) if (out / "shards").is_dir() else {}

    resume(config)

    assert (out / LOCK_FILE).read_bytes() == (tiny_corpus / LOCK_FILE).read_bytes()
    for name in read_lock(out / LOCK_FILE)["outputs"]:
        assert (out / name).read_bytes() == (tiny_corpus / name).read_bytes(), name
    assert [v.name for v in versions(out)] == ["v001"]
    after = shard_inodes(out)
    assert {k: after[k] for k in done_before} == done_before, "completed shards were rewritten"
    assert not [p for p in out.rglob("*.tmp")], "temporaries left behind"
