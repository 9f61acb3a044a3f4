"""DagBag integrity of clm_train_closp: imports cleanly and lightly, wires the stages in order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dag(tmp_path_factory):
    import os

    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow")))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / "clm_train_closp.py"))
    assert bag.import_errors == {}
    return bag.dags["clm_train_closp"]


def test_train_dag_wires_prepare_train_embed_evaluate(dag):
    assert set(dag.task_ids) == {"prepare", "train", "embed", "evaluate"}
    assert dag.get_task("train").upstream_task_ids == {"prepare"}
    assert dag.get_task("embed").upstream_task_ids == {"train", "prepare"}
    assert dag.get_task("evaluate").upstream_task_ids == {"train", "embed"}
    assert set(dag.params.keys()) == {
        "corpus", "run_dir", "model_config", "sensors", "epochs", "batch_size", "seed",
    }  # fmt: skip


def test_train_params_become_clm_train_options():
    code = (
        "import runpy, sys; ns = runpy.run_path(sys.argv[1]); "
        "from pipeline.model.train import parse_args; "
        "o = parse_args(ns['_train_argv']({'corpus': '/c', 'model_config': 'closp-tiny-cnn', "
        "'sensors': 's1', 'epochs': 3, 'batch_size': 8, 'seed': 1, 'run_dir': '/r'})); "
        "print(o.sensors, o.epochs, o.batch_size, o.seed, o.run_dir)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(DAGS / "clm_train_closp.py")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stdout.split() == ["('s1',)", "3", "8", "1", "/r"]
