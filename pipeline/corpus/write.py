"""The corpus stage: image shards, ``metadata.parquet``, caption records, sources and manifest.

Shards follow the CrisisLandMark release layout: one HDF5 group per image key holding
``image (B,120,120) float32`` and ``coords (2,120,120)`` (pixel-centre x/y in the chip
CRS), with attributes ``crs`` (EPSG code), ``timestamp`` and ``labels``. Chips are sharded
per sensor in acquisition order (datetime, key), so a refresh that adds newer scenes only
rewrites the last shard of each sensor and appends new ones.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import h5py
import numpy as np
import shapely.geometry

import pipeline
from pipeline.captions.stage import cell_of, kept_chips, read_records
from pipeline.chips.extract import scene_outputs
from pipeline.chips.grid import ChipGeometry
from pipeline.config import RunConfig
from pipeline.corpus.manifest import build_manifest
from pipeline.corpus.splits import SplitChip, SplitRule, split_chips
from pipeline.errors import CorpusError
from pipeline.progress import progress
from pipeline.sources.base import Scene
from pipeline.sources.select import read_scenes
from pipeline.storage import atomic_path, hdf5_atomic, write_json_atomic

SENSORS = ("s1", "s2")
SOURCES_FILE = "sources.parquet"


def write_corpus(
    config: RunConfig,
    scenes_path: Path,
    chips_index: Path,
    records_path: Path,
    chip_dir: Path,
    into: Path | None = None,
) -> Path:
    """Write the corpus files into ``into`` (a version being staged; default
    ``config.output.dir``); returns that directory."""
    corpus = into or config.output.dir
    chips = kept_chips(chips_index)
    records = {r["key"]: r for r in read_records(records_path)}
    _check_complete(chips, records)
    rule = split_rule(config)
    split = split_chips([split_chip(c, records[c["key"]]) for c in chips], rule)
    shards = plan_shards(chips, config.output.shard_size)
    write_shards(corpus, shards, records, chip_dir)
    _remove_stale_shards(corpus, shards)
    scenes = {s.item_id: s for s in read_scenes(scenes_path)}
    provenance = Provenance(config.digest(), scenes)
    _write_metadata(corpus / "metadata.parquet", chips, records, split, shards, provenance)
    _copy(records_path, corpus / "records.jsonl")
    _copy(scenes_path, corpus / SOURCES_FILE)
    manifest = build_manifest(config, chips_index, records, split, shards, rule)
    write_json_atomic(corpus / "manifest.json", manifest)
    return corpus


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


def _copy(source: Path, final: Path) -> None:
    with atomic_path(final) as tmp:
        shutil.copyfile(source, tmp)


def _check_complete(chips: list[dict[str, Any]], records: dict[str, Any]) -> None:
    missing = [c["key"] for c in chips if c["key"] not in records]
    if missing:
        raise CorpusError(
            f"{len(missing)} kept chips have no caption record (first: {missing[0]}); "
            "re-run the caption stage"
        )


def plan_shards(
    chips: Sequence[dict[str, Any]], shard_size: int
) -> dict[str, list[dict[str, Any]]]:
    """Shard name -> its chips: per sensor, in (datetime, key) order, ``shard_size`` per shard."""
    shards: dict[str, list[dict[str, Any]]] = {}
    for sensor in SENSORS:
        group = sorted(
            (c for c in chips if c["sensor"] == sensor), key=lambda c: (c["datetime"], c["key"])
        )
        for start in range(0, len(group), shard_size):
            shards[f"{sensor}-{start // shard_size:05d}.h5"] = group[start : start + shard_size]
    return shards


def shard_digest(chips: Sequence[dict[str, Any]], records: dict[str, Any]) -> str:
    text = "\n".join(
        f"{c['key']} {c['pixel_sha256']} {'.'.join(records[c['key']]['labels'])}" for c in chips
    )
    return hashlib.sha256(text.encode()).hexdigest()


def write_shards(
    corpus: Path, shards: dict[str, list[dict[str, Any]]], records: dict[str, Any], chip_dir: Path
) -> list[str]:
    """Write every shard whose content changed; returns the names written (others kept)."""
    written = []
    with progress(sum(len(v) for v in shards.values()), "chip", "shards") as bar:
        for name, chips in shards.items():
            path = corpus / "shards" / name
            digest = shard_digest(chips, records)
            if not shard_is_current(path, digest):
                _write_shard(path, chips, records, chip_dir, digest)
                written.append(name)
            bar.update(len(chips))
    return written


def _write_shard(
    path: Path,
    chips: Sequence[dict[str, Any]],
    records: dict[str, Any],
    chip_dir: Path,
    digest: str,
) -> None:
    with hdf5_atomic(path, track_order=True) as h5:
        for chip, image in _images(chips, chip_dir):
            _write_chip(h5, chip, image, records[chip["key"]]["labels"])
        h5.attrs["content_sha256"] = digest


def shard_is_current(path: Path, digest: str) -> bool:
    if not path.exists():
        return False
    try:
        with h5py.File(path, "r") as h5:
            return bool(h5.attrs.get("content_sha256") == digest)
    except OSError:  # unreadable (e.g. truncated by a full disk): rewrite it
        return False


def _images(
    chips: Sequence[dict[str, Any]], chip_dir: Path
) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    open_files: dict[str, h5py.File] = {}
    try:
        for chip in chips:
            item = chip["item_id"]
            if item not in open_files:
                h5_path = scene_outputs(chip_dir, item, chip["inputs_digest"])[0]
                open_files[item] = h5py.File(h5_path, "r")
            yield chip, open_files[item][chip["key"]][()]
    finally:
        for fh in open_files.values():
            fh.close()


def pixel_coords(cell: ChipGeometry) -> np.ndarray:
    """(2, H, W) pixel-centre x and y of a chip in its CRS."""
    minx, _, _, maxy = cell.bounds
    centres = (np.arange(cell.pixels) + 0.5) * cell.pixel_size
    xs, ys = np.meshgrid(minx + centres, maxy - centres)
    return np.stack([xs, ys])


def _write_chip(h5: h5py.File, chip: dict[str, Any], image: np.ndarray, labels: list[str]) -> None:
    group = h5.create_group(chip["key"])
    opts = {"compression": "gzip", "compression_opts": 4, "shuffle": True, "track_times": False}
    group.create_dataset("image", data=image.astype(np.float32), **opts)
    group.create_dataset("coords", data=pixel_coords(cell_of(chip)), **opts)
    group.attrs["crs"] = int(chip["epsg"])
    group.attrs["timestamp"] = chip["datetime"]
    group.attrs["labels"] = np.array(sorted(labels), dtype=h5py.string_dtype())


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
