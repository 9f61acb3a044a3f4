"""GDACS alerts and user event files as crisis events."""

from __future__ import annotations

from datetime import UTC, datetime

import geopandas as gpd
import pytest
import shapely

from pipeline.chips.grid import ChipGeometry
from pipeline.errors import SourceError
from pipeline.labels.crisis_ems import affected_fraction
from pipeline.labels.crisis_gdacs import disc, read_gdacs_feed
from pipeline.labels.crisis_user import read_user_events


@pytest.mark.realdata
def test_real_gdacs_capture_parses_into_events(real_data):
    feed = read_gdacs_feed(real_data / "gdacs" / "gdacs-1.xml")
    assert feed.skipped == {"TC": 1, "DR": 2}
    (quake,) = feed.events
    assert quake.hazard == "earthquake" and quake.source == "gdacs"
    assert quake.event_date == datetime(2019, 12, 28, 15, 36, 35, tzinfo=UTC)
    assert quake.properties["alert_level"] == "Green"
    assert "Magnitude 5.5M" in quake.properties["severity"]
    centre = quake.geometry.centroid
    assert abs(centre.y - -44.5653) < 0.01 and abs(centre.x - 37.087) < 0.01


def test_disc_has_the_requested_radius():
    circle = gpd.GeoSeries([disc(11.9, 45.4, 10.0)], crs=4326).to_crs(32632).iloc[0]
    assert circle.area == pytest.approx(3.14159 * 10_000**2, rel=0.01)


def _events_file(tmp_path, geometries, **columns):
    path = tmp_path / "events.gpkg"
    frame = gpd.GeoDataFrame(
        {
            "hazard": ["flood"] * len(geometries),
            "event_date": ["2022-05-01"] * len(geometries),
            **columns,
        },
        geometry=geometries,
        crs=32632,
    )
    frame.to_file(path)
    return path


def test_user_events_dissolve_by_id_and_label_chips(tmp_path):
    a, b = shapely.box(0, 0, 600, 1200), shapely.box(600, 0, 900, 1200)
    path = _events_file(tmp_path, [a, b], event_id=["river-2022", "river-2022"])
    (event,) = read_user_events(path)
    assert event.event_id == "river-2022" and event.hazard == "flood"
    assert event.event_date == datetime(2022, 5, 1, tzinfo=UTC)
    assert affected_fraction(event, ChipGeometry(32632, 0, 0)) == pytest.approx(0.75, abs=1e-3)


def test_invalid_user_polygons_error_or_are_repaired_and_counted(tmp_path):
    bowtie = shapely.Polygon([(0, 0), (1200, 1200), (1200, 0), (0, 1200)])
    path = _events_file(tmp_path, [bowtie])
    with pytest.raises(SourceError, match="invalid polygon"):
        read_user_events(path)
    (event,) = read_user_events(path, on_invalid="warn")
    assert event.properties["repaired_polygons"] == 1
    assert event.geometry.is_valid


def test_user_event_file_errors_name_the_problem(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        read_user_events(tmp_path / "none.gpkg")
    path = _events_file(tmp_path, [shapely.box(0, 0, 1, 1)])
    frame = gpd.read_file(path)
    frame["hazard"] = ["tsunami"]
    frame.to_file(path)
    with pytest.raises(SourceError, match="tsunami"):
        read_user_events(path)


def test_invalid_ems_polygons_are_repaired_and_counted(tmp_path):
    from pipeline.labels import warnings as label_warnings
    from pipeline.labels.crisis_ems import read_ems_observed_event

    bowtie = shapely.Polygon([(11.0, 45.0), (11.01, 45.01), (11.01, 45.0), (11.0, 45.01)])
    path = tmp_path / "EMSR9999_AOI01_DEL_PRODUCT_observedEventA_r1_v1.shp"
    gpd.GeoDataFrame(
        {"event_type": ["5-Flood"], "obj_desc": ["Riverine flood"]}, geometry=[bowtie], crs=4326
    ).to_file(path)
    label_warnings.reset()
    event = read_ems_observed_event(path, event_date="2022-01-01")
    assert event.geometry.is_valid and not event.geometry.is_empty
    assert any("invalid geometry repaired" in k for k in label_warnings.snapshot())
    nocrs = tmp_path / "EMSR9998_AOI01_DEL_PRODUCT_observedEventA_r1_v1.shp"
    gpd.GeoDataFrame(
        {"event_type": ["5-Flood"]}, geometry=[shapely.box(11, 45, 11.01, 45.01)]
    ).to_file(nocrs)
    with pytest.raises(SourceError, match="no CRS"):
        read_ems_observed_event(nocrs, event_date="2022-01-01")
