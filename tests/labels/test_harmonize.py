"""Taxonomies, mapping files and harmonization into the reference label space."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from pipeline.errors import ConfigError, SchemaError, SourceError
from pipeline.labels import harmonize, taxonomy
from pipeline.labels.base import ClassFractions
from pipeline.labels.harmonize import (
    aggregate_levels,
    clc_names_to_reference,
    labels_above,
    load_mapping,
    to_bigearthnet19,
    to_reference,
)
from pipeline.labels.taxonomy import (
    CRISIS_LABELS,
    REFERENCE_LABELS,
    clc_by_code,
    clc_by_grid_code,
    clc_by_name,
    clc_classes,
    dynamic_world_classes,
)

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "real-data"

PUBLISHED_CLC_TABLE = {
    "built": (111, 112, 121, 122, 123, 124),
    "bare": (131, 132, 133, 331, 332, 333, 422, 423),
    "grass": (141, 142, 231, 321),
    "crops": (211, 212, 221, 222, 223, 241, 242, 243),
    "flooded vegetation": (213, 411, 412, 421),
    "trees": (244, 311, 312, 313),
    "shrub and scrub": (322, 323, 324),
    "snow and ice": (335,),
    "water": (511, 512, 521, 522, 523),
    "burned area": (334,),
}


def test_reference_label_order_and_crisis_labels() -> None:
    assert REFERENCE_LABELS == (
        "water", "trees", "grass", "flooded vegetation", "crops", "shrub and scrub",
        "built", "bare", "snow and ice", "flooded area", "earthquake damage", "burned area",
    )  # fmt: skip
    assert CRISIS_LABELS == {
        "flood": "flooded area",
        "earthquake": "earthquake damage",
        "wildfire": "burned area",
    }


def test_clc_mapping_matches_published_table_for_all_44_classes() -> None:
    mapping = load_mapping("clc_to_reference.v1")
    expected = {code: label for label, codes in PUBLISHED_CLC_TABLE.items() for code in codes}
    assert len(expected) == 44
    assert dict(mapping.table) == expected
    assert {cls.code for cls in clc_classes()} == set(expected)


def test_dynamic_world_mapping_is_identity_on_labels() -> None:
    mapping = load_mapping("dynamic_world_to_reference.v1")
    assert dict(mapping.table) == dict(enumerate(REFERENCE_LABELS[:9]))
    assert [cls.label for cls in dynamic_world_classes()] == list(REFERENCE_LABELS[:9])


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("mappings/*.v*.json")), ids=lambda p: p.name)
def test_mapping_files_validate_against_schema(path: Path) -> None:
    schema = json.loads((SCHEMAS / "mappings" / "mapping.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json.loads(path.read_text()), schema)


def test_unversioned_name_loads_latest_and_is_cached() -> None:
    latest = load_mapping("clc_to_reference")
    assert latest.name == "clc_to_reference.v1"
    assert latest is load_mapping("clc_to_reference.v1")


def test_invalid_mapping_file_is_rejected(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "mappings").mkdir()
    schema = (SCHEMAS / "mappings" / "mapping.schema.json").read_text()
    (tmp_path / "mappings" / "mapping.schema.json").write_text(schema)
    bad = {"version": "1.0.0", "source_taxonomy": "x", "target": "crisislandmark-reference-v1",
           "description": "bad", "mapping": {"1": "forest"}}  # fmt: skip
    (tmp_path / "mappings" / "bad.v1.json").write_text(json.dumps(bad))
    monkeypatch.setenv("CLM_SCHEMAS_DIR", str(tmp_path))
    with pytest.raises(SchemaError, match=r"bad\.v1\.json"):
        load_mapping("bad.v1")
    with pytest.raises(ConfigError, match="missing"):
        load_mapping("missing.v1")


def test_to_reference_sums_and_renormalises_over_valid_area() -> None:
    fractions = ClassFractions("corine", {211: 0.2, 242: 0.1, 231: 0.1, 312: 0.1}, 0.5)
    result = to_reference(fractions, load_mapping("clc_to_reference.v1"))
    assert list(result) == ["trees", "grass", "crops"]  # canonical order
    assert result == {
        "trees": pytest.approx(0.2),
        "grass": pytest.approx(0.2),
        "crops": pytest.approx(0.6),
    }
    assert sum(result.values()) == pytest.approx(1.0)


def test_to_reference_all_nodata_and_unknown_codes() -> None:
    mapping = load_mapping("clc_to_reference.v1")
    assert to_reference(ClassFractions("corine", {}, 1.0), mapping) == {}
    with pytest.raises(SourceError, match="999"):
        to_reference(ClassFractions("corine", {999: 1.0}), mapping)


def test_labels_above_threshold_in_canonical_order() -> None:
    by_label = {"crops": 0.6, "water": 0.05, "trees": 0.35, "built": 0.0}
    assert labels_above(by_label, 0.1) == ("trees", "crops")
    assert labels_above(by_label, 0.05) == ("water", "trees", "crops")
    assert labels_above(by_label, 0.0) == ("water", "trees", "crops")
    with pytest.raises(SourceError, match="forest"):
        labels_above({"forest": 1.0}, 0.1)
    with pytest.raises(ConfigError):
        labels_above(by_label, 1.5)


def test_aggregate_levels() -> None:
    fractions = ClassFractions("corine", {211: 0.3, 212: 0.1, 231: 0.2, 311: 0.2}, 0.2)
    levels = aggregate_levels(fractions)
    assert levels["level1"] == {2: pytest.approx(0.75), 3: pytest.approx(0.25)}
    assert levels["level2"] == {
        21: pytest.approx(0.5),
        23: pytest.approx(0.25),
        31: pytest.approx(0.25),
    }
    assert levels["level3"] == {
        211: pytest.approx(0.375),
        212: pytest.approx(0.125),
        231: pytest.approx(0.25),
        311: pytest.approx(0.25),
    }


def test_to_bigearthnet19_merges_and_drops_classes() -> None:
    fractions = {211: 0.25, 212: 0.25, 122: 0.25, 324: 0.25}
    assert to_bigearthnet19(fractions) == {
        "Arable land": pytest.approx(0.5),
        "Transitional woodland, shrub": pytest.approx(0.25),
    }  # 122 (roads) has no BigEarthNet-19 class


def test_nomenclature_lookups() -> None:
    assert len(clc_classes()) == 44
    peat = clc_by_code(412)
    assert (peat.grid_code, peat.name, peat.ben43, peat.hex) == (
        36,
        "Peat bogs",
        "Peatbogs",
        "#4d4dff",
    )
    assert (peat.level1_code, peat.level2_code, peat.level2_name) == (4, 41, "Inland wetlands")
    assert clc_by_grid_code(12).code == 211
    assert clc_by_name("Peatbogs") is peat
    assert clc_by_name("peat bogs") is peat
    assert clc_by_name("Transitional woodland/shrub").code == 324
    assert clc_by_name("Transitional woodland-shrub").code == 324
    assert clc_by_name("Bare rock").code == 332
    assert clc_by_name("Natural grassland").code == 321
    assert clc_by_name("Natural grasslands").code == 321
    with pytest.raises(SourceError, match="Forest of Arden"):
        clc_by_name("Forest of Arden")


def test_schemas_dir_env_override(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CLM_SCHEMAS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(SchemaError, match="CLM_SCHEMAS_DIR"):
        taxonomy.schemas_dir()
    monkeypatch.setenv("CLM_SCHEMAS_DIR", str(SCHEMAS))
    assert harmonize.schemas_dir() == SCHEMAS


BEN_EXPECTED = {
    "Non-irrigated arable land": "crops",
    "Land principally occupied by agriculture, with significant areas of natural vegetation": (
        "crops"
    ),
    "Pastures": "grass",
    "Coniferous forest": "trees",
    "Mixed forest": "trees",
    "Transitional woodland/shrub": "shrub and scrub",
    "Peatbogs": "flooded vegetation",
    "Water bodies": "water",
}


@pytest.mark.realdata
def test_real_bigearthnet_labels_map_as_published() -> None:
    files = sorted((REAL_DATA / "bigearthnet" / "S2").glob("*/*_labels_metadata.json"))
    if not files:
        pytest.skip(f"real BigEarthNet label files not found under {REAL_DATA}/bigearthnet/S2")
    mapping = load_mapping("clc_to_reference.v1")
    published = {code: label for label, codes in PUBLISHED_CLC_TABLE.items() for code in codes}
    seen: set[str] = set()
    for path in files:
        names = json.loads(path.read_text())["labels"]
        for name in names:
            label = published[clc_by_name(name).code]
            assert mapping.label_of(clc_by_name(name).code) == label
            if name in BEN_EXPECTED:
                assert label == BEN_EXPECTED[name], name
            seen.add(name)
        expected = {published[clc_by_name(n).code] for n in names}
        assert clc_names_to_reference(names, mapping) == tuple(
            label for label in REFERENCE_LABELS if label in expected
        )
    assert set(BEN_EXPECTED) <= seen
