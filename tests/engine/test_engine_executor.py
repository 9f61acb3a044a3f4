"""``engine.executor(config)``: one thread of the build, or a Dask ``LocalCluster`` whose worker
processes are the build's children: reused within a session, closed on success and on error,
and gone after a ``kill -9`` of the build (real processes, checked with psutil)."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from pipeline import engine
from pipeline.config import load_config
from pipeline.engine.settings import SCHEDULER_ENV


def where() -> tuple[int, int]:
    """Run on a worker: its pid and its parent's."""
    return os.getpid(), os.getppid()


def nap(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def boom() -> None:
    raise ValueError("a scene that cannot be cut")


@pytest.fixture
def config(tmp_path, monkeypatch, tiny_archive, run_config):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)

    def make(**engine_section):
        out = tmp_path / "corpus"
        out.mkdir(exist_ok=True)
        path = run_config(tmp_path / "run.yaml", tiny_archive, out, engine=engine_section)
        return load_config(path)

    return make


def live_children() -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process().children(recursive=True)
        if p.is_running()
        and p.status() != psutil.STATUS_ZOMBIE
        and "resource_tracker" not in " ".join(p.cmdline())
    ]


def test_one_worker_runs_in_this_process_on_one_thread(config):
    with engine.executor(config()) as pool:
        futures = [pool.submit(where) for _ in range(3)]
        assert {f.result() for f in cf.as_completed(futures)} == {(os.getpid(), os.getppid())}
        assert isinstance(pool, cf.ThreadPoolExecutor)
    assert engine.provider_limits(config()).shared_by == "machine"


def test_an_error_in_the_block_cancels_the_work_not_yet_started(config):
    with pytest.raises(ValueError), engine.executor(config(kind="serial")) as pool:
        pool.submit(nap, 0.5)
        queued = [pool.submit(nap, 5) for _ in range(3)]
        raise ValueError("the build failed")
    assert all(f.cancelled() for f in queued)


def test_local_cluster_workers_are_child_processes_shared_by_a_session(config):
    cluster = config(n_workers=2)
    assert engine.provider_limits(cluster).shared_by == "cluster"
    with engine.session(cluster):
        with engine.executor(cluster) as pool:
            first = {pool.submit(where).result() for _ in range(8)}
        with engine.executor(cluster) as pool:
            futures = [pool.submit(nap, 0.2) for _ in range(4)]
            second = {f.result() for f in cf.as_completed(futures)}
        assert {parent for _, parent in first} == {os.getpid()}
        workers = {pid for pid, _ in first}
        assert os.getpid() not in workers and second <= {p.pid for p in live_children()}
    assert not live_children()  # closed with the session


def chip_buffer_faults(rounds: int = 200) -> int:
    """Page faults of a worker allocating, filling and freeing a 12-band chip ``rounds`` times
    (about 170 pages each time when every buffer is a fresh mapping)."""
    import resource

    import numpy as np

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        chip = np.ones((12, 120, 120), dtype=np.float32)
        del chip
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_local_cluster_workers_reuse_freed_chip_buffers(config):
    """A LocalCluster worker takes chip-sized buffers from malloc's heap, not from fresh
    mappings (Dask's default worker environment made each one cost ~170 page faults)."""
    with engine.executor(config(n_workers=2)) as pool:
        pool.submit(chip_buffer_faults).result()  # warm: the heap has grown once
        faults = pool.submit(chip_buffer_faults).result()
    assert faults < 200 * 170 / 10


def test_an_error_on_the_cluster_reaches_the_build_and_closes_the_cluster(config):
    with (
        pytest.raises(ValueError, match="cannot be cut"),
        engine.executor(config(n_workers=2)) as pool,
    ):
        failing = pool.submit(boom)
        slow = [pool.submit(nap, 60) for _ in range(4)]
        failing.result()
    assert all(f.cancelled() for f in slow)
    assert not live_children()


BUILD = r"""
import json, os, signal, sys, time
import psutil
from pipeline import engine
from pipeline.config import load_config

config, report = load_config(sys.argv[1]), sys.argv[2]
with engine.executor(config) as pool:
    futures = [pool.submit(time.sleep, 600) for _ in range(4)]
    time.sleep(1)  # the workers have their tasks
    family = [
        {"pid": p.pid, "created": p.create_time(), "cmdline": p.cmdline()}
        for p in psutil.Process().children(recursive=True)
    ]
    with open(report, "w") as fh:
        json.dump(family, fh)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def running(family: list[dict]) -> list[psutil.Process]:
    found = []
    for entry in family:
        try:
            proc = psutil.Process(entry["pid"])
            if proc.create_time() == entry["created"] and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def test_kill_9_of_the_build_ends_its_cluster_workers(config, tmp_path):
    path = tmp_path / "run.yaml"
    config(n_workers=2)  # writes run.yaml
    report, log = tmp_path / "family.json", tmp_path / "build.log"
    with log.open("w") as out:  # a file, not a pipe a surviving worker would keep open
        build = subprocess.run(
            [sys.executable, "-c", BUILD, str(path), str(report)],
            stdout=out,
            stderr=out,
            timeout=300,
            env={k: v for k, v in os.environ.items() if k != SCHEDULER_ENV},
        )
    assert build.returncode == -signal.SIGKILL, log.read_text()[-2000:]
    family = json.loads(report.read_text())
    workers = [p for p in family if "dask worker" in " ".join(p["cmdline"])]
    assert len(workers) == 2, family
    deadline = time.monotonic() + 15
    while (left := running(family)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for proc in left:  # clean up after a failure: only the processes this test started
        proc.kill()
    assert not left, [p.cmdline() for p in left]
