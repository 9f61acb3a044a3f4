"""The project's taxonomy files carry the same facts as the published class tables."""

from __future__ import annotations

import csv

import pytest

from pipeline.labels.taxonomy import clc_classes, dynamic_world_classes, taxonomy_classes

pytestmark = pytest.mark.realdata


def _rows(path):
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def test_corine_nomenclature_matches_the_eea_table(real_data):
    rows = _rows(real_data / "labels" / "clc_nomenclature_44_with_ben19.csv")
    ours = {c.code: c for c in clc_classes()}
    assert len(ours) == len(rows) == 44
    for row in rows:
        cls = ours[int(row["clc_code"])]
        assert (cls.grid_code, cls.name, cls.hex) == (
            int(row["grid_code"]),
            row["level3"],
            row["hex"],
        )
        assert (cls.level1_code, cls.level2_code) == (
            int(row["level1_code"]),
            int(row["level2_code"]),
        )
        assert (cls.ben43, cls.ben19) == (row["bigearthnet43_name"], row["bigearthnet19"])


def test_dynamic_world_and_worldcover_match(real_data):
    dw = _rows(real_data / "labels" / "dynamic_world_v1_classes.csv")
    assert [(c.value, c.name, c.hex) for c in dynamic_world_classes()] == [
        (int(r["value"]), r["name"], r["hex"]) for r in dw
    ]
    wc = _rows(real_data / "labels" / "esa_worldcover_v200_classes.csv")
    assert [(c["value"], c["name"], c["colour"]) for c in taxonomy_classes("esa_worldcover")] == [
        (int(r["value"]), r["name"], r["hex"]) for r in wc
    ]
