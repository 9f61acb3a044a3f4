"""A real Airflow 3 CeleryExecutor cluster as subprocesses, for the slow DAG tests.

One PostgreSQL database of its own (metadata DB and Celery result backend, dropped on
``stop``), Redis as the Celery broker on one queue of its own, and the real components:
``api-server`` (REST API + the task execution API the workers call), ``scheduler``,
``dag-processor`` and N ``celery worker`` processes, each in its own process group so
teardown ends them and every child they forked.

Workers are named ``celery@clm-worker-N`` (what the compose healthcheck pings) and record
``clm-worker-N`` as the task instance hostname (``worker_hostname``, wired through
``[core] hostname_callable``), so a test reads from Airflow's own records which worker ran
which task. Stdlib only at import time: every Airflow process imports this module.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")
PG_URL = os.environ.get("CLM_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("CLM_TEST_REDIS", "redis://127.0.0.1:6379/5")
WORKER_NAME_VAR = "CLM_TEST_WORKER_NAME"
USER = "clm-test"


def worker_hostname() -> str:
    """``[core] hostname_callable``: a worker's own name, the machine's name elsewhere."""
    return os.environ.get(WORKER_NAME_VAR) or socket.getfqdn()


LOCAL_SETTINGS = "from pipeline.orchestration.pools import task_instance_mutation_hook  # noqa\n"


@dataclass(frozen=True)
class ClusterSettings:
    """Where the cluster lives and what it talks to (unique names per cluster)."""

    home: Path
    dags_folder: Path = ROOT / "dags"
    workers: int = 2
    database: str = field(default_factory=lambda: f"clm_celery_{uuid.uuid4().hex[:10]}")
    queue: str = field(default_factory=lambda: f"clm-test-{uuid.uuid4().hex[:10]}")
    port: int = field(default_factory=lambda: _free_port())
    health_port: int = field(default_factory=lambda: _free_port())  # the scheduler's /health
    pools: tuple[tuple[str, int], ...] = (("clm_sources", 2), ("clm_training", 1))
    extra_env: tuple[tuple[str, str], ...] = ()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def airflow_env(settings: ClusterSettings, password: str) -> dict[str, str]:
    """The environment every component shares (secrets generated per cluster, never fixed)."""
    from cryptography.fernet import Fernet

    db = f"{PG_URL}/{settings.database}"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(settings.home),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)]),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "celery_cluster.worker_hostname",
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{settings.api_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(settings.home / "passwords.json"),
        "AIRFLOW__API__BASE_URL": settings.api_url,
        "AIRFLOW__API__PORT": str(settings.port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db.replace(
            "postgresql://", "postgresql+psycopg2://"
        ),
        "AIRFLOW__CELERY__BROKER_URL": REDIS_URL,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{db}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
        "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": settings.queue,
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(settings.health_port),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
    }
    env.pop(WORKER_NAME_VAR, None)
    env.update(dict(settings.extra_env))
    return env


class AirflowCluster:
    """The running components plus a REST client; ``start`` then ``stop`` (always)."""

    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings
        self.password = secrets.token_urlsafe(16)
        self.env = airflow_env(settings, self.password)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._token: str | None = None

    @property
    def workers(self) -> list[str]:
        """The workers' names, as recorded in task instances (``celery@NAME`` in Celery)."""
        return [f"clm-worker-{i}" for i in range(1, self.settings.workers + 1)]

    def log_path(self, name: str) -> Path:
        return self.settings.home / "procs" / f"{name}.log"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 300) -> None:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        (self.settings.home / "procs").mkdir(exist_ok=True)
        (self.settings.home / "passwords.json").write_text(json.dumps({USER: self.password}))
        _create_database(self.settings.database)
        (self.settings.home / "config").mkdir(exist_ok=True)  # the deployment's cluster policy
        (self.settings.home / "config" / "airflow_local_settings.py").write_text(LOCAL_SETTINGS)
        self.cli("db", "migrate", timeout=timeout)
        pools = {name: {"slots": n, "description": "test pool"} for name, n in self.settings.pools}
        (self.settings.home / "pools.json").write_text(json.dumps(pools))
        self.cli("pools", "import", str(self.settings.home / "pools.json"), timeout=timeout)
        self._ports_still_free()
        self._spawn("api-server", ["api-server"])
        self._spawn("scheduler", ["scheduler"])
        self._spawn("dag-processor", ["dag-processor"])
        for name in self.workers:
            self._spawn(name, self._worker_args(name), {WORKER_NAME_VAR: name})
        self._wait_for_api(timeout)
        self._wait_for_workers(timeout)

    def _ports_still_free(self) -> None:
        """Airflow binds its ports itself, a minute after they were chosen (``db migrate``):
        take fresh ones if anything has taken them since, so the window is milliseconds."""
        if all(_port_free(p) for p in (self.settings.port, self.settings.health_port)):
            return
        self.settings = replace(self.settings, port=_free_port(), health_port=_free_port())
        self.env = airflow_env(self.settings, self.password)

    def _worker_args(self, name: str) -> list[str]:
        return [
            "celery", "worker", "--queues", self.settings.queue, "--concurrency", "1",
            "--celery-hostname", f"celery@{name}", "--skip-serve-logs",
            "--pid", str(self.settings.home / "procs" / f"{name}.pid"),
        ]  # fmt: skip

    def _spawn(self, name: str, args: list[str], extra: dict[str, str] | None = None) -> None:
        with self.log_path(name).open("ab") as log:
            self.procs[name] = subprocess.Popen(
                [AIRFLOW, *args],
                env={**self.env, **(extra or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.settings.home,
            )

    def stop(self, grace: float = 20) -> None:
        """SIGTERM every process group, SIGKILL what is left, drop the DB, clear the queue."""
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            with suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
        _drop_database(self.settings.database)
        _clear_queue(self.settings.queue)

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"airflow {name} exited with {proc.returncode}:\n{self.tail(name)}"
                )

    def _wait_for_api(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                self.api("GET", "/api/v2/version")
                return
            except (OSError, urllib.error.URLError):
                time.sleep(2)
        raise TimeoutError(f"api-server not up after {timeout}s:\n{self.tail('api-server')}")

    def _wait_for_workers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = set(self.workers)
        while pending and time.monotonic() < deadline:
            self._check_alive()
            pending = {w for w in pending if " ready." not in self.log_path(w).read_text("utf-8")}
            time.sleep(2)
        if pending:
            raise TimeoutError(f"celery workers {sorted(pending)} not ready after {timeout}s")

    # -- using it --------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [AIRFLOW, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.settings.home,
        )
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if not path.startswith("/auth") and path != "/api/v2/version":
            headers["Authorization"] = f"Bearer {self.token()}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.settings.api_url + path, data=data, method=method, headers=headers
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def token(self) -> str:
        if self._token is None:
            body = {"username": USER, "password": self.password}
            self._token = self.api("POST", "/auth/token", body)["access_token"]
        return self._token

    def wait_for_dag(self, dag_id: str, timeout: float = 300) -> None:
        """Until the dag-processor has serialized ``dag_id`` (no import error)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                self.api("GET", f"/api/v2/dags/{dag_id}")
                return
            except urllib.error.HTTPError as error:
                if error.code != 404:
                    raise
            time.sleep(3)
        errors = self.api("GET", "/api/v2/importErrors")
        raise TimeoutError(f"DAG {dag_id} not parsed after {timeout}s; import errors: {errors}")

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """A manual run through the REST API (the scheduler runs it); returns the run id."""
        run = self.api(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf}
        )
        return str(run["dag_run_id"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns")["dag_runs"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        """Poll until the run finishes; its final state ('success' or 'failed')."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            state = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in ("success", "failed"):
                return str(state)
            time.sleep(5)
        raise TimeoutError(f"{dag_id} run {run_id} still running after {timeout}s")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return list(self.api("GET", path)["task_instances"])

    def task_logs(self, dag_id: str, run_id: str) -> str:
        """Every task log file of one run (for failure messages)."""
        root = self.settings.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        parts = [f"== {p.relative_to(root)}\n{p.read_text('utf-8', 'replace')[-4000:]}"
                 for p in sorted(root.rglob("*.log"))]  # fmt: skip
        return "\n".join(parts) or f"(no task logs under {root})"

    def tail(self, name: str, chars: int = 4000) -> str:
        path = self.log_path(name)
        return path.read_text("utf-8", "replace")[-chars:] if path.exists() else "(no log)"


@contextmanager
def airflow_cluster(settings: ClusterSettings, timeout: float = 300) -> Iterator[AirflowCluster]:
    """A started cluster, stopped (processes, database, queue) however the block ends."""
    cluster = AirflowCluster(settings)
    try:
        cluster.start(timeout)
        yield cluster
    finally:
        cluster.stop()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _admin_sql(statement: str) -> None:
    import psycopg2

    conn = psycopg2.connect(f"{PG_URL}/postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def _create_database(name: str) -> None:
    _admin_sql(f'CREATE DATABASE "{name}"')


def _drop_database(name: str) -> None:
    _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _clear_queue(queue: str) -> None:
    """Delete this cluster's keys from the broker DB, and kombu's shared broadcast bindings
    once no other cluster's keys are left (the DB may serve concurrent test runs)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"*{queue}*"))
    if keys:
        client.delete(*keys)
    if set(client.scan_iter()) <= {b"_kombu.binding_deadlines"}:
        client.delete("_kombu.binding_deadlines")
