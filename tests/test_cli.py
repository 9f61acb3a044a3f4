"""The `clm` command line: same stages as the DAG, clear errors with exit code 2."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()


def test_build_and_inspect_through_the_cli(tiny_archive, tmp_path, run_config):
    config = run_config(tmp_path / "run.yaml", tiny_archive, tmp_path / "corpus")
    result = runner.invoke(app, ["build", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "Chips:" in result.output and "S1" in result.output
    inspected = runner.invoke(app, ["inspect", str(tmp_path / "corpus"), "--json"])
    summary = json.loads(inspected.output)
    assert summary["chips"]["s1"] > 0 and summary["chips"]["s2"] > 0


def test_bad_config_exits_2_with_the_reason(tiny_archive, tmp_path, run_config):
    config = run_config(
        tmp_path / "run.yaml",
        tiny_archive,
        tmp_path / "corpus",
        search={"collections": ["sentinel-2-l2a"], "datetime": "2023-01-01/2021-01-01"},
    )
    result = runner.invoke(app, ["build", "--config", str(config)])
    assert result.exit_code == 2
    assert "reversed" in result.output
    assert not (tmp_path / "corpus").exists()


def test_no_matching_scenes_is_a_clear_error(tiny_archive, tmp_path, run_config):
    config = run_config(
        tmp_path / "run.yaml",
        tiny_archive,
        tmp_path / "corpus",
        search={"collections": ["sentinel-2-l2a"], "datetime": "2015-01-01/2015-12-31"},
    )
    result = runner.invoke(app, ["build", "--config", str(config)])
    assert result.exit_code == 2 and "no scenes match" in result.output


def test_inspect_of_a_non_corpus(tmp_path):
    result = runner.invoke(app, ["inspect", str(tmp_path)])
    assert result.exit_code == 2 and "not a complete corpus" in result.output


def test_a_wrong_unit_declaration_exits_2_naming_the_asset(tiny_archive, tmp_path, run_config):
    """The demo S1 is linear power; declaring it dB in the run config is caught by the guard."""
    config = run_config(
        tmp_path / "run.yaml",
        tiny_archive,
        tmp_path / "corpus",
        source={"kind": "geoparquet", "asset_base": "serve", "bands": {"s1": {"unit": "dB"}}},
        search={"collections": ["sentinel-1-grd"], "datetime": "2020-01-01/2023-12-31"},
    )
    result = runner.invoke(app, ["build", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "is declared db but no valid pixel is below 0 dB" in result.output
    assert "source.bands.VV.unit: linear_power" in result.output
