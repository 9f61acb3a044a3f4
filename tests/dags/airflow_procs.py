"""Run real Airflow in subprocesses: an isolated AIRFLOW_HOME, a fresh metadata DB, the CLI.

Small on purpose: ``airflow_env`` (the environment of an isolated Airflow), ``migrate``,
``dags_test`` (``airflow dags test`` with a conf and a working directory) and ``query`` (read
the SQLite metadata DB afterwards, e.g. task-instance states or asset events).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def airflow_env(home: Path, db_url: str | None = None, **extra: str) -> dict[str, str]:
    """Environment of an Airflow installation in ``home`` reading this checkout's DAGs."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__", "CLM_"))
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=db_url or f"sqlite:///{home}/airflow.db",
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    env.update(extra)
    return env


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=600
    )


def dags_test(
    dag_id: str, env: dict[str, str], cwd: Path, conf: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    """``airflow dags test DAG_ID [-c CONF]`` run from ``cwd``; output captured."""
    args = [AIRFLOW, "dags", "test", dag_id]
    if conf is not None:
        args += ["-c", json.dumps(conf)]
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=1800)


def query(home: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on the SQLite metadata DB of ``home``."""
    with sqlite3.connect(home / "airflow.db") as db:
        return db.execute(sql, args).fetchall()


def task_states(home: Path, dag_id: str) -> dict[str, tuple[str, int, int]]:
    """task_id -> (state, try_number, max_tries) of the latest run of ``dag_id``."""
    rows = query(
        home,
        "SELECT task_id, state, try_number, max_tries FROM task_instance WHERE run_id = "
        "(SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1) AND dag_id = ?",
        dag_id,
        dag_id,
    )
    return {task: (state, tries, max_tries) for task, state, tries, max_tries in rows}
