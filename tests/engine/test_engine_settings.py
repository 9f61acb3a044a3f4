"""The ``engine:`` section: validated like the rest of the run config, kept out of the recipe,
``chips.workers`` still read (deprecated), ``CLM_DASK_SCHEDULER`` winning over the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pipeline.config import load_config
from pipeline.engine import provider_limits
from pipeline.engine.settings import SCHEDULER_ENV, EngineConfig
from pipeline.errors import ConfigError


def _write(tmp_path: Path, name: str = "run.yaml", **sections) -> Path:
    (tmp_path / "items.parquet").write_bytes(b"")
    raw = {
        "version": 1,
        "name": "t",
        "source": {"kind": "geoparquet", "items": "items.parquet", "asset_base": "serve"},
        "search": {"collections": ["sentinel-2-l2a"], "datetime": "2021-01-01/2021-12-31"},
        "output": {"dir": "out"},
        **sections,
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(autouse=True)
def no_scheduler_env(monkeypatch):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)


def test_default_engine_is_dask_running_one_worker_in_process(tmp_path):
    engine = load_config(_write(tmp_path)).engine
    assert engine == EngineConfig()
    assert engine.kind == "dask" and engine.n_workers == 1 and engine.dashboard is None
    assert not engine.uses_cluster  # one worker, no address: no cluster to start


def test_engine_section_is_read_into_typed_values(tmp_path):
    section = {
        "n_workers": 4,
        "threads_per_worker": 2,
        "memory_limit": "3GiB",
        "dashboard": True,
        "max_per_provider": 2,
        "provider_limits": {"example.blob.core.windows.net": 8, "127.0.0.1:9000": 1},
    }
    engine = load_config(_write(tmp_path, engine=section)).engine
    assert (engine.n_workers, engine.threads_per_worker, engine.memory_limit) == (4, 2, "3GiB")
    assert engine.dashboard == ":8787" and engine.uses_cluster
    limits = provider_limits(load_config(_write(tmp_path, engine=section)))
    assert limits.shared_by == "cluster"
    assert limits.limit("127.0.0.1:9000") == 1
    assert limits.limit("example.blob.core.windows.net") == 8
    assert limits.limit("other.example.org") == 2


def test_engine_settings_are_not_part_of_the_recipe(tmp_path):
    """Same outputs on any engine: the manifest, lock and digest do not record it."""
    serial = load_config(_write(tmp_path, "a.yaml", engine={"kind": "serial"}))
    cluster = load_config(
        _write(tmp_path, "b.yaml", engine={"n_workers": 3, "scheduler": "tcp://127.0.0.1:8786"})
    )
    old_style = load_config(_write(tmp_path, "c.yaml", chips={"workers": 2}))
    assert serial.engine != cluster.engine
    assert "engine" not in serial.to_dict() and "workers" not in serial.to_dict()["chips"]
    assert serial.to_dict() == cluster.to_dict() == old_style.to_dict()
    assert serial.digest() == cluster.digest() == old_style.digest()


def test_deprecated_chips_workers_sets_n_workers(tmp_path):
    config = load_config(_write(tmp_path, chips={"workers": 3, "on_error": "skip"}))
    assert config.engine.n_workers == 3 and config.engine.uses_cluster
    assert config.chips.on_error == "skip"
    same = load_config(_write(tmp_path, chips={"workers": 3}, engine={"n_workers": 3}))
    assert same.engine.n_workers == 3


def test_scheduler_from_the_environment_wins_over_the_config(tmp_path, monkeypatch):
    sections = {"engine": {"scheduler": "tcp://10.0.0.5:8786"}}
    path = _write(tmp_path, **sections, source=_shared_source())
    engine = load_config(path).engine
    assert engine.scheduler_address() == "tcp://10.0.0.5:8786" and engine.uses_cluster
    monkeypatch.setenv(SCHEDULER_ENV, "tcp://127.0.0.1:8786")
    assert engine.scheduler_address() == "tcp://127.0.0.1:8786"
    assert EngineConfig().uses_cluster  # the environment alone selects the cluster
    assert not EngineConfig(kind="serial").uses_cluster  # except when told to run serially


def _shared_source() -> dict[str, str]:
    return {"kind": "geoparquet", "items": "items.parquet", "asset_base": "https://cogs.example"}


@pytest.mark.parametrize("address", ["tcp://10.0.0.5:8786", "scheduler.example:8786"])
def test_remote_workers_cannot_read_an_archive_served_on_loopback(tmp_path, monkeypatch, address):
    with pytest.raises(ConfigError, match=r"asset_base: serve .* cannot reach"):
        load_config(_write(tmp_path, engine={"scheduler": address}))
    monkeypatch.setenv(SCHEDULER_ENV, address)
    with pytest.raises(ConfigError, match=re.escape(address)):
        load_config(_write(tmp_path))
    assert load_config(_write(tmp_path, source=_shared_source())).engine.uses_cluster


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:8786", "localhost:8786", "tcp://[::1]:1"])
def test_a_scheduler_on_this_machine_may_read_the_served_archive(tmp_path, address):
    assert load_config(_write(tmp_path, engine={"scheduler": address})).engine.uses_cluster


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"engine": {"n_worker": 2}}, "n_worker"),
        ({"engine": {"kind": "ray"}}, "kind"),
        ({"engine": {"n_workers": 0}}, "n_workers"),
        ({"engine": {"max_per_provider": 0}}, "max_per_provider"),
        ({"engine": {"provider_limits": {"h:1": 0}}}, "provider_limits"),
        ({"engine": {"memory_limit": "lots"}}, "memory_limit"),
        ({"engine": {"kind": "serial", "n_workers": 2}}, "kind serial"),
        ({"engine": {"n_workers": 2}, "chips": {"workers": 4}}, "disagree"),
    ],
)
def test_bad_engine_sections_fail_naming_the_key(tmp_path, sections, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, **sections))


def test_relative_asset_base_resolves_against_the_config_not_the_cwd(tmp_path, monkeypatch):
    """A worker elsewhere gets an absolute directory, whatever the build's cwd was."""
    monkeypatch.chdir("/")
    source = {"kind": "geoparquet", "items": "items.parquet", "asset_base": "assets"}
    config = load_config(_write(tmp_path, source=source))
    assert config.source.asset_base == str(tmp_path / "assets")
    url = {**source, "asset_base": "http://127.0.0.1:9000/archive"}
    assert load_config(_write(tmp_path, source=url)).source.asset_base == url["asset_base"]
