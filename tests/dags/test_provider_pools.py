"""Provider-facing tasks go to their provider's pool (the cluster policy): decided from the
run config a DAG run names, only for pools the deployment created; never an error."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from pipeline.orchestration.pools import provider_of, provider_pool, task_instance_mutation_hook
from pipeline.orchestration.settings import SOURCE_POOL


@pytest.mark.parametrize(
    ("source", "provider"),
    [
        ({"kind": "stac_api", "profile": "planetary-computer", "url": "https://x"}, "planetary-computer"),
        ({"kind": "stac_api", "url": "https://STAC.Example.org/api/v1"}, "stac.example.org"),
        ({"kind": "sentinelhub"}, "sentinelhub"),
        ({"kind": "geoparquet", "asset_base": "serve"}, "archive"),
    ],
)  # fmt: skip
def test_provider_of_a_source_section(source, provider):
    assert provider_of(source) == provider


def _config(tmp_path: Path, source: dict) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"source": source, "name": "x"}))
    return path


def test_only_pools_the_deployment_created_are_used(tmp_path):
    config = _config(tmp_path, {"kind": "stac_api", "profile": "earth-search"})
    env = {"CLM_PROVIDER_POOLS": "planetary-computer, earth-search", "CLM_HOME": str(tmp_path)}
    assert provider_pool({"config": str(config)}, env) == "clm_source_earth-search"
    assert provider_pool({"config": "run.yaml"}, env) == "clm_source_earth-search"  # CLM_HOME
    assert provider_pool({"config": str(config)}, {"CLM_PROVIDER_POOLS": "cdse"}) is None
    assert provider_pool({"config": str(config)}, {}) is None  # routing off
    assert provider_pool({"config": str(tmp_path / "missing.yaml")}, env) is None


def _ti(pool: str, params: dict) -> SimpleNamespace:
    return SimpleNamespace(pool=pool, task_id="chips", task=SimpleNamespace(params=params))


def test_the_hook_routes_source_tasks_by_run_conf_then_params(tmp_path, monkeypatch):
    pc = _config(tmp_path, {"kind": "stac_api", "profile": "planetary-computer"})
    (tmp_path / "sh").mkdir()
    sh = _config(tmp_path / "sh", {"kind": "sentinelhub"})
    monkeypatch.setenv("CLM_PROVIDER_POOLS", "planetary-computer,sentinelhub")
    ti = _ti(SOURCE_POOL, {"config": str(pc)})
    task_instance_mutation_hook(ti, SimpleNamespace(conf={}))  # scheduled run: the default
    assert ti.pool == "clm_source_planetary-computer"
    task_instance_mutation_hook(ti, SimpleNamespace(conf={"config": str(sh)}))  # re-applied
    assert ti.pool == "clm_source_sentinelhub"
    task_instance_mutation_hook(ti, SimpleNamespace(conf={"config": str(tmp_path / "nope")}))
    assert ti.pool == SOURCE_POOL
    other = _ti("clm_training", {"config": str(pc)})
    task_instance_mutation_hook(other, None)
    assert other.pool == "clm_training"  # only provider-facing tasks move


def test_a_broken_config_keeps_the_shared_pool(tmp_path, monkeypatch):
    (tmp_path / "run.yaml").write_text("source: [unclosed")
    monkeypatch.setenv("CLM_PROVIDER_POOLS", "archive")
    ti = _ti(SOURCE_POOL, {"config": str(tmp_path / "run.yaml")})
    task_instance_mutation_hook(ti, SimpleNamespace(conf=None))
    assert ti.pool == SOURCE_POOL
