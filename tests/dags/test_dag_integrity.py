"""DagBag integrity: the DAG files parse fast, offline and lightly, carry the operational
settings (owner, retries, timeouts, pools, docs) and wire the stages and the Assets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
FILES = ["clm_build_corpus.py", "clm_archive_refresh.py", "clm_train_closp.py"]
GRAPHS = {
    "clm_build_corpus": {
        "check_config": set(),
        "search": {"check_config"},
        "chips": {"check_config", "search"},
        "captions": {"check_config", "chips"},
        "corpus": {"check_config", "chips", "captions"},
        "summary": {"corpus"},
    },
    "clm_archive_refresh": {
        "check_config": set(),
        "plan": {"check_config"},
        "chips": {"check_config", "plan"},
        "captions": {"check_config", "chips"},
        "corpus": {"check_config", "chips", "captions"},
        "datasheet": {"corpus"},
    },
    "clm_train_closp": {
        "select_corpus": set(),
        "prepare": {"select_corpus"},
        "train": {"prepare"},
        "embed": {"prepare", "train"},
        "evaluate": {"prepare", "embed"},
        "publish_model": {"prepare", "evaluate"},
    },
}
# Parse each file in a fresh interpreter: airflow.sdk imported first (its one-off cost is not
# the DAG's), the network refused, the metadata DB unreachable; then time process_file.
PARSE = """
import json, socket, sys, time
def refuse(*a, **k):
    raise OSError("network access while parsing a DAG file")
socket.socket.connect = refuse
import airflow.sdk
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder="/nonexistent", collect_dags=False)
t0 = time.perf_counter()
dags = bag.process_file(sys.argv[1])
seconds = time.perf_counter() - t0
heavy = ("rasterio", "h5py", "torch", "geopandas", "pandas", "faiss", "mlflow",
         "pipeline.build", "pipeline.model", "pipeline.sources.retry")
print(json.dumps({"seconds": seconds, "dags": [d.dag_id for d in dags],
                  "errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "heavy": [m for m in heavy if m in sys.modules]}))
"""


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    import os

    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow")))
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


@pytest.mark.parametrize("dag_file", FILES)
def test_dag_file_parses_in_under_a_second_offline_and_lightly(dag_file, tmp_path):
    from airflow_procs import airflow_env

    env = airflow_env(tmp_path / "home", db_url=f"sqlite:///{tmp_path}/missing/dir/airflow.db")
    out = subprocess.run(
        [sys.executable, "-c", PARSE, str(DAGS / dag_file)],
        env=env, capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == {} and len(result["dags"]) == 1
    assert result["heavy"] == []
    assert result["seconds"] < 1.0, result


def test_no_import_errors_and_every_dag_is_documented(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == set(GRAPHS)
    for dag in dagbag.dags.values():
        assert "crisislandmark" in dag.tags and dag.owner == "crisislandmark"
        assert dag.description and len(dag.doc_md) > 200 and dag.max_active_runs == 1
        assert not dag.catchup
        for task in dag.tasks:
            assert task.doc_md, (dag.dag_id, task.task_id)
            assert task.retries == 3 and task.retry_exponential_backoff == 2.0
            assert task.execution_timeout is not None and task.retry_policy is not None
            assert task.on_failure_callback


@pytest.mark.parametrize("dag_id", sorted(GRAPHS))
def test_task_graph(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert {t.task_id: t.upstream_task_ids for t in dag.tasks} == GRAPHS[dag_id]


def test_corpus_dags_publish_through_the_corpus_alias_and_train_is_scheduled_on_it(dagbag):
    from airflow.sdk import AssetAlias

    corpus_alias, model_alias = AssetAlias("clm-corpus"), AssetAlias("clm-model")
    for dag_id in ("clm_build_corpus", "clm_archive_refresh"):
        dag = dagbag.dags[dag_id]
        producers = [t.task_id for t in dag.tasks if corpus_alias in t.outlets]
        assert producers == ["corpus"], dag_id
    train = dagbag.dags["clm_train_closp"]
    assert train.timetable.asset_condition == corpus_alias
    assert [t.task_id for t in train.tasks if model_alias in t.outlets] == ["publish_model"]


def test_schedules_pools_and_params(dagbag):
    refresh = dagbag.dags["clm_archive_refresh"]
    assert refresh.schedule == "@daily" and refresh.timetable.expression == "0 0 * * *"
    assert dagbag.dags["clm_build_corpus"].timetable.__class__.__name__ == "NullTimetable"
    for dag_id, provider_tasks in (
        ("clm_build_corpus", {"search", "chips"}),
        ("clm_archive_refresh", {"plan", "chips"}),
    ):
        dag = dagbag.dags[dag_id]
        assert {t.task_id for t in dag.tasks if t.pool == "clm_sources"} == provider_tasks
        assert set(dag.params.keys()) == {"config", "archive", "out"}
        assert dag.params.get_param("config").schema["pattern"]
    train = dagbag.dags["clm_train_closp"]
    assert train.get_task("train").pool == "clm_training"
    assert {"corpus", "run_dir", "model_config", "sensors", "epochs", "batch_size", "seed"} == set(
        train.params.keys()
    )


def test_params_are_validated_when_a_run_is_triggered(dagbag):
    """The scheduler's copy of the DAG checks a trigger's conf against the Param schemas."""
    from airflow.sdk.exceptions import ParamValidationError
    from airflow.serialization.serialized_objects import DagSerialization

    def scheduler_dag(dag_id):
        return DagSerialization.from_dict(DagSerialization.to_dict(dagbag.dags[dag_id]))

    build = scheduler_dag("clm_build_corpus")
    build.params.deep_merge({}).validate()  # the defaults are valid
    for bad in ({"config": ""}, {"config": "configs/demo.txt"}, {"config": 3}):
        with pytest.raises(ParamValidationError, match="param config"):
            build.params.deep_merge(bad).validate()
    with pytest.raises(ParamValidationError, match="param sensors"):
        scheduler_dag("clm_train_closp").params.deep_merge({"sensors": "s3"}).validate()


def test_dags_serialize_for_the_scheduler(dagbag):
    """What the dag processor stores: the retry policy, outlets and schedule survive."""
    from airflow.serialization.serialized_objects import DagSerialization

    for dag in dagbag.dags.values():
        data = DagSerialization.to_dict(dag)
        restored = DagSerialization.from_dict(data)
        assert {t.task_id for t in restored.tasks} == set(dag.task_ids)
        assert all(t.has_retry_policy for t in restored.tasks)


def test_gpu_queue_comes_from_the_environment(tmp_path):
    from airflow_procs import airflow_env

    script = (
        "import sys; from airflow.dag_processing.dagbag import DagBag; "
        "b = DagBag(dag_folder=sys.argv[1]); d = b.dags['clm_train_closp']; "
        "print(d.get_task('train').queue, d.get_task('embed').queue, d.get_task('evaluate').queue)"
    )
    for gpu, expected in (("gpu", ["gpu", "gpu", "default"]), ("", ["default"] * 3)):
        env = airflow_env(tmp_path / "home", CLM_GPU_QUEUE=gpu)
        out = subprocess.run(
            [sys.executable, "-c", script, str(DAGS / "clm_train_closp.py")],
            env=env, capture_output=True, text=True, check=True, timeout=300,
        )  # fmt: skip
        assert out.stdout.split()[-3:] == expected
