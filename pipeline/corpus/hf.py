"""The Hugging Face-ready export (``clm export --format hf``): Parquet shards and a dataset card.

One config per sensor (``s2``: 12 bands, ``s1``: 2 bands), so every row of a config has an
image of the same shape: ``data/{sensor}/{split}-NNNNN-of-MMMMM.parquet`` with splits
``train`` and ``test`` (the retrieval corpus, named as in the CrisisLandMark release).
Pixels are stored as arrays, not encoded bytes: ``image`` is a nested float32 list
``(B, 120, 120)`` exactly as in the HDF5 shards, so ``ds.with_format("numpy" | "torch")``
gives ``(B, 120, 120)`` float32 arrays without a decode step, and pandas / pyarrow /
DuckDB read the same column as nested lists (Parquet compresses it with zstd).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import geopandas as gpd
import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.corpus.export_dir import atomic_dir
from pipeline.corpus.hf_card import SENSOR_BANDS, dataset_card
from pipeline.corpus.webdataset import CAPTION_KEYS, read_records_by_key
from pipeline.errors import CorpusError

SPLITS = {"train": "train", "corpus": "test"}
DEFAULT_ROWS_PER_SHARD = 256
STRING_COLUMNS = ("key", "sensor", "split", "datetime", "place", "country", "item_id", "collection")
LIST_COLUMNS = {"labels": "string", "labels_land_cover": "string", "labels_crisis": "string"}


def hf_schema() -> pa.Schema:
    """The Arrow schema of every Parquet shard (both sensors; only the band count differs)."""
    pixel = pa.list_(pa.list_(pa.list_(pa.float32())))
    fields = [pa.field("image", pixel)]
    fields += [pa.field(c, pa.string()) for c in STRING_COLUMNS]
    fields += [pa.field(f"caption_{k}", pa.string()) for k in CAPTION_KEYS]
    fields += [pa.field(c, pa.list_(pa.string())) for c in LIST_COLUMNS]
    fields += [pa.field("labels_land_use", pa.list_(pa.int64()))]
    fields += [pa.field(c, pa.float64()) for c in ("lon", "lat")]
    fields += [pa.field("bbox", pa.list_(pa.float64())), pa.field("epsg", pa.int64())]
    return pa.schema(fields)


def export_hf(corpus: Path, out: Path, rows_per_shard: int = DEFAULT_ROWS_PER_SHARD) -> list[Path]:
    """Write the Parquet shards and ``README.md`` of ``corpus`` into ``out`` (replaced whole)."""
    if rows_per_shard < 1:
        raise CorpusError(f"rows per Parquet shard must be at least 1, got {rows_per_shard}")
    corpus = Path(corpus)
    meta = hf_rows(corpus)
    counts: dict[str, dict[str, int]] = {s: {} for s in SENSOR_BANDS if s in set(meta["sensor"])}
    sizes: dict[str, dict[str, int]] = {s: {} for s in counts}
    with atomic_dir(out) as tmp:
        for (sensor, split), group in meta.groupby(["sensor", "split"], sort=True):
            paths = write_config_split(corpus, tmp, group, rows_per_shard)
            counts[str(sensor)][str(split)] = len(group)
            sizes[str(sensor)][str(split)] = sum(p.stat().st_size for p in paths)
        manifest = json.loads((corpus / "manifest.json").read_text())
        card = dataset_card(manifest, counts, hf_schema(), sizes)
        (tmp / "README.md").write_text(card, "utf-8")
    return sorted(p for p in out.rglob("*") if p.is_file())


def hf_rows(corpus: Path) -> pd.DataFrame:
    """One row per chip: the metadata columns of the export (no pixels yet), by key."""
    meta = gpd.read_parquet(corpus / "metadata.parquet")
    records = read_records_by_key(corpus / "records.jsonl")
    frame = pd.DataFrame(
        {c: meta[c].astype(str) for c in STRING_COLUMNS if c not in ("split", "place", "country")}
    )
    frame["split"] = meta["split"].map(SPLITS)
    frame["place"] = meta["place"].fillna("").astype(str)
    frame["country"] = meta["country"].fillna("").astype(str)
    for k in CAPTION_KEYS:
        frame[f"caption_{k}"] = [str(records[key]["captions"].get(k) or "") for key in meta["key"]]
    for column in LIST_COLUMNS:
        frame[column] = [sorted(str(v) for v in values) for values in meta[column]]
    frame["labels_land_use"] = [[int(v) for v in values] for values in meta["labels_land_use"]]
    frame["lon"] = [float(records[key]["location"]["lon"]) for key in meta["key"]]
    frame["lat"] = [float(records[key]["location"]["lat"]) for key in meta["key"]]
    frame["bbox"] = [list(g.bounds) for g in meta.geometry]
    frame["epsg"] = meta["epsg"].astype("int64")
    frame["shard"] = meta["shard"]
    return frame.sort_values("key", kind="stable").reset_index(drop=True)


def write_config_split(
    corpus: Path, folder: Path, group: pd.DataFrame, rows_per_shard: int
) -> list[Path]:
    """``data/{sensor}/{split}-NNNNN-of-MMMMM.parquet`` for one sensor and split."""
    sensor, split = group["sensor"].iloc[0], group["split"].iloc[0]
    schema = hf_schema()
    starts = range(0, len(group), rows_per_shard)
    paths = []
    for number, start in enumerate(starts):
        rows = group.iloc[start : start + rows_per_shard]
        path = folder / "data" / sensor / f"{split}-{number:05d}-of-{len(starts):05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        columns = {c: rows[c].tolist() for c in schema.names if c != "image"}
        columns["image"] = pixel_array(list(_images(corpus, rows)))
        pq.write_table(pa.Table.from_pydict(columns, schema=schema), path, compression="zstd")
        paths.append(path)
    return paths


def pixel_array(images: Sequence[np.ndarray]) -> pa.Array:
    """(B, H, W) float32 images as one nested list column, built from the flat pixels."""
    if not images:
        return pa.array([], pa.list_(pa.list_(pa.list_(pa.float32()))))
    stack = np.stack(images).astype(np.float32, copy=False)
    n, bands, height, width = stack.shape
    values = pa.array(stack.ravel(), pa.float32())
    rows = pa.ListArray.from_arrays(_offsets(n * bands * height, width), values)
    planes = pa.ListArray.from_arrays(_offsets(n * bands, height), rows)
    return pa.ListArray.from_arrays(_offsets(n, bands), planes)


def _offsets(count: int, step: int) -> pa.Array:
    return pa.array(np.arange(0, count * step + 1, step, dtype=np.int32))


def _images(corpus: Path, rows: pd.DataFrame) -> Iterator[np.ndarray]:
    files: dict[str, h5py.File] = {}
    try:
        for key, shard in zip(rows["key"], rows["shard"], strict=True):
            if shard not in files:
                path = corpus / "shards" / shard
                if not path.is_file():
                    raise CorpusError(f"shard {path} (listed for {key}) is missing; rebuild")
                files[shard] = h5py.File(path, "r")
            yield files[shard][key]["image"][()].astype(np.float32)
    finally:
        for fh in files.values():
            fh.close()
