"""Per-provider concurrency limits that hold across every worker of a build.

A provider is the host of an asset URL (``host:port``); local files have none. Work that
talks to providers holds one slot of each provider it reads from for as long as it reads
(the chip stage: a scene's fingerprints and reads). Slots are shared where the workers are:

- ``cluster``: a ``distributed.Semaphore`` per provider on the Dask scheduler, so every
  worker of the cluster (and the build process) counts against one limit;
- ``machine``: lock files under the system temporary directory (``flock``), shared by every
  thread and process of this machine, other builds included; the kernel releases the slots
  of a killed process.

Slots of several providers are taken in sorted host order, so two holders never wait on
each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

SHARED_BY = ("cluster", "machine")
POLL_S = (0.01, 0.25)  # first and longest pause between attempts at a machine slot


@dataclass(frozen=True)
class ProviderLimits:
    """How many holders may use one provider at once (``None``: no limit), and where the
    slots are shared (``cluster`` or ``machine``). Picklable: it travels with the work."""

    default: int | None = None
    hosts: tuple[tuple[str, int], ...] = ()
    shared_by: str = "machine"

    def limit(self, host: str) -> int | None:
        return dict(self.hosts).get(host, self.default)

    @contextlib.contextmanager
    def hold(self, locations: Iterable[str]) -> Iterator[None]:
        """Hold a slot of every limited provider serving ``locations`` for the block."""
        with contextlib.ExitStack() as stack:
            for host in provider_hosts(locations):
                limit = self.limit(host)
                if limit is not None:
                    slot = cluster_slot if self.shared_by == "cluster" else machine_slot
                    stack.enter_context(slot(host, limit))
            yield


def provider_hosts(locations: Iterable[str]) -> list[str]:
    """The sorted, distinct hosts of the URLs among ``locations`` (paths have none)."""
    hosts = {urlparse(loc).netloc.lower() for loc in locations if "://" in loc}
    return sorted(h for h in hosts if h)


@contextlib.contextmanager
def cluster_slot(host: str, limit: int) -> Iterator[None]:
    """One of ``limit`` leases of the scheduler's semaphore for ``host`` (from a worker or
    from the build process, through its client)."""
    from distributed import Semaphore

    semaphore = Semaphore(max_leases=limit, name=f"clm-provider:{host}:{limit}")
    try:
        with semaphore:
            yield
    finally:  # only this handle's lease refresh: ``close()`` would end everyone's leases
        refresh = getattr(semaphore, "refresh_callback", None)
        if refresh is not None:
            refresh.stop()


@contextlib.contextmanager
def machine_slot(host: str, limit: int) -> Iterator[None]:
    """One of ``limit`` lock files for ``host`` on this machine, waiting until one is free."""
    folder = slot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9.-]", "_", host)
    pause = POLL_S[0]
    while True:
        for i in range(limit):
            fd = os.open(folder / f"{name}.{limit}.{i}.lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the lock
            return
        time.sleep(pause)
        pause = min(POLL_S[1], pause * 2)


def slot_dir() -> Path:
    """This user's provider slots on this machine."""
    return Path(tempfile.gettempdir()) / f"clm-provider-slots-{os.getuid()}"
