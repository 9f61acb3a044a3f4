"""Deployment settings for the DAGs: environment variables read at parse time, and the base
directory relative DAG params are resolved against.

Parse-time settings come from the environment only (no Airflow Variable: reading one while a
DAG file is parsed costs a metadata-database round trip per parse). The base directory is
resolved at run time, in the task, where an Airflow Variable is cheap:

1. the environment variable ``CLM_HOME``;
2. else the Airflow Variable ``clm_home``;
3. else the source tree the ``pipeline`` package was installed from, when it holds ``configs/``
   (an editable install, or an image that copies the repository).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "CLM_HOME"
HOME_VARIABLE = "clm_home"
REFRESH_SCHEDULE_ENV = "CLM_REFRESH_SCHEDULE"
REFRESH_CONFIG_ENV = "CLM_REFRESH_CONFIG"
GPU_QUEUE_ENV = "CLM_GPU_QUEUE"
DEFAULT_CONFIG = "configs/demo.yaml"
DEFAULT_REFRESH_SCHEDULE = "@daily"
SOURCE_POOL = "clm_sources"  # tasks that talk to an imagery provider (search, chip reads)
TRAIN_POOL = "clm_training"  # training runs: one at a time unless the pool has more slots


@dataclass(frozen=True)
class Base:
    """The directory relative params resolve against, and where that choice came from."""

    path: Path | None
    origin: str  # "env CLM_HOME", "Airflow Variable clm_home", "the pipeline source tree"


def refresh_schedule(env: Mapping[str, str] = os.environ) -> str | None:
    """``CLM_REFRESH_SCHEDULE`` (a cron expression or preset; ``none``: manual only)."""
    value = env.get(REFRESH_SCHEDULE_ENV, "").strip() or DEFAULT_REFRESH_SCHEDULE
    return None if value.lower() == "none" else value


def refresh_config(env: Mapping[str, str] = os.environ) -> str:
    """The default ``config`` param of the scheduled refresh (``CLM_REFRESH_CONFIG``)."""
    return env.get(REFRESH_CONFIG_ENV, "").strip() or DEFAULT_CONFIG


def gpu_queue(env: Mapping[str, str] = os.environ) -> str | None:
    """The Celery queue GPU workers listen on (``CLM_GPU_QUEUE``), or None: the default queue."""
    return env.get(GPU_QUEUE_ENV, "").strip() or None


def source_tree() -> Path | None:
    """The checkout the package came from, when it carries the run configs."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "configs").is_dir() else None


def find_base(
    env: Mapping[str, str] = os.environ,
    variable: Callable[[str], str | None] = lambda name: None,
) -> Base:
    """Where relative DAG params resolve: ``CLM_HOME``, Variable ``clm_home``, the source tree."""
    if env.get(HOME_ENV, "").strip():
        return Base(Path(env[HOME_ENV].strip()).expanduser(), f"env {HOME_ENV}")
    value = (variable(HOME_VARIABLE) or "").strip()
    if value:
        return Base(Path(value).expanduser(), f"Airflow Variable {HOME_VARIABLE}")
    tree = source_tree()
    return Base(tree, "the pipeline source tree") if tree else Base(None, "nothing")


def airflow_variable(name: str) -> str | None:
    """An Airflow Variable inside a running task (None outside one, or when unset)."""
    try:
        from airflow.sdk import Variable

        return Variable.get(name, default=None)
    except Exception:  # not in a task (tests, CLI): no Variables to read
        return None


def resolve(value: str, base: Base) -> Path | None:
    """``value`` if absolute, else ``base / value``; None when relative and there is no base."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    return (base.path / path).resolve() if base.path is not None else None
