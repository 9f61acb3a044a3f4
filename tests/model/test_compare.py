"""``clm compare``: runs grouped by model, mean and spread over seeds, table and chart."""

from __future__ import annotations

import json
import statistics

import pytest
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import ConfigError
from pipeline.model.compare import compare_runs, format_comparison, format_markdown
from pipeline.model.compare_plot import write_comparison_png
from pipeline.model.evaluate import evaluate_run


def fake_run(folder, name, ndcg, near=None):
    """A run folder with what ``compare`` reads: the two configs and a retrieval report."""
    folder.mkdir(parents=True)
    (folder / "model-config.json").write_text(json.dumps({"name": name}))
    (folder / "train-config.json").write_text(json.dumps({"options": {"sensors": ["s2", "s1"]}}))
    location = {"queries": 3, "closp": {"ndcg@10": ndcg - 0.1}, "random": {"ndcg@10": 0.05}}
    location["closp+radius"] = {"ndcg@10": ndcg + 0.05}
    if near is not None:
        location["closp+near"] = {"ndcg@10": near}
    general = {"queries": 9, "closp": {"ndcg@10": ndcg}, "random": {"ndcg@10": 0.2}}
    table = {"all": general, "location": location}
    report = {"sets": {"s1": table, "s2": table, "all": table}}
    (folder / "metrics.json").write_text(json.dumps({"retrieval": report}))
    return folder


def test_mean_and_spread_over_seeds_per_model(tmp_path):
    closp = [
        fake_run(tmp_path / f"c{i}", "closp-tiny-cnn", v) for i, v in enumerate([0.7, 0.72, 0.74])
    ]
    geo = [fake_run(tmp_path / f"g{i}", "geoclosp-tiny-cnn", v, v + 0.1) for i, v in enumerate([0.6, 0.7, 0.65])]  # fmt: skip
    comparison = compare_runs([*closp, *geo])
    assert {k: len(v) for k, v in comparison["models"].items()} == {
        "closp-tiny-cnn": 3,
        "geoclosp-tiny-cnn": 3,
    }
    cells = comparison["sets"]["s1"]["all"]
    assert cells["closp-tiny-cnn closp"]["mean"] == pytest.approx(0.72)
    assert cells["closp-tiny-cnn closp"]["std"] == pytest.approx(
        statistics.stdev([0.7, 0.72, 0.74]), abs=1e-4
    )
    assert cells["geoclosp-tiny-cnn closp"]["values"] == [0.6, 0.7, 0.65]
    assert "geoclosp-tiny-cnn closp+near" not in cells  # a location method: location groups only
    location = comparison["sets"]["s1"]["location"]
    assert location["geoclosp-tiny-cnn closp+near"]["mean"] == pytest.approx(0.75)
    assert "closp-tiny-cnn closp+near" not in location  # CLOSP has no location encoder
    assert location["closp-tiny-cnn closp+radius"]["mean"] == pytest.approx(0.77)
    text = format_comparison(comparison)
    assert "0.720 ± 0.020" in text and "closp-tiny-cnn: 3, geoclosp-tiny-cnn: 3" in text
    assert format_markdown(comparison).splitlines()[0].startswith("| index | queries |")
    png = write_comparison_png(comparison, tmp_path / "chart.png")
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width == 1000 and image.height > 300


def test_a_folder_without_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"model-config\.json"):
        compare_runs([tmp_path])
    result = CliRunner().invoke(app, ["compare", str(tmp_path)])
    assert result.exit_code == 2 and "model-config.json" in result.output


def test_compare_cli_on_evaluated_closp_and_geoclosp_runs(tiny_run, tiny_geo_run, tmp_path):
    evaluate_run(tiny_run, random_seeds=1, log=False)
    report = evaluate_run(tiny_geo_run, random_seeds=1, log=False)
    location = report["sets"]["all"]["location"]
    assert {"closp", "closp+near", "closp+radius", "oracle"} <= set(location)
    assert location["oracle"]["ndcg@10"] == pytest.approx(1.0)
    png = tmp_path / "compare.png"
    result = CliRunner().invoke(
        app,
        ["compare", str(tiny_run), str(tiny_geo_run), "--png", str(png), "--metric", "ndcg@100"],
    )
    assert result.exit_code == 0, result.output
    assert "geoclosp-tiny-cnn closp+near" in result.output and "location" in result.output
    assert png.stat().st_size > 1000
