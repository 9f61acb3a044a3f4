"""One writer per corpus directory: an OS file lock that dies with its holder.

Real processes: a holder started with ``subprocess``, two ``clm build`` runs into one
directory, ``kill -9`` of the holder.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.build import stage_chips, stage_corpus, stage_search
from pipeline.cli import app
from pipeline.config import CORPUS_VIEWS, load_config
from pipeline.corpus.dirlock import LOCK_NAME, CorpusBusyError, read_holder, writer_lock
from pipeline.corpus.lock import LOCK_FILE, read_lock

HOLDER = r"""
import sys, time
from pipeline.corpus.dirlock import writer_lock
with writer_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path):
    """Factory: a separate process holding the writer lock of a directory until killed."""
    procs = []

    def start(corpus: Path) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(corpus)], stdout=subprocess.PIPE, text=True
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_second_writer_fails_at_once_naming_the_holder(holder, tmp_path):
    corpus = tmp_path / "corpus"
    proc = holder(corpus)
    started = time.monotonic()
    with pytest.raises(CorpusBusyError) as caught, writer_lock(corpus):
        pass
    assert time.monotonic() - started < 2, "must not wait for the holder"
    assert caught.value.holder["pid"] == proc.pid
    message = str(caught.value)
    assert f"pid {proc.pid}" in message and socket.gethostname() in message
    assert "started 20" in message and "kill" in message and "--out" in message


def test_lock_dies_with_its_holder(holder, tmp_path):
    corpus = tmp_path / "corpus"
    proc = holder(corpus)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (corpus / LOCK_NAME).exists(), "the file stays; only the OS lock is gone"
    with writer_lock(corpus) as held:  # no stale marker to remove by hand
        assert read_holder(corpus / LOCK_NAME)["pid"] == os.getpid()
        assert held.corpus == corpus


def test_lock_is_reentrant_within_a_process(tmp_path):
    with writer_lock(tmp_path) as outer, writer_lock(tmp_path) as inner:
        assert outer == inner
    with writer_lock(tmp_path):  # released: free again
        pass


def test_dag_stage_functions_take_the_lock(holder, tiny_archive, run_config, tmp_path):
    """Each DAG task calls one stage function; each refuses to write under another writer."""
    corpus = tmp_path / "corpus"
    config = load_config(run_config(tmp_path / "run.yaml", tiny_archive, corpus))
    holder(corpus)
    work = corpus / "work"
    for stage, args in (
        (stage_search, ()),
        (stage_chips, (work / "scenes.parquet",)),
        (stage_corpus, (work / "chips.parquet", work / "records.jsonl")),
    ):
        with pytest.raises(CorpusBusyError):
            stage(config, *args)
    assert sorted(p.name for p in corpus.iterdir()) == [LOCK_NAME], "nothing was written"


def test_export_refuses_while_a_build_writes(holder, tiny_corpus, tmp_path):
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus, symlinks=True, ignore=shutil.ignore_patterns("work"))
    proc = holder(corpus)
    result = CliRunner().invoke(app, ["export", "--corpus", str(corpus), "--format", "stac"])
    assert result.exit_code == 2, result.output
    assert f"pid {proc.pid}" in result.output and "Traceback" not in result.output


def test_two_builds_into_one_directory(tiny_corpus, tiny_archive, run_config, tmp_path):
    """The second ``clm build`` exits 2 naming the first; the first's corpus equals a solo
    build (the session's ``tiny_corpus``, same recipe)."""
    out = tmp_path / "corpus"
    output = {
        "dir": str(out),
        "shard_size": 8,
        "webdataset_shard_size": 8,
        "views": list(CORPUS_VIEWS),
    }
    config = run_config(tmp_path / "run.yaml", tiny_archive, out, output=output)
    clm = [str(Path(sys.executable).parent / "clm"), "build", "--config", str(config)]
    first = subprocess.Popen(clm, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while read_holder(out / LOCK_NAME).get("pid") != first.pid:
            assert first.poll() is None and time.monotonic() < deadline, "first build not started"
            time.sleep(0.05)
        second = subprocess.run(clm, capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first build should still be running"
        _, first_err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 2, second.stderr
    assert f"pid {first.pid} on host {socket.gethostname()}" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.returncode == 0, first_err[-2000:]
    assert (out / LOCK_FILE).read_bytes() == (tiny_corpus / LOCK_FILE).read_bytes()
    for name, checksum in read_lock(out / LOCK_FILE)["outputs"].items():
        assert (out / name).read_bytes() == (tiny_corpus / name).read_bytes(), name
        assert checksum == read_lock(tiny_corpus / LOCK_FILE)["outputs"][name]
