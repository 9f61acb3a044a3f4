"""Slow: the DAGs under a real CeleryExecutor cluster (PostgreSQL + Redis on this machine).

A scheduler, dag-processor, api-server and two Celery workers run as subprocesses
(``airflow_procs``); runs are triggered through the REST API and scheduled by the real
scheduler (not ``dags test``). The corpus the workers build must be byte-identical to a
plain ``clm build`` of the same run config.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from airflow_procs import ClusterSettings, airflow_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
BIN = Path(sys.executable).parent
CLM = str(BIN / "clm")
COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two single-slot Celery workers and the rest of Airflow, started once per module."""
    with airflow_cluster(ClusterSettings(home=tmp_path_factory.mktemp("airflow"))) as running:
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
    subprocess.run(
        [CLM, "--quiet", "build", "--config", str(config), "--archive", str(tiny_archive),
         "--out", str(expected)],
        check=True, capture_output=True,
    )  # fmt: skip

    cluster.wait_for_dag("clm_build_corpus")
    cluster.unpause("clm_build_corpus")
    conf = {"config": str(config), "archive": str(tiny_archive), "out": str(tmp_path / "dag")}
    run_id = cluster.trigger("clm_build_corpus", conf)
    tis = _run_to_success(cluster, "clm_build_corpus", run_id)

    _assert_ran_on_celery_workers(cluster, "clm_build_corpus", tis)
    _assert_same_corpus(tmp_path / "dag", expected)


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
