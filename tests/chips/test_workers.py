"""Chip workers die with the process that started them, however it dies (real processes)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import psutil
import pytest

PARENT = r"""
import json, multiprocessing, os, signal, sys, time
import psutil
from pipeline.chips import workers

mode, report = sys.argv[1], sys.argv[2]
me = psutil.Process()
if mode == "pool":
    pool_context = workers.worker_pool(2)  # kept referenced: the pool lives until the kill
    pool = pool_context.__enter__()
    for _ in range(4):
        pool.submit(time.sleep, 60)
else:  # the fallback alone: a spawned process that only watches its parent
    child = multiprocessing.get_context("spawn").Process(
        target=workers.exit_when_orphaned, args=(os.getpid(),)
    )
    child.start()
time.sleep(3)  # let the children start and arm themselves
family = [{"pid": p.pid, "created": p.create_time()} for p in me.children(recursive=True)]
with open(report, "w") as fh:
    json.dump(family, fh)
os.kill(os.getpid(), signal.SIGKILL)
"""


def running(family: list[dict]) -> list[int]:
    pids = []
    for entry in family:
        try:
            proc = psutil.Process(entry["pid"])
            if proc.create_time() == entry["created"] and proc.status() != psutil.STATUS_ZOMBIE:
                pids.append(proc.pid)
        except psutil.NoSuchProcess:
            continue
    return pids


@pytest.mark.parametrize("mode", ["pool", "fallback"])
def test_children_exit_when_their_parent_is_killed(mode, tmp_path):
    report, log = tmp_path / "family.json", tmp_path / "parent.log"
    with log.open("w") as out:  # a file, not a pipe a surviving child would keep open
        parent = subprocess.run(
            [sys.executable, "-c", PARENT, mode, str(report)], stdout=out, stderr=out, timeout=120
        )
    assert parent.returncode == -signal.SIGKILL, log.read_text()[-2000:]
    family = json.loads(report.read_text())
    assert len(family) >= (3 if mode == "pool" else 1), family  # workers (+ resource tracker)
    deadline = time.monotonic() + 10
    while running(family) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = running(family)
    for pid in left:  # clean up after a failure: only the processes this test started
        psutil.Process(pid).kill()
    assert not left
