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
