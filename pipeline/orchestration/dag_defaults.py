"""Operational defaults shared by the CrisisLandMark DAGs: owner, retries with exponential
backoff on transient errors only, per-task execution timeouts, the failure callback."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pipeline.orchestration.failures import on_task_failure
from pipeline.orchestration.retry import retry_policy

OWNER = "crisislandmark"
TAGS = ["crisislandmark"]
RETRIES = 3
RETRY_DELAY = timedelta(minutes=2)
BACKOFF = 2.0  # 2, 4, 8 min ... capped at MAX_RETRY_DELAY
MAX_RETRY_DELAY = timedelta(minutes=30)

# execution_timeout per task id: generous for the demo, sized for a regional corpus
TIMEOUTS = {
    "check_config": timedelta(minutes=5),
    "search": timedelta(hours=1),
    "plan": timedelta(hours=1),
    "chips": timedelta(hours=12),
    "captions": timedelta(hours=4),
    "corpus": timedelta(hours=4),
    "summary": timedelta(minutes=15),
    "datasheet": timedelta(minutes=30),
    "select_corpus": timedelta(minutes=5),
    "prepare": timedelta(hours=2),
    "train": timedelta(hours=48),
    "embed": timedelta(hours=6),
    "evaluate": timedelta(hours=2),
    "publish_model": timedelta(minutes=5),
}


def default_args() -> dict[str, Any]:
    """``default_args`` of every task (a task's ``execution_timeout`` comes from ``TIMEOUTS``)."""
    return {
        "owner": OWNER,
        "retries": RETRIES,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": BACKOFF,
        "max_retry_delay": MAX_RETRY_DELAY,
        "retry_policy": retry_policy(),
        "on_failure_callback": on_task_failure,
    }


def timeout(task_id: str) -> timedelta:
    return TIMEOUTS[task_id]
