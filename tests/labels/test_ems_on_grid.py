"""Real Copernicus EMS flood delineations (EMSR332, Veneto 2018) placed on the chip grid."""

from __future__ import annotations

import math
from datetime import timedelta

import geopandas as gpd
import pytest
import shapely

from pipeline.chips.grid import CHIP_SIZE_M, ChipGeometry
from pipeline.labels.annotate import Annotator
from pipeline.labels.crisis_ems import read_ems_observed_event

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def verona(real_data):
    root = real_data / "ems" / "EMSR332"
    shp = root / "observed_event" / "EMSR332_01VERONA_DEL_v1_observed_event_a.shp"
    table = root / "01VERONA_DEL_v1_product" / "EMSR332_01VERONA_DEL_v1_source.dbf"
    return shp, read_ems_observed_event(shp, source_table=table)


def _cells_over(shp, epsg=32632, top=12):
    polygons = gpd.read_file(shp).to_crs(epsg)
    union = shapely.union_all(polygons.geometry.values)
    minx, miny, maxx, maxy = union.bounds
    cells = [
        ChipGeometry(epsg, col, row)
        for col in range(math.floor(minx / CHIP_SIZE_M), math.ceil(maxx / CHIP_SIZE_M))
        for row in range(math.floor(miny / CHIP_SIZE_M), math.ceil(maxy / CHIP_SIZE_M))
    ]
    overlap = {c: union.intersection(shapely.box(*c.bounds)).area / CHIP_SIZE_M**2 for c in cells}
    ranked = sorted(overlap.items(), key=lambda kv: -kv[1])
    return ranked[:top] + [kv for kv in ranked if 0 < kv[1] < 0.02][:3]


def test_chips_on_real_flood_polygons_get_the_flood_label(verona):
    shp, event = verona
    assert event.hazard == "flood" and event.event_id == "EMSR332_01VERONA"
    annotator = Annotator(
        corine=[],
        dynamic_world=[],
        events=[event],
        window_days={"flood": 12},
        min_affected_fraction=0.02,
    )
    after = event.event_date + timedelta(days=2)
    for cell, expected in _cells_over(shp):
        annotation = annotator.annotate(cell, after)
        if expected >= 0.02:
            (crisis,) = annotation["crisis"]
            assert crisis["affected_fraction"] == pytest.approx(expected, abs=1e-3)
            assert crisis["phase"] == "post" and crisis["days_since_event"] == 2
            assert "flooded area" in annotation["labels"]
            assert crisis["event_subtype"] == "riverine flood"
        else:
            assert annotation["crisis"] == [] and "flooded area" not in annotation["labels"]


def test_same_place_before_the_event_is_recorded_as_pre_without_label(verona):
    shp, event = verona
    annotator = Annotator(corine=[], dynamic_world=[], events=[event], window_days={"flood": 12})
    cell, _ = _cells_over(shp, top=1)[0]
    annotation = annotator.annotate(cell, event.event_date - timedelta(days=5))
    (crisis,) = annotation["crisis"]
    assert crisis["phase"] == "pre" and crisis["days_since_event"] == -5
    assert "flooded area" not in annotation["labels"]
    late = annotator.annotate(cell, event.event_date + timedelta(days=40))
    assert late["crisis"] == []
