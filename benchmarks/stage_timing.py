"""Per-stage wall time of ``pipeline.build.build``, measured from outside the build.

The build module calls its stage functions by their module-global names, so wrapping those
names times every stage without touching the product. A stage whose function is renamed or
moved is simply not found: its time then shows up as ``other`` (total minus the stages
found), never silently lost.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import time
from collections.abc import Callable, Iterator
from typing import Any

# (module, function name, stage); stages listed in pipeline order.
TOP_LEVEL = (
    ("pipeline.build", "search_scenes", "search"),
    ("pipeline.build", "extract_chips", "chips"),
    ("pipeline.build", "caption_chips", "captions"),
    ("pipeline.build", "write_corpus", "corpus_shards"),
    ("pipeline.build", "write_views", "views"),
    ("pipeline.build", "fingerprint_inputs", "lock_publish"),
    ("pipeline.build", "keep_only", "lock_publish"),
    ("pipeline.build", "write_lock", "lock_publish"),
    ("pipeline.build", "publish_staging", "lock_publish"),
    ("pipeline.build", "summarize", "summarize"),
)
VIEWS = (  # inside ``views``
    ("pipeline.corpus.export", "write_master", "views.clm_hdf5"),
    ("pipeline.corpus.export", "write_queries", "views.clm_hdf5"),
    ("pipeline.corpus.export", "write_webdataset", "views.webdataset"),
    ("pipeline.corpus.export", "write_stac", "views.stac"),
)
STAGES = tuple(dict.fromkeys(stage for _, _, stage in TOP_LEVEL))


@contextlib.contextmanager
def stage_timers(
    after: dict[str, Callable[[Any], None]] | None = None,
) -> Iterator[dict[str, float]]:
    """Yield stage -> seconds, filled while the ``with`` block runs the build; ``after``
    maps a stage to a callback given the stage function's result (run outside the timer)."""
    seconds: dict[str, float] = {}
    found, restore = [], []
    for module_name, name, stage in (*TOP_LEVEL, *VIEWS):
        module = importlib.import_module(module_name)
        original = getattr(module, name, None)
        if original is None:
            continue
        found.append(stage)
        hook = (after or {}).get(stage)
        setattr(module, name, _timed(original, stage, seconds, hook))
        restore.append((module, name, original))
    try:
        yield seconds
    finally:
        for module, name, original in restore:
            setattr(module, name, original)
        for stage in found:
            seconds.setdefault(stage, 0.0)


def _timed(
    fn: Callable[..., Any],
    stage: str,
    seconds: dict[str, float],
    hook: Callable[[Any], None] | None,
) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
        finally:
            seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start
        if hook is not None:
            hook(result)
        return result

    return wrapper


def breakdown(seconds: dict[str, float], total: float) -> dict[str, Any]:
    """Top-level stages (+ ``other``) with their share of ``total``, and the view parts."""
    top = {stage: seconds[stage] for stage in STAGES if stage in seconds}
    top["other"] = max(0.0, total - sum(top.values()))
    return {
        "order": list(top),
        "seconds": {k: round(v, 3) for k, v in top.items()},
        "share": {k: round(v / total, 4) if total else 0.0 for k, v in top.items()},
        "views_seconds": {
            k.removeprefix("views."): round(v, 3) for k, v in seconds.items() if "." in k
        },
    }
