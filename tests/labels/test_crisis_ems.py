"""Copernicus EMS observed-event ingestion, affected fractions and crisis phases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

from pipeline.chips.grid import ChipGeometry
from pipeline.errors import ConfigError, SourceError
from pipeline.labels.base import CrisisEvent
from pipeline.labels.crisis_ems import (
    affected_fraction,
    calendar_days,
    crisis_phase,
    hazard_from_text,
    parse_ems_name,
    read_ems_observed_event,
)

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "real-data"
EMSR332 = REAL_DATA / "ems" / "EMSR332"
VERONA_SOURCE = EMSR332 / "01VERONA_DEL_v1_product" / "EMSR332_01VERONA_DEL_v1_source.dbf"
CHIP = ChipGeometry(32632, col=547, row=4191)  # near Verona


def project(geom, src: int, dst: int):
    tr = Transformer.from_crs(src, dst, always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def write_layer(folder: Path, stem: str, geoms_4326, event_type="5-Flood", **fields) -> Path:
    frame = gpd.GeoDataFrame(
        {"event_type": [event_type] * len(geoms_4326), "obj_desc": ["Riverine flood"] * len(geoms_4326), **fields},
        geometry=list(geoms_4326),
        crs=4326,
    )  # fmt: skip
    path = folder / f"{stem}.shp"
    frame.to_file(path)
    return path


def chip_half_4326(chip: ChipGeometry):
    """The west half of ``chip`` as a densified EPSG:4326 polygon."""
    minx, miny, maxx, maxy = chip.bounds
    west = shapely.segmentize(shapely.box(minx, miny, (minx + maxx) / 2, maxy), 5.0)
    return project(west, chip.epsg, 4326)


@pytest.mark.parametrize(
    ("stem", "event_id", "product", "monitoring", "version", "release"),
    [
        ("EMSR332_01VERONA_DEL_v1_observed_event_a", "EMSR332_01VERONA", "DEL", None, 1, 1),
        ("EMSR332_02PADOVA_DEL_MONIT01_v1_observed_event_a", "EMSR332_02PADOVA", "DEL", 1, 1, 1),
        ("EMSR9001_AOI01_DEL_PRODUCT_observedEventA_r1_v1", "EMSR9001_AOI01", "DEL", None, 1, 1),
        ("EMSR640_AOI03_GRA_MONIT02_observedEventA_r2_v3", "EMSR640_AOI03", "GRA", 2, 3, 2),
    ],
)
def test_parse_ems_name(stem, event_id, product, monitoring, version, release) -> None:
    name = parse_ems_name(f"/data/{stem}.shp")
    assert name.event_id == event_id
    assert (name.product, name.monitoring, name.version, name.release) == (
        product, monitoring, version, release,
    )  # fmt: skip
    assert name.feature.replace("_", "").lower() == "observedevent"


def test_source_table_names() -> None:
    legacy = parse_ems_name("EMSR332_01VERONA_DEL_v1_observed_event_a.shp")
    assert legacy.source_table_name() == "EMSR332_01VERONA_DEL_v1_source"
    modern = parse_ems_name("EMSR393_AOI06_GRA_PRODUCT_observedEventA_r1_v1.shp")
    assert modern.source_table_name() == "EMSR393_AOI06_GRA_PRODUCT_source_r1_v1"
    with pytest.raises(SourceError, match="not an EMS"):
        parse_ems_name("flood_extent.shp")


@pytest.mark.parametrize(
    ("text", "hazard"),
    [("5-Flood", "flood"), ("1-Earthquake", "earthquake"), ("8-Wildfire", "wildfire"),
     ("Wildfire", "wildfire"), ("FL", "flood"), ("6-Mass movement", None), (None, None)],
)  # fmt: skip
def test_hazard_from_text(text, hazard) -> None:
    assert hazard_from_text(text) == hazard


def test_event_date_precedence_and_metadata_json(tmp_path: Path) -> None:
    path = write_layer(
        tmp_path,
        "EMSR9001_AOI01_DEL_PRODUCT_observedEventA_r1_v1",
        [chip_half_4326(CHIP)],
        "8-Wildfire",
    )
    meta = tmp_path / "EMSR9001.json"
    meta.write_text(
        json.dumps({"code": "EMSR9001", "category": "Wildfire", "event_date": "2023-07-18"})
    )
    event = read_ems_observed_event(path, metadata=meta)
    assert event.event_id == "EMSR9001_AOI01"
    assert event.hazard == "wildfire"
    assert event.event_date == datetime(2023, 7, 18, tzinfo=UTC)
    assert event.properties["event_date_source"] == "metadata"
    explicit = read_ems_observed_event(path, metadata=meta, event_date="2023-07-17T12:00:00Z")
    assert explicit.event_date == datetime(2023, 7, 17, 12, tzinfo=UTC)
    with pytest.raises(SourceError, match=r"event_date.*metadata.*source_table"):
        read_ems_observed_event(path)
    with pytest.raises(SourceError, match="EMSR1"):
        read_ems_observed_event(path, metadata={"code": "EMSR1", "event_date": "2023-07-18"})
    with pytest.raises(SourceError, match="flood"):
        read_ems_observed_event(path, metadata={"hazard": "flood", "event_date": "2023-07-18"})  # fmt: skip


def test_source_table_date_uses_cited_post_event_image(tmp_path: Path) -> None:
    stem = "EMSR9002_AOI02_DEL_PRODUCT_observedEventA_r1_v1"
    path = write_layer(tmp_path, stem, [chip_half_4326(CHIP)], "1-Earthquake", dmg_src_id=[3])
    table = pd.DataFrame({
        "source_nam": ["Pleiades", "Sentinel-2", "WorldView-3"],
        "src_date": ["01/02/2023", "07/02/2023", "08/02/2023"],
        "source_tm": ["T10:00:00Z", "T09:30:00Z", "T08:15:30Z"],
        "eventphase": ["Pre-event", "Post-event", "Post-event"],
        "src_id": [1, 2, 3],
    })  # fmt: skip
    source = tmp_path / "EMSR9002_AOI02_DEL_PRODUCT_source_r1_v1.dbf"
    gpd.GeoDataFrame(table).to_file(source, driver="ESRI Shapefile")
    event = read_ems_observed_event(path, source_table=source)
    assert event.hazard == "earthquake"
    assert event.event_date == datetime(2023, 2, 8, 8, 15, 30, tzinfo=UTC)  # the cited source 3
    assert event.properties["pre_event_image_date"] == "2023-02-01T10:00:00+00:00"


def test_affected_fraction_hand_case() -> None:
    event = CrisisEvent(
        "T1", "user", "flood", datetime(2020, 1, 1, tzinfo=UTC), chip_half_4326(CHIP)
    )
    assert affected_fraction(event, CHIP) == pytest.approx(0.5, abs=1e-4)
    east = ChipGeometry(CHIP.epsg, CHIP.col + 1, CHIP.row)
    assert affected_fraction(event, east) == 0.0
    west = ChipGeometry(CHIP.epsg, CHIP.col - 1, CHIP.row)
    assert affected_fraction(event, west) == pytest.approx(0.0, abs=1e-4)


def test_crisis_phase() -> None:
    event = CrisisEvent(
        "T1", "user", "flood", datetime(2020, 5, 10, tzinfo=UTC), shapely.Point(0, 0)
    )
    assert crisis_phase(event, datetime(2020, 5, 10, tzinfo=UTC), 30) == "post"
    assert crisis_phase(event, datetime(2020, 6, 9, tzinfo=UTC), 30) == "post"
    assert crisis_phase(event, datetime(2020, 6, 9, 23, 59, tzinfo=UTC), 30) == "post"
    assert crisis_phase(event, datetime(2020, 6, 10, 0, 1, tzinfo=UTC), 30) is None
    assert crisis_phase(event, datetime(2020, 5, 9), 30) == "pre"  # naive = UTC
    assert crisis_phase(event, datetime(2020, 4, 10, tzinfo=UTC), 30) == "pre"
    assert crisis_phase(event, datetime(2020, 4, 9, tzinfo=UTC), 30) is None
    with pytest.raises(ConfigError):
        crisis_phase(event, datetime(2020, 5, 9), -1)


def real_layer(stem: str) -> Path:
    path = EMSR332 / "observed_event" / f"{stem}.shp"
    if not path.is_file():
        pytest.skip(f"real EMS data not found: {path} (needs ../shared/real-data)")
    return path


REAL_LAYERS = [
    "EMSR332_01VERONA_DEL_v1_observed_event_a",
    "EMSR332_01VERONA_DEL_MONIT01_v1_observed_event_a",
    "EMSR332_02PADOVA_DEL_v1_observed_event_a",
    "EMSR332_02PADOVA_DEL_MONIT01_v1_observed_event_a",
]


@pytest.mark.realdata
@pytest.mark.parametrize("stem", REAL_LAYERS)
def test_real_emsr332_layers(stem: str) -> None:
    path = real_layer(stem)
    event = read_ems_observed_event(path, metadata={"code": "EMSR332", "event_date": "2018-10-29"})
    frame = gpd.read_file(path)
    assert event.hazard == "flood"
    assert event.source == "copernicus-ems"
    assert event.event_id == stem[: len("EMSR332_01VERONA")]
    assert event.properties["code"] == "EMSR332"
    assert event.properties["monitoring"] == (1 if "MONIT01" in stem else None)
    assert event.properties["obj_desc"] == ["Riverine flood"]
    assert event.geometry.is_valid
    assert event.geometry.area == pytest.approx(
        shapely.union_all(frame.geometry.values).area, rel=1e-6
    )


@pytest.mark.realdata
def test_real_emsr332_dates_from_source_table() -> None:
    path = real_layer("EMSR332_01VERONA_DEL_v1_observed_event_a")
    if not VERONA_SOURCE.is_file():
        pytest.skip(f"real EMS source table not found: {VERONA_SOURCE}")
    event = read_ems_observed_event(path, source_table=VERONA_SOURCE)
    # Observed events cite dmg_src_id 2: Sentinel-1, 02/11/2018 T05:18:00Z (post-event).
    assert event.event_date == datetime(2018, 11, 2, 5, 18, tzinfo=UTC)
    assert event.properties["event_date_source"] == "source_table:post-event image"
    assert event.properties["pre_event_image_date"] == "2018-09-26T10:17:00+00:00"
    monit = real_layer("EMSR332_01VERONA_DEL_MONIT01_v1_observed_event_a")
    with pytest.raises(SourceError, match="MONIT01_v1_source"):
        read_ems_observed_event(monit, source_table=VERONA_SOURCE)


@pytest.mark.realdata
def test_real_emsr332_affected_fraction_matches_shapely() -> None:
    path = real_layer("EMSR332_01VERONA_DEL_v1_observed_event_a")
    event = read_ems_observed_event(path, event_date="2018-11-02")
    frame = gpd.read_file(path)
    largest = frame.geometry.iloc[int(frame.to_crs(32632).area.argmax())]
    x, y = project(largest.representative_point(), 4326, 32632).coords[0]
    chip = ChipGeometry(32632, int(x // 1200), int(y // 1200))
    square = shapely.box(*chip.bounds)
    expected = shapely.union_all(frame.to_crs(32632).geometry.values).intersection(square).area
    fraction = affected_fraction(event, chip)
    assert 0 < fraction <= 1
    assert fraction == pytest.approx(expected / square.area, abs=1e-6)


def test_days_since_event_counts_calendar_days() -> None:
    """A chip acquired 23 h 59 min after the event, on the next UTC day, is one day after it;
    an acquisition earlier on the event's own day is on the day of the event, not before it."""
    event = datetime(2021, 11, 16, 5, 0, tzinfo=UTC)
    assert calendar_days(event, datetime(2021, 11, 17, 4, 59, tzinfo=UTC)) == 1
    assert calendar_days(event, datetime(2021, 11, 16, 23, 59, tzinfo=UTC)) == 0
    assert calendar_days(event, datetime(2021, 11, 16, 0, 1, tzinfo=UTC)) == 0
    assert calendar_days(event, datetime(2021, 11, 15, 23, 59, tzinfo=UTC)) == -1
    # an aware time in another zone is compared by its UTC date
    tokyo = timezone(timedelta(hours=9))
    assert calendar_days(event, datetime(2021, 11, 17, 8, 0, tzinfo=tokyo)) == 0
    hazard = CrisisEvent("T1", "user", "flood", event, shapely.Point(0, 0))
    assert crisis_phase(hazard, datetime(2021, 11, 16, 1, 0, tzinfo=UTC), 12) == "post"
