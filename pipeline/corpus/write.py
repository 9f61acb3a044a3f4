"""The corpus stage: image shards (``pipeline.corpus.shards``, written in parallel),
``metadata.parquet``, caption records, sources and manifest."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely.geometry

import pipeline
from pipeline.captions.stage import cell_of, kept_chips, read_records
from pipeline.config import RunConfig
from pipeline.corpus.manifest import build_manifest
from pipeline.corpus.shards import plan_shards, shards_written
from pipeline.corpus.splits import SplitChip, SplitRule, split_chips
from pipeline.errors import CorpusError
from pipeline.sources.base import Scene
from pipeline.sources.select import read_scenes
from pipeline.storage import atomic_path, write_json_atomic

SOURCES_FILE = "sources.parquet"


def write_corpus(
    config: RunConfig,
    scenes_path: Path,
    chips_index: Path,
    records_path: Path,
    chip_dir: Path,
    pool: cf.Executor,
    into: Path | None = None,
    published: Path | None = None,
) -> Path:
    """Write the corpus files into ``into`` (a version being staged; default
    ``config.output.dir``), shards on ``pool`` while this process splits the chips and writes
    the metadata; returns that directory. ``published`` is the
    current version, whose shards hold the chips whose work pixels were released."""
    corpus = into or config.output.dir
    chips = kept_chips(chips_index)
    records = {r["key"]: corpus_fields(r) for r in read_records(records_path)}
    _check_complete(chips, records)
    shards = plan_shards(chips, config.output.shard_size)
    compression = config.output.shard_compression
    sources = published_chips(published) if published else {}
    with shards_written(pool, corpus, shards, records, chip_dir, compression, sources):
        rule = split_rule(config)
        split = split_chips([split_chip(c, records[c["key"]]) for c in chips], rule)
        scenes = {s.item_id: s for s in read_scenes(scenes_path)}
        provenance = Provenance(config.digest(), scenes)
        _write_metadata(corpus / "metadata.parquet", chips, records, split, shards, provenance)
        _share(records_path, corpus / "records.jsonl")
        _share(scenes_path, corpus / SOURCES_FILE)
        manifest = build_manifest(config, chips_index, records, split, shards, rule)
        write_json_atomic(corpus / "manifest.json", manifest)
    _remove_stale_shards(corpus, shards)
    return corpus


def corpus_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The parts of a caption record the corpus files use (labels, sensor, place, crisis
    phases, land-cover fractions, land-use codes, two captions), in the record's own shape.
    The build process holds one per chip while it writes the corpus: the whole records
    (about 25 KB each as Python objects) made its memory grow with the corpus."""
    location = record["location"]
    captions = record["captions"]
    return {
        "labels": record["labels"],
        "sensor": {"sensor": record["sensor"]["sensor"]},
        "location": {k: location[k] for k in ("place", "country", "bbox") if k in location},
        "crisis": [
            {"phase": c["phase"], "label": c["label"], "event_id": c["event_id"]}
            for c in record["crisis"]
        ],
        "land_cover": {"fractions": record["land_cover"]["fractions"]},
        "land_use": {"classes": [{"code": c["code"]} for c in record["land_use"]["classes"]]},
        "captions": {"reference": captions["reference"], "sentence": captions["sentence"]},
    }


def split_rule(config: RunConfig) -> SplitRule:
    out = config.output
    return SplitRule(out.split_method, out.train_fraction, out.split_seed, out.geo_block_size)


def split_chip(chip: dict[str, Any], record: dict[str, Any]) -> SplitChip:
    return SplitChip(
        key=chip["key"],
        labels=tuple(record["labels"]),
        epsg=int(chip["epsg"]),
        col=int(chip["col"]),
        row=int(chip["row"]),
        sensor=chip["sensor"],
    )


def _share(source: Path, final: Path) -> None:
    """``final`` with the bytes of ``source``: a hard link (work files are replaced by rename,
    never rewritten in place, so the published file never changes), else a copy."""
    with atomic_path(final) as tmp:
        try:
            tmp.unlink()
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def published_chips(version: Path) -> dict[str, Path]:
    """Key -> the shard of ``version`` holding it (where released work pixels are read)."""
    path = version / "metadata.parquet"
    if not path.is_file():
        return {}
    meta = pd.read_parquet(path, columns=["key", "shard"])
    return {k: version / "shards" / s for k, s in zip(meta["key"], meta["shard"], strict=True)}


def _check_complete(chips: list[dict[str, Any]], records: dict[str, Any]) -> None:
    missing = [c["key"] for c in chips if c["key"] not in records]
    if missing:
        raise CorpusError(
            f"{len(missing)} kept chips have no caption record (first: {missing[0]}); "
            "re-run the caption stage"
        )


def _remove_stale_shards(corpus: Path, shards: dict[str, list[dict[str, Any]]]) -> None:
    for path in sorted((corpus / "shards").glob("*.h5")):
        if path.name not in shards:
            path.unlink()


@dataclass(frozen=True)
class Provenance:
    """Per-chip provenance: source item, its asset hrefs, baseline, read window, versions."""

    config_digest: str
    scenes: Mapping[str, Scene]

    def of(self, chip: dict[str, Any]) -> dict[str, Any]:
        scene = self.scenes.get(chip["item_id"])
        assets = {band: a.href for band, a in scene.assets.items()} if scene else {}
        return {
            "processing_baseline": chip.get("processing_baseline"),
            "assets": json.dumps(assets, sort_keys=True),
            "read_window": [float(v) for v in cell_of(chip).bounds],
            "software_version": chip.get("software") or pipeline.__version__,
            "config_digest": self.config_digest,
        }


def _write_metadata(
    path: Path,
    chips: list[dict[str, Any]],
    records: dict[str, Any],
    split: dict[str, str],
    shards: dict[str, list[dict[str, Any]]],
    provenance: Provenance,
) -> None:
    shard_of = {c["key"]: name for name, group in shards.items() for c in group}
    rows = [
        {
            **_metadata_row(c, records[c["key"]], split[c["key"]], shard_of[c["key"]]),
            **provenance.of(c),
        }
        for c in chips
    ]
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4326")
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def _metadata_row(
    chip: dict[str, Any], record: dict[str, Any], split: str, shard: str
) -> dict[str, Any]:
    loc = record["location"]
    post = [c for c in record["crisis"] if c["phase"] == "post"]
    return {
        "key": chip["key"],
        "sensor": chip["sensor"],
        "split": split,
        "labels": record["labels"],
        "labels_land_cover": sorted(
            k for k, v in record["land_cover"]["fractions"].items() if v >= 0.05
        ),
        "labels_land_use": [c["code"] for c in record["land_use"]["classes"]],
        "labels_crisis": sorted({c["label"] for c in post if c["label"] in record["labels"]}),
        "crisis_events": [c["event_id"] for c in post],
        "caption_reference": record["captions"]["reference"],
        "caption": record["captions"]["sentence"],
        "datetime": chip["datetime"],
        "item_id": chip["item_id"],
        "collection": chip["collection"],
        "epsg": int(chip["epsg"]),
        "cell": chip["cell"],
        "place": loc.get("place"),
        "country": loc.get("country"),
        "shard": shard,
        "pixel_sha256": chip["pixel_sha256"],
        "cloud_fraction": chip["cloud_fraction"],
        "nodata_fraction": chip["nodata_fraction"],
        "geometry": shapely.geometry.box(*loc["bbox"]),
    }
