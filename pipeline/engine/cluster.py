"""The Dask cluster of a build: a ``LocalCluster`` of worker processes, or an external
scheduler by address.

A ``LocalCluster``'s workers are child processes of the build: closed with it on success and
on error, and ended by Dask itself when the build dies (each worker process exits as soon as
the pipe to its parent closes, ``kill -9`` included). An external cluster outlives the build;
its workers must see the corpus directory at the same path and run the same software, which
is checked on connecting.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pipeline
from pipeline.engine.settings import SCHEDULER_ENV, EngineConfig
from pipeline.errors import EngineError

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 30
WORKERS_TIMEOUT_S = 120
DASK_LOG_LEVEL = logging.ERROR  # Dask's own INFO/WARNING lines are noise in a build log
# How a LocalCluster's workers run. Dask's periodic self-observation is sampled less often:
# a build's tasks are whole scenes and shards (seconds each), and the statistical profiler
# (every 10 ms) and the monitors took about 5 % of the workers' CPU in a 6,000-chip build.
LOCAL_WORKER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.worker.memory.monitor-interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.admin.tick.interval": "200ms",
    # Dask's default environment of a nanny's worker sets MALLOC_TRIM_THRESHOLD_=65536, which
    # also pins glibc's mmap threshold at 128 KiB: every chip-sized buffer (a 12-band chip is
    # 691 KB, its compressed copy, GDAL's strips) was then a fresh mmap, zero-filled by the
    # kernel page by page and unmapped when freed. In a 6,400-chip build that was 6.5 million
    # page faults and a fifth of all CPU time (the reader alone: 0.23 million). Buffers up to
    # 32 MiB now come from malloc's heap and are reused; up to 128 MiB of free heap is kept.
    "distributed.nanny.pre-spawn-environ": {
        "MALLOC_MMAP_THRESHOLD_": 32 * 2**20,
        "MALLOC_TRIM_THRESHOLD_": 128 * 2**20,
        "OMP_NUM_THREADS": 1,  # Dask's defaults, kept: one thread per task's numerics
        "MKL_NUM_THREADS": 1,
        "OPENBLAS_NUM_THREADS": 1,
    },
}


@contextlib.contextmanager
def dask_client(engine: EngineConfig, shared_dir: Path) -> Iterator[Client]:
    """A client of the external scheduler, else of a ``LocalCluster`` started for the block."""
    quiet_dask_logs()
    address = engine.scheduler_address()
    if address:
        with external_client(address, shared_dir) as client:
            yield client
        return
    with local_client(engine) as client:
        yield client


@contextlib.contextmanager
def local_client(engine: EngineConfig) -> Iterator[Client]:
    import dask.config
    from distributed import Client, LocalCluster

    with dask.config.set(LOCAL_WORKER_CONFIG):  # the nannies hand it to their workers
        cluster = LocalCluster(
            n_workers=engine.n_workers,
            threads_per_worker=engine.threads_per_worker,
            processes=True,
            memory_limit=_memory_limit(engine.memory_limit),
            # the scheduler always serves HTTP (health, metrics): on a free port unless asked
            dashboard_address=engine.dashboard or ":0",
            scheduler_kwargs={"dashboard": engine.dashboard is not None},
            silence_logs=DASK_LOG_LEVEL,
        )
    with cluster, Client(cluster) as client:
        log.info(
            "Dask LocalCluster: %d worker process(es) x %d thread(s)",
            engine.n_workers,
            engine.threads_per_worker,
        )
        if engine.dashboard:
            log.info("Dask dashboard: %s", client.dashboard_link)
        yield client


@contextlib.contextmanager
def external_client(address: str, shared_dir: Path) -> Iterator[Client]:
    from distributed import Client

    where = f"{SCHEDULER_ENV}" if os.environ.get(SCHEDULER_ENV, "").strip() else "engine.scheduler"
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=True)
    except (OSError, TimeoutError) as exc:
        raise EngineError(
            f"cannot reach the Dask scheduler at {address} (from {where}): {exc}; start it "
            "(`dask scheduler`) or fix the address"
        ) from None
    with client:
        check_workers(client, address, shared_dir)
        log.info("Dask scheduler %s (from %s): %d worker(s)", address, where, _count(client))
        if client.dashboard_link:
            log.info("Dask dashboard: %s", client.dashboard_link)
        yield client


def check_workers(client: Client, address: str, shared_dir: Path) -> None:
    """Every worker runs this software and sees ``shared_dir`` (the corpus directory)."""
    try:
        client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
    except TimeoutError:
        raise EngineError(
            f"the Dask scheduler at {address} has no workers after {WORKERS_TIMEOUT_S} s; "
            f"start some with `dask worker {address}`"
        ) from None
    facts = client.run(worker_facts, str(shared_dir))
    stale = sorted(w for w, f in facts.items() if f["version"] != pipeline.__version__)
    blind = sorted(w for w, f in facts.items() if not f["sees_dir"])
    if stale:
        raise EngineError(
            f"Dask worker(s) {', '.join(stale)} run crisislandmark "
            f"{facts[stale[0]]['version']}, this build {pipeline.__version__}; install the "
            "same version on every worker"
        )
    if blind:
        raise EngineError(
            f"Dask worker(s) {', '.join(blind)} cannot write the corpus directory {shared_dir}; "
            "a multi-machine build needs output.dir on storage every worker mounts at the "
            "same path"
        )


def worker_facts(shared_dir: str) -> dict[str, Any]:
    """Run on each worker: its software version, and whether it can write ``shared_dir``."""
    return {
        "version": pipeline.__version__,
        "sees_dir": os.path.isdir(shared_dir) and os.access(shared_dir, os.W_OK),
    }


def quiet_dask_logs() -> None:
    """Dask's own log lines (start-up, shutdown, slow event loops) at ERROR only."""
    import distributed  # noqa: F401  (importing it sets its loggers' levels: set them after)

    for name in ("distributed", "bokeh", "tornado"):
        logging.getLogger(name).setLevel(DASK_LOG_LEVEL)


def _memory_limit(value: str) -> str | int | None:
    return None if value in ("0", "none") else value


def _count(client: Client) -> int:
    return len(client.scheduler_info(n_workers=-1).get("workers", {}))
