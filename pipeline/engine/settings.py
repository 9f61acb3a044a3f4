"""The ``engine:`` section of a run config: where a build's parallel work runs.

How a build runs is not part of its recipe: the outputs are the same bytes on any engine, so
these settings are left out of ``RunConfig.to_dict`` (manifest, lock, config digest).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError

ENGINE_KINDS = ("dask", "serial")
SCHEDULER_ENV = "CLM_DASK_SCHEDULER"  # an external scheduler's address; wins over the config
DEFAULT_DASHBOARD = ":8787"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    """``kind: dask`` runs stages on a Dask cluster: an external one when a scheduler address
    is given (``CLM_DASK_SCHEDULER`` or ``scheduler``), else a ``LocalCluster`` of
    ``n_workers`` processes. With one worker and no address the work runs in the build's own
    process on one thread, as ``kind: serial`` always does (a one-process cluster would add
    start-up time and a process for no parallelism)."""

    kind: str = "dask"
    n_workers: int = 1  # LocalCluster worker processes
    threads_per_worker: int = 1
    memory_limit: str = "auto"  # per LocalCluster worker: "auto", "4GiB", ... "0": no limit
    scheduler: str | None = None  # e.g. tcp://10.0.0.5:8786 (CLM_DASK_SCHEDULER wins)
    dashboard: str | None = None  # LocalCluster dashboard address, e.g. ":8787"; None: off
    max_per_provider: int | None = None  # scenes read at once from one host; None: no limit
    provider_limits: tuple[tuple[str, int], ...] = ()  # host -> limit (over max_per_provider)

    def scheduler_address(self) -> str | None:
        """The external scheduler to use: ``CLM_DASK_SCHEDULER`` if set, else ``scheduler``."""
        return os.environ.get(SCHEDULER_ENV, "").strip() or self.scheduler

    @property
    def uses_cluster(self) -> bool:
        """True when stages run on a Dask cluster (external, or more than one local worker)."""
        if self.kind != "dask":
            return False
        return self.scheduler_address() is not None or self.n_workers > 1


def parse_engine(raw: Mapping[str, Any], chips: Mapping[str, Any], where: str) -> EngineConfig:
    """``engine:`` -> ``EngineConfig``; ``chips.workers`` (deprecated) is ``engine.n_workers``."""
    n_workers = raw.get("n_workers", chips.get("workers", 1))
    if "workers" in chips:
        if "n_workers" in raw and raw["n_workers"] != chips["workers"]:
            raise ConfigError(
                f"{where}: chips.workers ({chips['workers']}) and engine.n_workers "
                f"({raw['n_workers']}) disagree; remove chips.workers (deprecated)"
            )
        log.info("%s: chips.workers is deprecated; it sets engine.n_workers", where)
    kind = str(raw.get("kind", "dask"))
    if kind == "serial" and (n_workers != 1 or raw.get("scheduler")):
        raise ConfigError(
            f"{where}: engine.kind serial runs in the build's own process; n_workers and "
            "scheduler apply to kind dask: remove them or set kind: dask"
        )
    return EngineConfig(
        kind=kind,
        n_workers=int(n_workers),
        threads_per_worker=int(raw.get("threads_per_worker", 1)),
        memory_limit=_memory_limit(raw.get("memory_limit", "auto"), where),
        scheduler=raw.get("scheduler") or None,
        dashboard=_dashboard(raw.get("dashboard", False)),
        max_per_provider=raw.get("max_per_provider"),
        provider_limits=tuple(
            sorted((str(h), int(n)) for h, n in raw.get("provider_limits", {}).items())
        ),
    )


def _memory_limit(value: Any, where: str) -> str:
    text = str(value).strip()
    if text == "auto":
        return text
    from dask.utils import parse_bytes

    try:
        parse_bytes(text)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{where}: engine.memory_limit {value!r} is not a size; give e.g. 4GiB, 500MB, "
            "auto, or 0 for no limit"
        ) from exc
    return text


def _dashboard(value: Any) -> str | None:
    """``false``: no dashboard; ``true``: the usual port; a string: that address."""
    if value is True:
        return DEFAULT_DASHBOARD
    return str(value) if value else None
