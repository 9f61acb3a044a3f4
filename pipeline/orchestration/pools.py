"""A pool per imagery provider: route the provider-facing tasks of a run to the pool of the
provider its run config reads from.

Airflow fixes a task's pool when the DAG is parsed, but the provider is chosen per run (the
``config`` param). The scheduler calls ``task_instance_mutation_hook`` (an Airflow cluster
policy, installed by ``airflow_local_settings.py``) on every task instance it creates or
reconciles, with the DAG run: tasks in ``clm_sources`` move to ``clm_source_<provider>`` when
that provider is listed in ``CLM_PROVIDER_POOLS`` (comma-separated: the pools the deployment
created), so two corpora built from Planetary Computer share its slots while an Earth Search
build is not held up by them. Anything unlisted or unreadable stays in ``clm_sources``: the
hook never leaves a task waiting on a pool nobody created, and never fails the scheduler.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pipeline.orchestration.settings import SOURCE_POOL, find_base, resolve

log = logging.getLogger(__name__)

PROVIDER_POOLS_ENV = "CLM_PROVIDER_POOLS"
POOL_PREFIX = "clm_source_"


def provider_of(source: Mapping[str, Any]) -> str:
    """The provider a run config's ``source`` section reads from: the STAC API's profile (or
    its host), ``sentinelhub``, or ``archive`` for a stac-geoparquet archive."""
    kind = str(source.get("kind", ""))
    if kind == "stac_api":
        named = source.get("profile") or urlparse(str(source.get("url", ""))).hostname or ""
        return slug(str(named)) or "stac-api"
    if kind == "sentinelhub":
        return "sentinelhub"
    return "archive"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", name.lower()).strip("-")


def provider_pool(params: Mapping[str, Any], env: Mapping[str, str] = os.environ) -> str | None:
    """``clm_source_<provider>`` for the run config named by ``params["config"]`` when the
    deployment created it (``CLM_PROVIDER_POOLS``); None otherwise."""
    enabled = {slug(p) for p in env.get(PROVIDER_POOLS_ENV, "").split(",") if p.strip()}
    value = str(params.get("config") or "").strip()
    if not enabled or not value:
        return None
    path = resolve(value, find_base(env))  # env or source tree: no Variable in the scheduler
    if path is None or not path.is_file():
        return None
    provider = provider_of(_source_section(path))
    return POOL_PREFIX + provider if provider in enabled else None


def _source_section(path: Path) -> Mapping[str, Any]:
    import yaml

    raw = yaml.safe_load(path.read_text())
    source = raw.get("source") if isinstance(raw, dict) else None
    return source if isinstance(source, dict) else {}


def task_instance_mutation_hook(task_instance: Any, dag_run: Any = None) -> None:
    """The cluster policy: provider-facing tasks to their provider's pool (idempotent)."""
    if task_instance.pool != SOURCE_POOL and not str(task_instance.pool).startswith(POOL_PREFIX):
        return
    task = getattr(task_instance, "task", None)
    params = dict(getattr(task, "params", None) or {}) if task is not None else {}
    params = {k: _plain(v) for k, v in params.items()}
    params.update(getattr(dag_run, "conf", None) or {})
    try:
        pool = provider_pool(params)
    except Exception:  # a policy must never take the scheduler down: keep the shared pool
        log.exception("provider pool for %s: keeping %s", task_instance.task_id, SOURCE_POOL)
        pool = None
    task_instance.pool = pool or SOURCE_POOL


def _plain(value: Any) -> Any:
    """A DAG ``Param`` (or its serialized form) as its default value."""
    return getattr(value, "value", value)
