"""Where a stage's parallel work runs: one interface, ``executor(config)``, for every stage.

Stages submit top-level functions with plain, picklable arguments (paths, dicts, frozen
dataclasses) and assemble results by key, never by completion order, so the output bytes do
not depend on which worker ran what. Only ``Executor.submit``/``map``, ``Future.result`` and
``concurrent.futures.wait``/``as_completed`` may be used, so any ``concurrent.futures``
executor can stand behind it.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.chips.workers import worker_pool
from pipeline.config import RunConfig


@contextmanager
def executor(config: RunConfig) -> Iterator[cf.Executor]:
    """The build's executor: ``chips.workers`` spawned processes that die with the build
    (one thread when ``workers <= 1``)."""
    with worker_pool(config.chips.workers) as pool:
        yield pool
