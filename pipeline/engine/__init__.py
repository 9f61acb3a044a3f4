"""Where a stage's parallel work runs: one interface, ``executor(config)``, for every stage.

Stages submit top-level functions with plain, picklable arguments (paths, dicts, frozen
dataclasses) and assemble results by key, never by completion order, so the output bytes do
not depend on which worker ran what. Only ``Executor.submit``/``map``, ``Future.result`` and
``concurrent.futures.wait``/``as_completed`` may be used, so any ``concurrent.futures``
executor can stand behind it: one thread of the build process, or a Dask cluster
(``engine:`` in the run config, ``pipeline.engine.settings``). A worker may run on another
machine: work functions get everything they need as arguments (no cwd, no driver state).

``session(config)`` keeps one cluster for several stages (the build, refresh and rebuild
use it); ``executor(config)`` outside a session starts a cluster for its block only.
``provider_limits(config)`` gives the per-provider slots matching the executor.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pipeline.engine.settings import EngineConfig
from pipeline.engine.slots import ProviderLimits

if TYPE_CHECKING:
    from pipeline.config import RunConfig

_SESSIONS: dict[EngineConfig, Any] = {}  # engine -> the distributed.Client of an open session


@contextlib.contextmanager
def session(config: RunConfig) -> Iterator[None]:
    """Keep the build's cluster up for the block (nothing to do when it runs serially)."""
    engine = config.engine
    if not engine.uses_cluster or engine in _SESSIONS:
        yield
        return
    from pipeline.engine.cluster import dask_client

    with dask_client(engine, config.output.dir) as client:
        _SESSIONS[engine] = client
        try:
            yield
        finally:
            del _SESSIONS[engine]


@contextlib.contextmanager
def executor(config: RunConfig) -> Iterator[cf.Executor]:
    """The build's executor: the session's Dask cluster (or one for this block), or one
    thread of this process. On an error, work not yet finished is cancelled."""
    engine = config.engine
    if not engine.uses_cluster:
        with _serial() as pool:
            yield pool
        return
    with session(config):
        # pure=False: tasks write files, two equal calls are never merged into one
        pool = _OpaqueArguments(_SESSIONS[engine].get_executor(pure=False))
        try:
            yield pool
        except BaseException:
            pool.shutdown(wait=False)  # cancels queued and running tasks of this block
            raise
        pool.shutdown(wait=True)


class _Call:
    """``fn(*args, **kwargs)`` as one opaque callable. Dask walks every list, tuple and dict
    among a task's arguments looking for futures to depend on (about 0.1 s per 1,000 chip
    rows, in the build process); stages never pass futures, so the arguments travel as one
    object, pickled once."""

    def __init__(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.__name__ = getattr(fn, "__name__", "task")  # the task's name on the dashboard

    def __call__(self) -> Any:
        return self.fn(*self.args, **self.kwargs)


class _OpaqueArguments(cf.Executor):
    """A Dask ``ClientExecutor`` whose tasks take their arguments as one ``_Call``."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        future: cf.Future[Any] = self._inner.submit(_Call(fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._inner.shutdown(wait=wait)


@contextlib.contextmanager
def _serial() -> Iterator[cf.Executor]:
    pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="clm-work")
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def provider_limits(config: RunConfig) -> ProviderLimits:
    """The configured per-provider limits, shared by the cluster's workers or this machine."""
    engine = config.engine
    return ProviderLimits(
        default=engine.max_per_provider,
        hosts=engine.provider_limits,
        shared_by="cluster" if engine.uses_cluster else "machine",
    )
