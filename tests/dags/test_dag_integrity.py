"""DagBag integrity: the DAG files import cleanly, cheaply, and wire the stages in order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    import os

    home = tmp_path_factory.mktemp("airflow")
    os.environ.setdefault("AIRFLOW_HOME", str(home))
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "clm_build_corpus" in dagbag.dag_ids


def test_build_dag_wires_stages_in_order(dagbag):
    dag = dagbag.dags["clm_build_corpus"]
    order = ["search", "chips", "captions", "corpus", "summary"]
    assert set(dag.task_ids) == set(order)
    assert dag.get_task("chips").upstream_task_ids == {"search"}
    assert dag.get_task("captions").upstream_task_ids == {"chips"}
    assert dag.get_task("corpus").upstream_task_ids == {"chips", "captions"}
    assert dag.get_task("summary").upstream_task_ids == {"corpus"}
    assert set(dag.params.keys()) == {"config", "archive", "out"}


HEAVY = (
    "rasterio",
    "h5py",
    "torch",
    "geopandas",
    "faiss",
    "mlflow",
    "pipeline.build",
    "pipeline.model",
)


@pytest.mark.parametrize(
    "dag_file", ["clm_build_corpus.py", "clm_archive_refresh.py", "clm_train_closp.py"]
)
def test_dag_import_is_light(dag_file):
    """Parsing a DAG file must not import the heavy libraries (top-level code rule)."""
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(DAGS / dag_file)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == ""
