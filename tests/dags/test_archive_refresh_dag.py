"""DagBag integrity of the scheduled refresh DAG: imports cleanly and cheaply, wired in order."""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    import os

    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow")))
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS / "clm_archive_refresh.py"))


def test_refresh_dag_imports_and_is_scheduled(dagbag):
    assert dagbag.import_errors == {}
    dag = dagbag.dags["clm_archive_refresh"]
    assert dag.schedule == "@daily" or str(dag.timetable.summary) == "@daily"
    assert dag.max_active_runs == 1 and not dag.catchup
    assert set(dag.params.keys()) == {"config", "archive", "out"}


def test_refresh_dag_wires_plan_then_stages(dagbag):
    dag = dagbag.dags["clm_archive_refresh"]
    assert set(dag.task_ids) == {"plan", "chips", "captions", "corpus", "datasheet"}
    assert dag.get_task("plan").upstream_task_ids == set()
    assert dag.get_task("chips").upstream_task_ids == {"plan"}
    assert dag.get_task("captions").upstream_task_ids == {"chips"}
    assert dag.get_task("corpus").upstream_task_ids == {"chips", "captions"}
    assert dag.get_task("datasheet").upstream_task_ids == {"corpus"}
