"""Which task failures are worth a retry (Airflow ``retry_policy``).

Transient: a source that stayed unavailable after the HTTP layer's own retries
(``SourceError``: 5xx, 429, timeouts, a chip read that failed), another writer holding the
corpus directory (``CorpusBusyError``), OS-level connection or timeout errors, and a task that
hit its ``execution_timeout`` (usually a hung connection; the stages resume where they
stopped, so the next try does not start over). Every other
``PipelineError`` is a problem with the input (config, schema, corpus, disk): retrying cannot
help, so the task fails at once. Anything else is a bug: it fails at once too.

Retries back off exponentially (``retry_exponential_backoff`` on the tasks); the policy only
decides whether to retry, never how long to wait.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowTaskTimeout

from pipeline.errors import CorpusBusyError, PipelineError, SourceError

TRANSIENT: tuple[type[BaseException], ...] = (
    SourceError,
    CorpusBusyError,
    ConnectionError,
    TimeoutError,
    AirflowTaskTimeout,
)
PERMANENT: tuple[type[BaseException], ...] = (PipelineError,)


def is_transient(exc: BaseException) -> bool:
    """True when a later attempt may succeed (the first rule in ``retry_policy`` matching)."""
    return isinstance(exc, TRANSIENT)


def retry_policy() -> Any:
    """The Airflow ``ExceptionRetryPolicy``: retry the transient errors, fail the rest."""
    from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

    return ExceptionRetryPolicy(
        rules=[
            RetryRule(
                exception=list(TRANSIENT),
                action=RetryAction.RETRY,
                reason="transient: the source or the corpus directory may be available later",
            ),
            RetryRule(
                exception=list(PERMANENT),
                action=RetryAction.FAIL,
                reason="bad input: fix the config, params or corpus, then clear the task",
            ),
        ],
        default=RetryAction.FAIL,
    )
