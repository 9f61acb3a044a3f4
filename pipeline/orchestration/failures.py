"""What a failed task leaves behind: a short JSON summary and one log line.

``on_task_failure`` is the tasks' ``on_failure_callback`` (it runs once the task has failed
for good: after the last retry, or at once for a non-transient error). The summary says what
failed (DAG, run, task, try, the error's type and redacted message, whether it was retryable),
where the task's log is (file under Airflow's log folder, and the UI address) and which
partial outputs the run left (the corpus work area, an unpublished staging version, a model
run folder). It is written to ``CORPUS/runs/DAG_ID/RUN_ID/TASK_ID.json`` when the run's corpus
is known, and logged in every case. It never holds params' values beyond paths, nor any
environment: no secrets.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.orchestration.retry import is_transient

log = logging.getLogger(__name__)
RUNS_DIR = "runs"
MAX_MESSAGE = 2000
LOG_TEMPLATE = "dag_id={dag_id}/run_id={run_id}/task_id={task_id}/attempt={try_number}.log"


@dataclass(frozen=True)
class FailureSummary:
    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    max_tries: int
    failed_at: str
    error_type: str
    error: str
    retryable: bool
    log_file: str
    log_url: str
    corpus: str | None
    partial_outputs: tuple[str, ...]

    def line(self) -> str:
        return (
            f"{self.dag_id}/{self.task_id} failed (run {self.run_id}, try {self.try_number} of "
            f"{self.max_tries + 1}): {self.error_type}: {self.error[:300]} | log {self.log_file}"
            f" | partial outputs: {', '.join(self.partial_outputs) or 'none'}"
        )


def summarize_failure(
    ti: Any, exception: BaseException | None, corpus: Path | None, log_folder: Path, log_url: str
) -> FailureSummary:
    """The summary of ``ti`` (an Airflow task instance: dag_id, run_id, task_id, try_number)."""
    from pipeline.sources.redact import redact

    error = redact(str(exception) if exception is not None else "no exception recorded")
    names = {k: getattr(ti, k) for k in ("dag_id", "run_id", "task_id", "try_number")}
    return FailureSummary(
        **names,
        max_tries=int(getattr(ti, "max_tries", 0) or 0),
        failed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        error_type=type(exception).__name__ if exception is not None else "unknown",
        error=error[:MAX_MESSAGE],
        retryable=exception is not None and is_transient(exception),
        log_file=str(log_folder / LOG_TEMPLATE.format(**names)),
        log_url=log_url,
        corpus=str(corpus) if corpus else None,
        partial_outputs=tuple(str(p) for p in partial_outputs(corpus)),
    )


def partial_outputs(corpus: Path | None) -> list[Path]:
    """What an unfinished run may have left: the work area and an unpublished version."""
    if corpus is None:
        return []
    candidates = [corpus / "work", corpus / "versions" / ".staging"]
    return [p for p in candidates if p.exists()]


def write_summary(summary: FailureSummary) -> Path | None:
    """Log the summary; write it under the corpus's ``runs/`` when the corpus is known."""
    from pipeline.storage import write_json_atomic

    log.error("%s", summary.line())
    if summary.corpus is None or not Path(summary.corpus).is_dir():
        return None
    path = Path(summary.corpus) / RUNS_DIR / _safe(summary.dag_id) / _safe(summary.run_id)
    path = path / f"{_safe(summary.task_id)}.json"
    write_json_atomic(path, asdict(summary))
    return path


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name)


def on_task_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` of every CrisisLandMark task; never raises."""
    try:
        ti = context["ti"]
        summary = summarize_failure(
            ti,
            context.get("exception"),
            corpus_of(context),
            _log_folder(),
            str(getattr(ti, "log_url", "")),
        )
        write_summary(summary)
    except Exception:  # a callback that fails hides the task's own error
        log.exception("could not write the failure summary")


def corpus_of(context: Mapping[str, Any]) -> Path | None:
    """The run's corpus: from ``check_config``/``select_corpus`` XCom, else None."""
    ti = context["ti"]
    for task_id in ("check_config", "select_corpus"):
        if task_id not in ti.task.dag.task_ids:
            continue
        value = ti.xcom_pull(task_ids=task_id)
        if isinstance(value, dict) and value.get("corpus"):
            return Path(value["corpus"])
    return None


def _log_folder() -> Path:
    from airflow.sdk import conf

    return Path(conf.get("logging", "base_log_folder"))
