"""The STAC view: a self-contained catalog of chips (label + projection extensions) linked to
their source scenes, valid under pystac validation (offline: core schemas)."""

from __future__ import annotations

import pandas as pd
import pystac
import pytest
from pystac.validation import RegisteredValidator

from pipeline.archive.stac_catalog import OfflineValidator
from pipeline.corpus.stac_view import (
    LABEL_EXTENSION,
    _read_inputs,
    build_catalog,
    validate_catalog,
    write_catalog,
)
from pipeline.labels.taxonomy import REFERENCE_LABELS


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
    """``write_catalog`` (chip items in tasks, no catalog in memory) against the reference:
    every item as a pystac object, ``catalog.save``; the same files, byte for byte."""
    meta, scenes, manifest = _read_inputs(tiny_corpus)
    reference = build_catalog(meta, scenes, manifest, cogs)
    reference.normalize_hrefs(str(tmp_path / "reference"))
    reference.save(pystac.CatalogType.SELF_CONTAINED)
    write_catalog(tmp_path / "tasks", meta, scenes, manifest, cogs, pool=None)
    trees = {
        name: {
            p.relative_to(tmp_path / name).as_posix(): p.read_bytes()
            for p in sorted((tmp_path / name).rglob("*.json"))
        }
        for name in ("reference", "tasks")
    }
    assert len(trees["tasks"]) == len(meta) + len(scenes) + 4
    assert trees["tasks"] == trees["reference"]
