"""`clm scenes` runs only search + selection and writes what a build would use."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import load_config
from pipeline.sources.base import Scene

runner = CliRunner()


def test_scenes_writes_records_and_the_selection_report(tiny_archive, tmp_path, run_config):
    config = run_config(
        tmp_path / "run.yaml",
        tiny_archive,
        tmp_path / "corpus",
        selection={"orbit_states": ["descending"]},
    )
    out = tmp_path / "scenes.parquet"
    result = runner.invoke(app, ["scenes", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    scenes = [Scene.from_record(r) for r in pd.read_parquet(out).to_dict("records")]
    report = json.loads(out.with_suffix(".selection.json").read_text())
    assert len(scenes) == report["kept"] == 6 and report["found"] == 8
    assert all(s.orbit_state == "descending" for s in scenes)
    assert {r["reason"] for r in report["rejected"]} == {"orbit ascending not in ['descending']"}
    assert report["rules"]["orbit_states"] == ["descending"]
    assert not (tmp_path / "corpus").exists()  # nothing but the search ran


def test_all_rejected_exits_2_pointing_at_the_report(tiny_archive, tmp_path, run_config):
    config = run_config(
        tmp_path / "run.yaml",
        tiny_archive,
        tmp_path / "c",
        search={"collections": ["sentinel-1-grd"], "datetime": "2020-01-01/2023-12-31"},
        selection={"s1_instrument_modes": ["EW"]},
    )
    result = runner.invoke(app, ["scenes", "-c", str(config), "-o", str(tmp_path / "s.parquet")])
    assert result.exit_code == 2 and "selection rules reject all" in result.output


def test_api_source_configs_validate_and_are_recorded(tmp_path):
    path = tmp_path / "pc.yaml"
    path.write_text(
        "version: 1\nname: pc\n"
        "source: {kind: stac_api, profile: planetary-computer, max_concurrency: 2,\n"
        "         token_url: 'https://planetarycomputer.microsoft.com/api/sas/v1/token',\n"
        "         retry: {max_attempts: 6, backoff_s: 1}}\n"
        "search: {collections: [sentinel-2-l2a, sentinel-1-rtc], datetime: 2022-01-01/2022-02-01}\n"
        "selection: {s1_polarizations: [VV, VH], orbit_states: [ascending],\n"
        "            windows: [{name: EMSR1, date: 2022-01-15, pre_days: 10, post_days: 5}]}\n"
        "output: {dir: out}\n"
    )
    config = load_config(path)
    api = config.source.api
    assert api is not None and api.retry.max_attempts == 6 and api.max_concurrency == 2
    recipe = config.to_dict()
    assert recipe["selection"]["windows"][0]["name"] == "EMSR1"
    assert recipe["source"]["api"]["profile"] == "planetary-computer"
