"""End to end on the tiny simulated archive: search -> chips -> captions -> corpus."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from pipeline.build import build
from pipeline.config import load_config
from pipeline.corpus.inspect import format_summary, summarize
from pipeline.schemas import schema_errors


@pytest.fixture(scope="module")
def corpus(tiny_archive, tmp_path_factory, run_config):
    out = tmp_path_factory.mktemp("corpus")
    config = load_config(run_config(out.parent / f"{out.name}.yaml", tiny_archive, out))
    build(config)
    return out


def test_corpus_files_and_counts_agree(corpus):
    manifest = json.loads((corpus / "manifest.json").read_text())
    meta = pd.read_parquet(corpus / "metadata.parquet")
    records = [json.loads(line) for line in (corpus / "records.jsonl").read_text().splitlines()]
    assert len(meta) == len(records) == sum(v["kept"] for v in manifest["chips"].values())
    assert set(meta["sensor"]) == {"s1", "s2"}
    assert meta["key"].is_unique
    assert set(meta["split"]) == {"train", "corpus"}
    assert sum(manifest["shards"].values()) == len(meta)
    for column in (
        "key",
        "sensor",
        "split",
        "labels",
        "caption",
        "geometry",
        "datetime",
        "item_id",
    ):
        assert column in meta.columns


def test_every_record_matches_the_schema(corpus):
    for line in (corpus / "records.jsonl").read_text().splitlines():
        record = json.loads(line)
        assert schema_errors(record, "caption-record.v1.schema.json") == []
        assert record["captions"]["reference"] == ". ".join(sorted(record["labels"]))


def test_shards_follow_the_reference_layout(corpus):
    meta = pd.read_parquet(corpus / "metadata.parquet").set_index("key")
    for shard in sorted((corpus / "shards").glob("*.h5")):
        with h5py.File(shard, "r") as h5:
            for key in h5:
                group = h5[key]
                sensor = meta.loc[key, "sensor"]
                assert group["image"].shape == ((12, 120, 120) if sensor == "s2" else (2, 120, 120))
                assert group["image"].dtype == np.float32
                assert group["coords"].shape == (2, 120, 120)
                assert group.attrs["crs"] == meta.loc[key, "epsg"]
                labels = [str(v) for v in group.attrs["labels"]]
                assert ". ".join(sorted(labels)) == meta.loc[key, "caption_reference"]
                if sensor == "s1":
                    assert (
                        float(np.min(group["image"])) >= -50 and float(np.max(group["image"])) < 20
                    )


def test_flood_is_labelled_after_the_event_only(corpus):
    records = [json.loads(line) for line in (corpus / "records.jsonl").read_text().splitlines()]
    flooded = [r for r in records if "flooded area" in r["labels"]]
    assert flooded, "the tiny archive has post-flood scenes over the flood polygons"
    for r in flooded:
        (event,) = [c for c in r["crisis"] if c["label"] == "flooded area"]
        assert event["phase"] == "post" and 0 <= event["days_since_event"] <= 12
        assert event["affected_fraction"] >= 0.02
    pre = [c for r in records for c in r["crisis"] if c["phase"] == "pre"]
    assert all(c["days_since_event"] < 0 for c in pre)


def test_rebuild_gives_an_identical_corpus(corpus, tiny_archive, tmp_path, run_config):
    again = tmp_path / "again"
    build(load_config(run_config(tmp_path / "again.yaml", tiny_archive, again)))
    a = pd.read_parquet(corpus / "metadata.parquet")
    b = pd.read_parquet(again / "metadata.parquet")
    assert list(a["key"]) == list(b["key"])
    assert list(a["pixel_sha256"]) == list(b["pixel_sha256"])
    assert list(a["split"]) == list(b["split"])
    assert (corpus / "corpus.lock").read_bytes() == (again / "corpus.lock").read_bytes()
    outputs = json.loads((corpus / "corpus.lock").read_text())["outputs"]
    assert any(name.startswith("shards/") for name in outputs)
    for name in outputs:
        assert (corpus / name).read_bytes() == (again / name).read_bytes(), name


def test_build_publishes_the_first_version(corpus):
    assert (corpus / "versions" / "current").resolve().name == "v001"
    diff = json.loads((corpus / "versions" / "v001" / "diff.json").read_text())
    manifest = json.loads((corpus / "manifest.json").read_text())
    assert diff["previous"] is None and diff["removed"] == {}
    assert {s: v["chips"] for s, v in diff["added"].items()} == {
        s: v["kept"] for s, v in manifest["chips"].items()
    }


def test_summary_mentions_both_sensors(corpus):
    text = format_summary(summarize(corpus))
    assert "S1" in text and "S2" in text and "flooded area" in text


def test_manifest_and_summary_record_compression_and_stac_validation(corpus):
    manifest = json.loads((corpus / "manifest.json").read_text())
    assert (
        manifest["shard_compression"]["name"] == manifest["config"]["output"]["shard_compression"]
    )
    with h5py.File(sorted((corpus / "shards").glob("*.h5"))[0], "r") as h5:
        assert h5.attrs["clm_compression"] == manifest["shard_compression"]["name"]
    summary = summarize(corpus)
    validated = json.loads((corpus / "stac" / "validation.json").read_text())["objects"]
    assert summary["stac_validated"] == validated
    items = len(list((corpus / "stac" / "clm-s2").glob("*/*.json")))
    assert validated["clm-s2"] == {"validated": items + 1, "written": items + 1}  # all (< 500)
    assert f"STAC view: {sum(v['validated'] for v in validated.values())} of" in format_summary(
        summary
    )


def chip_images(corpus) -> dict[str, np.ndarray]:
    out = {}
    for shard in sorted((corpus / "shards").glob("*.h5")):
        with h5py.File(shard, "r") as h5:
            out.update({key: h5[key]["image"][()] for key in h5})
    return out


def chip_records(corpus) -> dict[str, dict]:
    lines = (corpus / "records.jsonl").read_text().splitlines()
    return {r["key"]: r for r in map(json.loads, lines)}


def test_chip_physics_burn_scar_raises_swir_over_nir(corpus):
    """The same S2 cells have a higher B12/B08 ratio after the fire than before it."""
    images, records = chip_images(corpus), chip_records(corpus)
    ratio = {
        k: images[k][11].mean() / images[k][7].mean()
        for k, r in records.items()
        if r["sensor"]["sensor"] == "s2"
    }
    by_cell: dict[str, dict[str, list[float]]] = {}
    for key, r in records.items():
        for c in r["crisis"]:
            if c["hazard"] == "wildfire" and key in ratio and c["affected_fraction"] > 0.3:
                by_cell.setdefault(r["provenance"]["cell"], {}).setdefault(c["phase"], []).append(
                    ratio[key]
                )
    pairs = [
        (np.mean(v["pre"]), np.mean(v["post"]))
        for v in by_cell.values()
        if "pre" in v and "post" in v
    ]
    assert pairs, "the tiny archive has S2 scenes before and after the fire over burned cells"
    assert all(post > pre * 1.3 for pre, post in pairs), pairs
