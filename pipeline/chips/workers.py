"""The chip stage's worker pool, whose processes die with the build.

A ``kill -9`` of the build process cannot run any cleanup, and spawned pool workers would
otherwise wait on their task queue forever. Each worker asks the kernel to SIGKILL it when
its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon thread watches the
parent pid. Once the workers are gone, multiprocessing's resource tracker sees its pipe
close and exits too.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL_S = 1.0


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator[cf.Executor]:
    """One thread for ``workers <= 1``, else spawned processes that die with this one.
    On an error, tasks not yet started are cancelled instead of run."""
    pool: cf.Executor
    if workers <= 1:
        pool = cf.ThreadPoolExecutor(max_workers=1)
    else:
        pool = cf.ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=die_with_parent,
            initargs=(os.getpid(),),
        )
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def die_with_parent(parent: int) -> None:
    """Worker initializer: end this process as soon as ``parent`` is gone."""
    if not _parent_death_signal(signal.SIGKILL):
        threading.Thread(
            target=exit_when_orphaned, args=(parent,), name="clm-parent-watch", daemon=True
        ).start()
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _parent_death_signal(signum: int) -> bool:
    """Linux: have the kernel send ``signum`` to this process when its parent exits."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def exit_when_orphaned(parent: int) -> None:
    """The portable fallback: poll the parent pid, exit once this process was re-parented."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)
