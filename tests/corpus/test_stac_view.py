"""The STAC view: a self-contained catalog of chips (label + projection extensions) linked to
their source scenes, valid under pystac validation (offline: core schemas)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pystac
import pytest
import shapely.affinity
import shapely.geometry
from pystac.validation import RegisteredValidator
from stac_reference import build_catalog

from pipeline.archive.stac_catalog import OfflineValidator
from pipeline.corpus.stac_chip_item import LABEL_EXTENSION
from pipeline.corpus.stac_view import _read_inputs, validate_catalog, write_catalog
from pipeline.labels.taxonomy import CRISIS_LABELS, REFERENCE_LABELS


@pytest.fixture(scope="module")
def catalog(tiny_corpus):
    return pystac.Catalog.from_file(str(tiny_corpus / "stac" / "catalog.json"))


@pytest.fixture
def offline_validator():
    previous = RegisteredValidator.get_validator()
    validator = OfflineValidator()
    RegisteredValidator.set_validator(validator)
    yield validator
    RegisteredValidator.set_validator(previous)


def test_catalog_validates_with_pystac(catalog, offline_validator, tiny_corpus):
    catalog.validate_all()
    # no local copy of the label extension schema: its fields are checked by the next test
    assert LABEL_EXTENSION in offline_validator.skipped
    assert validate_catalog(tiny_corpus / "stac") > len(
        pd.read_parquet(tiny_corpus / "metadata.parquet")
    )


def test_one_item_per_chip_with_labels_and_a_source_link(catalog, tiny_corpus):
    meta = pd.read_parquet(tiny_corpus / "metadata.parquet").set_index("key")
    chips = {
        item.id: item
        for collection_id in ("clm-s1", "clm-s2")
        for item in catalog.get_child(collection_id).get_items()
    }
    assert sorted(chips) == sorted(meta.index)
    sources = {item.id for item in catalog.get_child("clm-sources").get_items()}
    for key, item in chips.items():
        assert LABEL_EXTENSION in item.stac_extensions
        props = item.properties
        assert props["label:type"] == "vector" and props["label:description"]
        assert props["label:properties"] == [c["name"] for c in props["label:classes"]]
        assert props["label:classes"][0]["classes"] == list(REFERENCE_LABELS)
        overview = {c["name"] for c in props["label:overviews"][0]["counts"]}
        assert overview == set(meta.loc[key, "labels"])
        assert props["clm:split"] == meta.loc[key, "split"]
        (source,) = item.get_links("source")
        assert source.resolve_stac_object().target.id == meta.loc[key, "item_id"] in sources
        image = item.assets["image"]
        assert image.extra_fields["clm:hdf5_key"] == key
        assert image.get_absolute_href().endswith(f"shards/{meta.loc[key, 'shard']}")
        assert props["proj:code"] == f"EPSG:{meta.loc[key, 'epsg']}"


def test_source_items_point_at_the_archive_assets(catalog, tiny_archive):
    item = next(iter(catalog.get_child("clm-sources").get_items()))
    href = next(iter(item.assets.values())).href
    assert href.startswith(str(tiny_archive)) and href.endswith(".tif")


@pytest.mark.parametrize("cogs", [False, True])
def test_items_written_per_task_equal_pystacs_whole_catalog_save(tiny_corpus, tmp_path, cogs):
    """``write_catalog`` (chip items as plain dicts in tasks, no catalog in memory) against the
    reference: every item as a pystac object, ``catalog.save``; the same files, byte for byte."""
    meta, scenes, manifest = _read_inputs(tiny_corpus)
    trees = _both_trees(tmp_path, meta, scenes, manifest, cogs)
    assert set(meta["sensor"]) == {"s1", "s2"}
    assert len(trees["tasks"]) == len(meta) + len(scenes) + 4
    assert trees["tasks"] == trees["reference"]


@pytest.mark.parametrize("cogs", [False, True])
def test_item_dicts_equal_pystac_items_for_unusual_values(tiny_corpus, tmp_path, cogs):
    """Values the tiny corpus lacks, in S1 and S2 chips: None properties, crisis labels and
    none, floats that need many digits or an exponent, microseconds, non-ASCII captions."""
    meta, scenes, manifest = _read_inputs(tiny_corpus)
    meta = _unusual(meta)
    trees = _both_trees(tmp_path, meta, scenes, manifest, cogs)
    assert trees["tasks"] == trees["reference"]
    key = meta[meta["sensor"] == "s2"]["key"].iloc[0]
    text = trees["tasks"][f"clm-s2/{key}/{key}.json"].decode()
    assert '"clm:processing_baseline": null' in text and "Göteborg" in text
    assert "e-7" in text and "flooded area" in text and ".123456Z" in text


def _unusual(meta):
    """``meta`` with the first chip of each sensor given None properties, a crisis label,
    coordinates that need an exponent or many digits, microseconds and a non-ASCII caption;
    the second shifted by odd offsets, without a crisis label."""
    meta = meta.copy()
    for column in ("processing_baseline", "software_version", "config_digest"):
        meta[column] = meta[column].astype(object)  # None stays None (not NaN)
    crisis = set(CRISIS_LABELS.values())
    for sensor in ("s1", "s2"):
        first, second = meta.index[meta["sensor"] == sensor][:2]
        for column in ("processing_baseline", "software_version", "config_digest"):
            meta.at[first, column] = None
        meta.at[first, "caption"] = f"Près de Göteborg — {meta.at[first, 'caption']}"
        meta.at[first, "datetime"] = meta.at[first, "datetime"].replace("+00", ".123456+00")
        meta.at[first, "labels"] = [*meta.at[first, "labels"], "flooded area"]
        meta.at[first, "geometry"] = shapely.geometry.box(-1.5e-05, 1.2e-07, 0.01 + 1e-17, 1 / 3)
        meta.at[second, "labels"] = [c for c in meta.at[second, "labels"] if c not in crisis]
        meta.at[second, "geometry"] = shapely.affinity.translate(
            meta.at[second, "geometry"], 1 / 7, -1 / 11
        )
        for row in (first, second):
            meta.at[row, "read_window"] = [w + 0.1 for w in meta.at[row, "read_window"]]
    return meta


def test_a_relative_root_gives_the_same_files(tiny_corpus, tmp_path, monkeypatch):
    """Collection ``item`` links are relative to the collection however the root is given
    (they once kept a relative root's path, e.g. ``clm export`` on a relative corpus)."""
    meta, scenes, manifest = _read_inputs(tiny_corpus)
    write_catalog(tmp_path / "absolute", meta, scenes, manifest, cogs=False)
    monkeypatch.chdir(tmp_path)
    write_catalog(Path("relative"), meta, scenes, manifest, cogs=False)
    assert _tree(tmp_path / "relative") == _tree(tmp_path / "absolute")


def _both_trees(tmp_path, meta, scenes, manifest, cogs) -> dict[str, dict[str, bytes]]:
    """The JSON files of ``write_catalog`` (``tasks``) and of pystac's ``catalog.save`` of
    ``build_catalog`` (``reference``)."""
    reference = build_catalog(meta, scenes, manifest, cogs)
    reference.normalize_hrefs(str(tmp_path / "reference"))
    reference.save(pystac.CatalogType.SELF_CONTAINED)
    write_catalog(tmp_path / "tasks", meta, scenes, manifest, cogs, pool=None)
    return {name: _tree(tmp_path / name) for name in ("reference", "tasks")}


def _tree(root: Path) -> dict[str, bytes]:
    """The JSON files under ``root`` by their path relative to it."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.json"))}
