"""Caption records validate against the JSON Schema and render to both caption formats."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from pipeline.captions.record import build_record, season
from pipeline.captions.render import proportion_word, reference_caption, sentence_caption
from pipeline.errors import SchemaError
from pipeline.schemas import schema_errors

CHIP = {
    "key": "S1A_IW_GRDH_1SDV_20221104T053012_X_500_3780",
    "item_id": "S1A_IW_GRDH_1SDV_20221104T053012_X",
    "collection": "sentinel-1-grd",
    "sensor": "s1",
    "platform": "sentinel-1a",
    "datetime": "2022-11-04T05:30:12+00:00",
    "cell": "32632_500_3780",
    "cloud_fraction": 0.0,
    "nodata_fraction": 0.0,
    "pixel_sha256": "0" * 64,
    "instrument_mode": "IW",
    "orbit_state": "descending",
}
LOCATION = {
    "lon": 11.9,
    "lat": 45.4,
    "epsg": 32632,
    "bbox": [11.89, 45.39, 11.91, 45.41],
    "place": "Padova",
    "region": "Veneto",
    "country": "Italy",
    "country_code": "IT",
    "place_distance_km": 1.2,
}
ANNOTATION = {
    "land_cover": {
        "source": "dynamic_world",
        "fractions": {"crops": 0.62, "water": 0.2, "built": 0.18},
    },
    "land_use": {
        "source": "corine_land_cover_2018",
        "classes": [
            {"code": 211, "name": "Non-irrigated arable land", "fraction": 0.7},
            {"code": 512, "name": "Water bodies", "fraction": 0.3},
        ],
    },
    "crisis": [
        {
            "hazard": "flood",
            "label": "flooded area",
            "source": "copernicus-ems",
            "event_id": "EMSR9001_AOI01",
            "event_date": datetime(2022, 11, 2, tzinfo=UTC).isoformat(),
            "phase": "post",
            "days_since_event": 2,
            "affected_fraction": 0.33,
        }
    ],
    "labels": ["water", "crops", "flooded area"],
}


def test_record_validates_and_renders_both_captions():
    record = build_record(CHIP, ["VV", "VH"], LOCATION, ANNOTATION)
    assert schema_errors(record, "caption-record.v1.schema.json") == []
    assert record["captions"]["reference"] == "crops. flooded area. water"
    sentence = record["captions"]["sentence"]
    assert sentence.startswith(
        "Sentinel-1 radar image near Padova, Italy, taken on 4 November 2022 (autumn)"
    )
    assert "Mostly cropland (62 %) with water (20 %) and built-up area (18 %)" in sentence
    assert (
        "Flooded area 2 days after the flood EMSR9001, covering about a third of the image"
        in sentence
    )
    assert record["sensor"]["modality"] == "sar" and record["acquisition"]["season"] == "autumn"


def test_reference_caption_is_sorted_label_names():
    assert (
        reference_caption({"labels": ["water", "built", "burned area"]})
        == "built. burned area. water"
    )


def test_sentence_without_place_uses_coordinates():
    record = build_record(
        CHIP, ["VV", "VH"], {**LOCATION, "place": None, "country": None}, ANNOTATION
    )
    assert "at 45.40°N, 11.90°E" in sentence_caption(record)


def test_invalid_annotation_is_rejected_with_the_key():
    bad = copy.deepcopy(ANNOTATION)
    bad["labels"] = ["cropland"]
    with pytest.raises(SchemaError, match=CHIP["key"]):
        build_record(CHIP, ["VV", "VH"], LOCATION, bad)


@pytest.mark.parametrize(
    ("month", "lat", "expected"),
    [(1, 45, "winter"), (7, 45, "summer"), (7, -30, "winter"), (10, 10, "autumn")],
)
def test_season(month, lat, expected):
    assert season(datetime(2022, month, 15), lat) == expected


def test_proportion_words_are_monotonic():
    words = [proportion_word(f / 100) for f in range(0, 101, 5)]
    order = [
        "a little",
        "some",
        "about a fifth",
        "about a third",
        "about half",
        "mostly",
        "almost entirely",
    ]
    assert [order.index(w) for w in words] == sorted(order.index(w) for w in words)
