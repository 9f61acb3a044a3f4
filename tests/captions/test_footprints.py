"""`clm annotate` on user-supplied footprints: same labels as the build for the same cell."""

from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from typer.testing import CliRunner

from pipeline.captions.footprints import footprint_cell, footprint_cells, read_footprints, sensor_of
from pipeline.chips.grid import ChipGeometry
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


def _lonlat(cells, densify: float | None = None):
    squares = [shapely.box(*c.bounds) for c in cells]
    if densify:
        squares = [shapely.segmentize(s, densify) for s in squares]
    by_zone = {}
    for cell, square in zip(cells, squares, strict=True):
        by_zone.setdefault(cell.epsg, []).append(square)
    out = []
    for epsg, group in by_zone.items():
        out += list(gpd.GeoSeries(group, crs=epsg).to_crs(4326).values)
    return out


# Veneto straddles the 12 deg E boundary of UTM zones 32 and 33: zone-32 cells east of it
# (cut from a zone-32 tile) and zone-33 cells west of it (from a zone-33 tile).
BOUNDARY_CELLS = [
    ChipGeometry(32632, col, 4210)
    for col in (600, 610, 612, 613, 615)  # 11.8-12.3 deg E
] + [ChipGeometry(32633, col, 4210) for col in (210, 213, 215)]  # 11.9-12.2 deg E


@pytest.mark.parametrize("densify", [None, 100.0])
def test_lonlat_outlines_snap_to_their_cell_on_both_sides_of_a_zone_boundary(densify):
    lonlat = _lonlat(BOUNDARY_CELLS, densify)
    lons = [g.centroid.x for g in lonlat]
    assert min(lons) < 12.0 < max(lons)
    assert footprint_cells(lonlat, "EPSG:4326", "f") == BOUNDARY_CELLS
    forced = footprint_cells(lonlat[:5], "EPSG:4326", "f", epsg=32632)
    assert forced == BOUNDARY_CELLS[:5]
    with pytest.raises(SourceError, match=r"feature 0: not the lon/lat outline.*EPSG:32633"):
        footprint_cells(lonlat[:1], "EPSG:4326", "f", epsg=32633)


def test_lonlat_squares_that_are_not_grid_cells_are_refused():
    cell = BOUNDARY_CELLS[0]
    minx, miny, _, _ = cell.bounds
    shifted = ChipGeometry(32632, 0, 0, origin_x=minx + 37.0, origin_y=miny)
    with pytest.raises(SourceError, match=r"feature 0: not the lon/lat outline .* \(off by 37"):
        footprint_cells(_lonlat([shifted]), "EPSG:4326", "chips.geojson")
    double = shapely.box(minx, miny, minx + 2400, miny + 2400)
    lonlat = gpd.GeoSeries([double], crs=32632).to_crs(4326).values
    with pytest.raises(SourceError, match="grid cell"):
        footprint_cells(lonlat, "EPSG:4326", "chips.geojson")


def test_projected_grid_squares_keep_the_build_cell_ids():
    cells = footprint_cells([shapely.box(*c.bounds) for c in BOUNDARY_CELLS[:5]], 32632, "f")
    assert [c.cell_id for c in cells] == [c.cell_id for c in BOUNDARY_CELLS[:5]]
    patch = footprint_cell(shapely.box(600000, 5000840, 601200, 5002040), 32632, "f")
    assert (patch.origin_x, patch.origin_y, patch.size_m) == (600000, 5000840, 1200)


@pytest.mark.parametrize(
    ("spelling", "sensor"),
    [("s1", "s1"), ("S2", "s2"), ("sentinel-1", "s1"), ("Sentinel-1A", "s1"),
     ("sentinel_2", "s2"), ("S2B", "s2"), ("Sentinel 2C", "s2"), ("landsat-8", None)],
)  # fmt: skip
def test_sensor_spellings(spelling, sensor):
    assert sensor_of(spelling) == sensor


def test_annotate_gives_identical_records_for_lonlat_and_utm_footprints(
    tiny_archive, tmp_path, run_config
):
    config = run_config(tmp_path / "run.yaml", tiny_archive, tmp_path / "corpus")
    assert CliRunner().invoke(app, ["build", "--config", str(config)]).exit_code == 0
    meta = pd.read_parquet(tmp_path / "corpus" / "metadata.parquet")
    cells = [ChipGeometry(*(int(v) for v in c.split("_"))) for c in meta.cell]
    frame = pd.DataFrame(
        {"key": meta.key, "datetime": meta.datetime, "epsg": [c.epsg for c in cells]}
    )
    frame["sensor"] = ["Sentinel-1A" if s == "s1" else "sentinel-2" for s in meta.sensor]
    epsg = frame.epsg.iloc[0]  # a projected file holds one CRS
    rows = frame[frame.epsg == epsg].drop(columns="epsg")
    zone_cells = [c for c in cells if c.epsg == epsg]
    assert len(zone_cells) == len(rows) > 10
    utm, lonlat = tmp_path / "utm.gpkg", tmp_path / "lonlat.geojson"
    squares = [shapely.box(*c.bounds) for c in zone_cells]
    gpd.GeoDataFrame(rows, geometry=squares, crs=int(epsg)).to_file(utm)
    gpd.GeoDataFrame(rows, geometry=_lonlat(zone_cells), crs=4326).to_file(lonlat)
    records = {}
    for path in (utm, lonlat):
        out = tmp_path / f"{path.stem}.jsonl"
        result = CliRunner().invoke(
            app, ["annotate", "--chips", str(path), "--config", str(config), "--out", str(out)]
        )
        assert result.exit_code == 0, result.output
        records[path.stem] = out.read_text()
    assert records["utm"] == records["lonlat"]
    built = {
        r["key"]: r
        for r in map(json.loads, (tmp_path / "corpus" / "records.jsonl").read_text().splitlines())
    }
    for record in map(json.loads, records["lonlat"].splitlines()):
        assert record["provenance"]["cell"] == built[record["key"]]["provenance"]["cell"]
        assert record["labels"] == built[record["key"]]["labels"]
        assert record["land_cover"] == built[record["key"]]["land_cover"]
