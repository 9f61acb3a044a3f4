"""The datasheet renders: self-contained HTML with distributions, maps, samples, provenance."""

from __future__ import annotations

import re

import pandas as pd
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.corpus.report import pick_samples


def test_datasheet_is_self_contained_and_complete(tiny_corpus, tmp_path):
    out = tmp_path / "datasheet.html"
    result = CliRunner().invoke(app, ["report", "--corpus", str(tiny_corpus), "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    for heading in ("Composition", "Class and crisis distributions", "Chip locations",
                    "Sample chips", "Provenance", "Versions"):  # fmt: skip
        assert f">{heading}<" in html
    assert "burned area" in html and "flooded area" in html and "EMSR9001" in html
    assert "corpus.lock" in html and "watermark" in html
    images = re.findall(r"src='data:image/png;base64,", html)
    assert len(images) == 12  # 6 samples per sensor
    assert html.count("<svg") >= 5  # two bar charts, the overview map, one map per region
    assert not re.search(r"(src|href)=['\"](https?:|file:|/)", html), "no external resources"


def test_samples_cover_crisis_labels_first(tiny_corpus):
    meta = pd.read_parquet(tiny_corpus / "metadata.parquet")
    for sensor in ("s1", "s2"):
        keys = pick_samples(meta, sensor)
        assert len(keys) == len(set(keys)) == 6
        labels = meta.set_index("key").loc[keys[0], "labels"]
        assert {"flooded area", "burned area"} & set(labels)
