"""The datasheet renders: self-contained HTML with distributions, maps, samples, provenance."""

from __future__ import annotations

import json
import re

import geopandas as gpd
import numpy as np
import pandas as pd
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.corpus.report import event_outlines, pick_samples, write_report
from pipeline.corpus.report_maps import countries, nice_length_km
from pipeline.corpus.report_stats import (
    caption_word_bins,
    cooccurrence,
    fraction_bins,
    month_counts,
    season_counts,
)
from pipeline.labels.taxonomy import CRISIS_LABELS, LAND_COVER_LABELS


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
    # 7 bar charts, the co-occurrence matrix, the overview map and one map per region
    assert html.count("<svg") == 9 + meta_regions(tiny_corpus)
    assert not re.search(r"(src|href)=['\"](https?:|file:|/)", html), "no external resources"


def test_samples_cover_crisis_labels_first(tiny_corpus):
    meta = pd.read_parquet(tiny_corpus / "metadata.parquet")
    for sensor in ("s1", "s2"):
        keys = pick_samples(meta, sensor)
        assert len(keys) == len(set(keys)) == 6
        labels = meta.set_index("key").loc[keys[0], "labels"]
        assert {"flooded area", "burned area"} & set(labels)


def test_cooccurrence_counts_pairs_of_labels_on_each_chip(tiny_corpus):
    meta = pd.read_parquet(tiny_corpus / "metadata.parquet")
    labels = [*LAND_COVER_LABELS, *CRISIS_LABELS.values()]
    matrix = cooccurrence(meta, labels)
    assert (matrix == matrix.T).all()
    per_label = [sum(label in set(ls) for ls in meta["labels"]) for label in labels]
    assert list(np.diag(matrix)) == per_label
    known = [len(set(ls) & set(labels)) for ls in meta["labels"]]
    assert (matrix.sum() - np.trace(matrix)) // 2 == sum(k * (k - 1) // 2 for k in known)


def test_distributions_account_for_every_chip(tiny_corpus):
    meta = gpd.read_parquet(tiny_corpus / "metadata.parquet")
    per_sensor = meta["sensor"].value_counts()
    months, by_month = month_counts(meta)
    assert months == sorted(months) and len(months) == len(set(months))
    first = pd.Timestamp(min(meta["datetime"])).strftime("%Y-%m")
    assert months[0] == first
    for counts in (by_month, season_counts(meta), fraction_bins(meta, "cloud_fraction")[1],
                   fraction_bins(meta, "nodata_fraction")[1], caption_word_bins(meta)[1]):  # fmt: skip
        assert {name: sum(v) for name, v in counts.items()} == {
            "S1": per_sensor["s1"],
            "S2": per_sensor["s2"],
        }
    names, cloud = fraction_bins(meta, "cloud_fraction")
    assert cloud["S1"][0] == per_sensor["s1"]  # S1 chips have no cloud
    assert cloud["S2"][0] == int(((meta["sensor"] == "s2") & (meta["cloud_fraction"] == 0)).sum())
    assert names[0] == "0" and names[-1] == "10-100 %"


def test_maps_have_a_basemap_crisis_outlines_and_a_scale_bar(tiny_corpus, tmp_path):
    html = write_report(tiny_corpus, tmp_path / "d.html").read_text()
    assert "Italy" in {c.name for c in countries()}
    assert html.count('<g id="basemap"><path') >= 2  # overview and at least one region
    assert re.search(r'<g id="crisis-events"><path d="M[^"]+"[^>]*><title>EMSR9001', html)
    assert html.count('<g id="scale-bar">') == meta_regions(tiny_corpus)
    for heading in ("Label co-occurrence", "Acquisition", "Quality", "Caption length"):
        assert f">{heading}<" in html
    manifest = json.loads((tiny_corpus / "manifest.json").read_text())
    assert {o.name.split("_")[0] for o in event_outlines(manifest)} >= {"EMSR9001"}
    broken = {**manifest, "config": {**manifest["config"], "labels": {"ems": [{"x": 1}]}}}
    assert event_outlines(broken) == []


def meta_regions(corpus):
    return pd.read_parquet(corpus / "metadata.parquet")["country"].fillna("unknown").nunique()


def test_scale_bar_lengths_are_round():
    assert [nice_length_km(s) for s in (12.0, 4.5, 90.0, 0.9)] == [2, 1, 20, 0.2]
