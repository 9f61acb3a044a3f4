"""`clm annotate` on user-supplied footprints: same labels as the build for the same cell."""

from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from typer.testing import CliRunner

from pipeline.captions.footprints import footprint_cell, read_footprints
from pipeline.cli import app
from pipeline.errors import SourceError


def test_annotate_reproduces_the_build_labels(tiny_archive, tmp_path, run_config):
    config = run_config(tmp_path / "run.yaml", tiny_archive, tmp_path / "corpus")
    assert CliRunner().invoke(app, ["build", "--config", str(config)]).exit_code == 0
    meta = pd.read_parquet(tmp_path / "corpus" / "metadata.parquet").head(6)
    records = {
        r["key"]: r
        for r in map(json.loads, (tmp_path / "corpus" / "records.jsonl").read_text().splitlines())
    }
    rows = []
    for row in meta.itertuples():
        epsg, col, r = (int(v) for v in row.cell.split("_"))
        square = shapely.box(col * 1200, r * 1200, (col + 1) * 1200, (r + 1) * 1200)
        rows.append(
            {
                "key": row.key,
                "datetime": row.datetime,
                "sensor": row.sensor,
                "epsg": epsg,
                "geometry": square,
            }
        )
    chips_path = tmp_path / "chips.gpkg"
    for epsg, group in pd.DataFrame(rows).groupby("epsg"):
        gpd.GeoDataFrame(group.drop(columns="epsg"), crs=epsg).to_file(
            chips_path, layer=f"utm{epsg}"
        )
        break  # one layer (one CRS) is enough for the comparison
    out = tmp_path / "records.jsonl"
    result = CliRunner().invoke(
        app, ["annotate", "--chips", str(chips_path), "--config", str(config), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    for record in map(json.loads, out.read_text().splitlines()):
        built = records[record["key"]]
        assert record["labels"] == built["labels"]
        assert record["land_use"] == built["land_use"]
        assert record["crisis"] == built["crisis"]


def test_footprint_errors_are_clear(tmp_path):
    with pytest.raises(SourceError, match="squares"):
        footprint_cell(shapely.box(0, 0, 1200, 600), "EPSG:32632", "f0")
    bowtie = shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    with pytest.raises(SourceError, match="invalid geometry"):
        footprint_cell(bowtie, "EPSG:32632", "f1")
    path = tmp_path / "nocrs.geojson"
    gpd.GeoDataFrame(
        {"datetime": ["2022-01-01"], "sensor": ["s2"]}, geometry=[shapely.box(0, 0, 1, 1)]
    ).to_file(path)
    with pytest.raises(SourceError):
        read_footprints(tmp_path / "missing.geojson")
    missing_sensor = tmp_path / "nosensor.geojson"
    gpd.GeoDataFrame(
        {"datetime": ["2022-01-01"]}, geometry=[shapely.box(11.0, 45.0, 11.01, 45.01)], crs=4326
    ).to_file(missing_sensor)
    with pytest.raises(SourceError, match="sensor"):
        read_footprints(missing_sensor)


def test_geographic_footprints_are_projected_to_utm():
    square = (
        gpd.GeoSeries([shapely.box(727200, 5029200, 728400, 5030400)], crs=32632)
        .to_crs(4326)
        .iloc[0]
    )
    cell = footprint_cell(square, "EPSG:4326", "f")
    assert cell.epsg == 32632
    assert cell.size_m == 1200 and abs(cell.bounds[0] - 727200) < 0.01
