"""``kill -9`` of a ``clm build`` that runs on a Dask ``LocalCluster`` (``engine.n_workers: 2``)
at seeded random points of every stage: no process of that build survives it (the cluster's
worker processes, the resource tracker), and the next run resumes to the corpus of a clean build, byte for byte,
``work/chips.parquet`` included.

The build runs in a subprocess that counts calls of one function per stage; a counting run
is the clean reference build, and each case SIGKILLs itself before the N-th call of one of
them (N drawn from a seeded generator), after recording its descendant processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from pipeline.config import CORPUS_VIEWS
from pipeline.corpus.lock import LOCK_FILE, read_lock

SEED = 20261129
MARK = "CLM_KILL_TEST"  # environment variable every process of one test build inherits
STAGES = {  # stage: (module, function the build process calls there, many times)
    "chips-plan": ("pipeline.chips.stage", "plan_scene"),  # per scene, before handing out
    "chips-results": ("pipeline.chips.stage", "_result"),  # per scene, workers busy
    "captions": ("pipeline.captions.stage", "_finished"),  # per chunk, in the main process
    "shards": ("pipeline.corpus.shards", "_finished"),  # per shard, in the main process
    "lock": ("pipeline.corpus.lock", "fingerprint"),  # per input and output file
}

RUNNER = r"""
import importlib, json, os, signal, sys
import psutil
points, kill, report, argv = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4:]
counts = dict.fromkeys(points, 0)

def descendants():
    return [
        {"pid": p.pid, "created": p.create_time(), "cmdline": p.cmdline()}
        for p in psutil.Process().children(recursive=True)
    ]

def counted(name, original):
    def call(*args, **kwargs):
        counts[name] += 1
        if [name, counts[name]] == kill:
            with open(report, "w") as fh:
                json.dump(descendants(), fh)
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)
    return call

for name, (module_name, attr) in points.items():
    module = importlib.import_module(module_name)
    setattr(module, attr, counted(name, getattr(module, attr)))
from pipeline.cli import app
sys.argv = ["clm", *argv]
try:
    app()
finally:
    with open(report, "w") as fh:
        json.dump(counts, fh)
"""

ALL_VIEWS = list(CORPUS_VIEWS)  # the kill points include the WebDataset writer


def run_build(config: Path, report: Path, token: str, kill: list | None = None) -> int:
    """``clm build`` under the counting runner; output to files, so that a surviving worker
    holding the pipes cannot keep this call waiting."""
    command = [sys.executable, "-c", RUNNER, json.dumps(STAGES), json.dumps(kill), str(report)]
    log = report.with_suffix(".log")
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*command, "build", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, MARK: token},
        )
        return proc.wait(timeout=600)


def build_config(run_config, archive: Path, out: Path) -> Path:
    output = {"dir": str(out), "shard_size": 8, "webdataset_shard_size": 8, "views": ALL_VIEWS}
    return run_config(out.parent / "run.yaml", archive, out, engine={"n_workers": 2}, output=output)


@pytest.fixture(scope="module")
def clean_build(tiny_archive, tmp_path_factory, run_config):
    """The clean corpus (2 workers) and how often each stage function was called."""
    out = tmp_path_factory.mktemp("clean-two-workers") / "corpus"
    report = out.parent / "counts.json"
    code = run_build(build_config(run_config, tiny_archive, out), report, uuid.uuid4().hex)
    assert code == 0, report.with_suffix(".log").read_text()[-2000:]
    return out, json.loads(report.read_text())


def kill_point(stage: str, counts: dict[str, int]) -> list:
    return [stage, random.Random(f"{SEED}:{stage}").randint(1, counts[stage])]


def alive(recorded: list[dict]) -> list[psutil.Process]:
    """The recorded processes still running (same pid and start time; zombies are dead)."""
    found = []
    for entry in recorded:
        try:
            proc = psutil.Process(entry["pid"])
            if proc.create_time() == entry["created"] and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def marked(token: str) -> list[psutil.Process]:
    """Every running process whose environment carries this build's mark."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get(MARK) == token:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def survivors(recorded: list[dict], token: str, wait_s: float = 15.0) -> list[psutil.Process]:
    """The build's processes still running ``wait_s`` after its main process was killed."""
    deadline = time.monotonic() + wait_s
    while True:
        left = {p.pid: p for p in [*alive(recorded), *marked(token)]}
        if not left or time.monotonic() > deadline:
            return list(left.values())
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(STAGES))
def test_kill_9_leaves_no_process_and_resumes_to_the_clean_corpus(
    stage, clean_build, tiny_archive, run_config, tmp_path
):
    clean, counts = clean_build
    out = tmp_path / "corpus"
    config = build_config(run_config, tiny_archive, out)
    report, token = tmp_path / "family.json", uuid.uuid4().hex

    code = run_build(config, report, token, kill=kill_point(stage, counts))

    assert code == -signal.SIGKILL, report.with_suffix(".log").read_text()[-2000:]
    recorded = json.loads(report.read_text())
    if stage == "chips-results":  # every scene handed out: both cluster workers run
        workers = [p for p in recorded if "dask worker" in " ".join(p["cmdline"])]
        assert len(workers) == 2, recorded
    left = survivors(recorded, token)
    for proc in left:  # clean up after a failure: only this build's own processes
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    assert not left, [p.cmdline() for p in left]

    resumed = subprocess.run(
        [str(Path(sys.executable).parent / "clm"), "build", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (out / LOCK_FILE).read_bytes() == (clean / LOCK_FILE).read_bytes()
    for name in [*read_lock(out / LOCK_FILE)["outputs"], "work/chips.parquet"]:
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name
