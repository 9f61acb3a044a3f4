"""Slow: the DAGs under a real CeleryExecutor cluster (PostgreSQL + Redis on this machine).

A scheduler, dag-processor, api-server and two Celery workers run as subprocesses
(``celery_cluster``, started once for the module); runs are triggered through the REST API and
scheduled by the real scheduler (not ``dags test``).

- The corpus the workers build is byte-identical to a plain ``clm build`` of the same config.
- A refresh that publishes a version triggers ``clm_train_closp`` through the corpus Asset
  alias; a refresh with nothing new triggers nothing.
- docker-compose.yml's healthchecks, run against these live components, pass (and fail for a
  component that is not there).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from celery_cluster import ClusterSettings, airflow_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
BIN = Path(sys.executable).parent
CLM = str(BIN / "clm")
COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
CUT = "2022-01-01"  # the tiny archive: a flood in Nov 2021, a fire in Jun-Jul 2022


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two single-slot Celery workers and the rest of Airflow, started once per module.
    The refresh DAG is manual-only here, so unpausing it starts no scheduled run."""
    settings = ClusterSettings(
        home=tmp_path_factory.mktemp("airflow"),
        extra_env=(("CLM_REFRESH_SCHEDULE", "none"), ("CLM_PROVIDER_POOLS", "archive,cdse")),
        pools=(("clm_sources", 2), ("clm_training", 1), ("clm_source_archive", 1)),
    )
    with airflow_cluster(settings) as running:
        yield running


def _run_to_success(cluster, dag_id: str, run_id: str, timeout: float = 900) -> list[dict]:
    """Wait for the run; fail with every task log when it does not succeed."""
    state = cluster.wait_for_run(dag_id, run_id, timeout)
    assert state == "success", f"{dag_id} {run_id}: {state}\n{cluster.task_logs(dag_id, run_id)}"
    return cluster.task_instances(dag_id, run_id)


def _assert_ran_on_celery_workers(cluster, dag_id: str, tis: list[dict]) -> None:
    tasks = {t["task_id"] for t in cluster.api("GET", f"/api/v2/dags/{dag_id}/tasks")["tasks"]}
    assert {ti["task_id"] for ti in tis} == tasks
    for ti in tis:
        assert ti["state"] == "success", ti
        assert ti["queue"] == cluster.settings.queue, ti
        assert ti["hostname"] in cluster.workers, ti


def _build_with_clm(config: Path, archive: Path, out: Path) -> None:
    subprocess.run(
        [CLM, "--quiet", "build", "--config", str(config), "--archive", str(archive),
         "--out", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip


def _assert_same_corpus(built: Path, expected: Path) -> None:
    """The lock and every output it lists, byte for byte (as the rebuild tests compare)."""
    assert (built / "corpus.lock").read_bytes() == (expected / "corpus.lock").read_bytes()
    outputs = json.loads((expected / "corpus.lock").read_text())["outputs"]
    assert any(name.startswith("shards/") for name in outputs)
    for name in outputs:
        assert (built / name).read_bytes() == (expected / name).read_bytes(), name


def test_build_corpus_on_two_celery_workers_matches_clm_build(
    cluster, tiny_archive, run_config, tmp_path
):
    expected = tmp_path / "cli-corpus"
    config = run_config(tmp_path / "run.yaml", tiny_archive, tmp_path / "unused")
    _build_with_clm(config, tiny_archive, expected)

    cluster.wait_for_dag("clm_build_corpus")
    cluster.unpause("clm_build_corpus")
    conf = {"config": str(config), "archive": str(tiny_archive), "out": str(tmp_path / "dag")}
    run_id = cluster.trigger("clm_build_corpus", conf)
    tis = _run_to_success(cluster, "clm_build_corpus", run_id)

    _assert_ran_on_celery_workers(cluster, "clm_build_corpus", tis)
    _assert_same_corpus(tmp_path / "dag", expected)
    pools = {ti["task_id"]: ti["pool"] for ti in tis}  # routed by the cluster policy
    assert pools["search"] == pools["chips"] == "clm_source_archive", pools
    assert pools["captions"] == "default_pool", pools


def _archive_before(archive: Path, cut: str) -> dict[str, bytes]:
    """Cut the archive's items and events back to ``cut``; the full files, to grow it again."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    full = {name: (archive / name).read_bytes() for name in ("items.parquet", "archive.json")}
    table = pq.read_table(archive / "items.parquet")
    when = pa.scalar(datetime.fromisoformat(cut).replace(tzinfo=UTC), table["datetime"].type)
    pq.write_table(table.filter(pc.less(table["datetime"], when)), archive / "items.parquet")
    meta = json.loads((archive / "archive.json").read_text())
    meta["events"] = [e for e in meta["events"] if e["event_date"] < cut]
    (archive / "archive.json").write_text(json.dumps(meta))
    return full


def _wait_for_runs(cluster, dag_id: str, count: int, timeout: float = 300) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(runs := cluster.runs(dag_id)) < count:
        assert time.monotonic() < deadline, f"{dag_id}: {len(runs)} runs, expected {count}"
        time.sleep(5)
    return runs


def _corpus_one_refresh_behind(archive_src: Path, root: Path, run_config) -> Path:
    """A corpus at v001 built (``clm build``) before the archive grew; the grown archive.
    Returns the run config."""
    archive = root / "archive"
    shutil.copytree(archive_src, archive)
    full = _archive_before(archive, CUT)
    views = ["clm-hdf5", "webdataset", "stac"]  # trained after every refresh, as deploy.yaml
    output = {"dir": str(root / "corpus"), "shard_size": 8, "views": views}
    config = run_config(root / "run.yaml", archive, root / "corpus", output=output)
    _build_with_clm(config, archive, root / "corpus")
    for name, data in full.items():
        (archive / name).write_bytes(data)
    return config


def _assert_trained_on_the_refreshed_version(cluster, train_run: str, refresh: str, root: Path):
    """The run consumed the refresh's corpus event and published the model Asset."""
    path = f"/api/v2/dags/clm_train_closp/dagRuns/{train_run}/upstreamAssetEvents"
    upstream = cluster.api("GET", path)["asset_events"]
    ours = [e for e in upstream if e["source_run_id"] == refresh]
    assert len(ours) == 1, upstream
    event = ours[0]
    assert event["source_dag_id"] == "clm_archive_refresh"
    assert event["timestamp"] == max(e["timestamp"] for e in upstream)
    assert event["uri"] == (root / "corpus").resolve().as_uri()
    assert event["extra"]["version"] == "v002"
    events = cluster.api("GET", "/api/v2/assets/events?source_dag_id=clm_train_closp")
    (model,) = events["asset_events"]
    run_dir = (root / "model" / "closp-tiny-cnn-v002").resolve()
    assert model["uri"] == run_dir.as_uri() and model["extra"]["corpus"] == event["extra"]["corpus"]
    assert (run_dir / "index").is_dir()


def test_a_refresh_publishing_a_version_triggers_training_through_the_corpus_asset(
    cluster, tiny_archive, run_config, tmp_path
):
    config = _corpus_one_refresh_behind(tiny_archive, tmp_path, run_config)
    for dag_id in ("clm_archive_refresh", "clm_train_closp"):
        cluster.wait_for_dag(dag_id)
        cluster.unpause(dag_id)
    assert cluster.runs("clm_train_closp") == []

    refresh = cluster.trigger("clm_archive_refresh", {"config": str(config)})
    tis = _run_to_success(cluster, "clm_archive_refresh", refresh)
    _assert_ran_on_celery_workers(cluster, "clm_archive_refresh", tis)
    assert (tmp_path / "corpus" / "versions" / "current").resolve().name == "v002"

    (train,) = _wait_for_runs(cluster, "clm_train_closp", 1)
    assert train["run_type"] == "asset_triggered"
    tis = _run_to_success(cluster, "clm_train_closp", train["dag_run_id"])
    _assert_ran_on_celery_workers(cluster, "clm_train_closp", tis)
    _assert_trained_on_the_refreshed_version(cluster, train["dag_run_id"], refresh, tmp_path)
    current = (tmp_path / "corpus" / "versions" / "current").resolve().name
    assert current == "v002"  # its WebDataset view was published with it: training added none

    again = cluster.trigger("clm_archive_refresh", {"config": str(config)})  # nothing new
    tis = _run_to_success(cluster, "clm_archive_refresh", again)
    states = {ti["task_id"]: ti["state"] for ti in tis}
    assert states["plan"] == "success" and states["corpus"] == "skipped"
    time.sleep(30)  # several scheduler loops: an asset-triggered run would be queued by now
    assert len(cluster.runs("clm_train_closp")) == 1


def _compose_healthcheck(cluster, service: str, hostname: str) -> subprocess.CompletedProcess:
    """Run ``service``'s healthcheck from docker-compose.yml against the live cluster: the
    same command, with the container's ports mapped to the cluster's and HOSTNAME set."""
    test = yaml.safe_load(COMPOSE.read_text())["services"][service]["healthcheck"]["test"]
    ports = {
        "localhost:8080": f"127.0.0.1:{cluster.settings.port}",
        "localhost:8974": f"127.0.0.1:{cluster.settings.health_port}",
    }
    args = []
    for arg in test[1:]:
        for container, local in ports.items():
            arg = arg.replace(container, local)
        args.append(arg.replace("$$", "$"))
    argv = ["sh", "-c", args[0]] if test[0] == "CMD-SHELL" else args
    env = {**cluster.env, "HOSTNAME": hostname, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("service", "hostname"),
    [("airflow-apiserver", ""), ("airflow-scheduler", ""), ("airflow-worker", "clm-worker-2"),
     ("airflow-dag-processor", socket.getfqdn())],
)  # fmt: skip
def test_compose_healthchecks_pass_against_live_components(cluster, service, hostname):
    done = _compose_healthcheck(cluster, service, hostname)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("service", ["airflow-worker", "airflow-dag-processor"])
def test_compose_healthchecks_fail_for_a_missing_component(cluster, service):
    done = _compose_healthcheck(cluster, service, "clm-absent-host")
    assert done.returncode != 0, done.stdout
