"""Embed a corpus split with a trained run and build its search index (``clm embed``).

    load_trained_model -> encode_split (WebDataset stream, both sensors) -> build_index
    -> write_index (temporary folder, then renamed into <run>/index/)

``<run>/index/`` holds ``index.faiss`` (inner product over L2-normalised vectors, i.e.
cosine), ``keys.parquet`` (row ``i`` = FAISS id ``i``: key, sensor, lon, lat, labels,
captions), ``embeddings.npy`` and ``index.json``. Rows are sorted by sensor then key.
The index kind follows the size: exact ``flat`` up to ``FLAT_MAX`` vectors, ``hnsw``
above; ``ivf`` on request. Re-running with the same model and corpus does nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline.corpus.webdataset import (
    WDS_DIR,
    decode_image,
    ensure_webdataset,
    read_webdataset_index,
)
from pipeline.model.closp import CLOSP, device_for
from pipeline.model.data import iter_tar, mask_filled_bands
from pipeline.model.errors import ConfigError
from pipeline.model.run import INDEX_DIR, MODEL_FILE, load_trained_model

FLAT_MAX = 100_000
INDEX_KINDS = ("auto", "flat", "hnsw", "ivf")
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 128


def embed_corpus(
    run_dir: Path,
    corpus_dir: Path,
    split: str = "corpus",
    batch_size: int = 64,
    device: str = "auto",
    index_kind: str = "auto",
) -> Path:
    """Embed ``split`` of ``corpus_dir`` with the run's model into ``<run>/index``; returns it."""
    if index_kind not in INDEX_KINDS:
        raise ConfigError(f"index kind {index_kind!r} is unknown; use one of {INDEX_KINDS}")
    run_dir, corpus_dir = Path(run_dir), Path(corpus_dir)
    ensure_webdataset(corpus_dir)
    info = index_info(run_dir, corpus_dir, split)
    folder = run_dir / INDEX_DIR
    if _is_current(folder, info, index_kind):
        return folder
    model = load_trained_model(run_dir, device_for(device))
    table, vectors = encode_split(model, corpus_dir, split, batch_size)
    kind = choose_index(len(vectors)) if index_kind == "auto" else index_kind
    index = build_index(vectors, kind)
    write_index(folder, index, table, vectors, {**info, "kind": kind, "requested": index_kind})
    return folder


def index_info(run_dir: Path, corpus_dir: Path, split: str) -> dict[str, Any]:
    """What an index is built from: the model file's digest and the split's shard digests."""
    shards = [s for s in read_webdataset_index(corpus_dir) if s["split"] == split]
    if not shards:
        raise ConfigError(f"{corpus_dir} has no chips in the {split!r} split; check --split")
    model = run_dir / MODEL_FILE
    if not model.is_file():
        raise ConfigError(f"{run_dir} has no {MODEL_FILE}; train it first (`clm train`)")
    return {
        "corpus": str(corpus_dir.resolve()),
        "split": split,
        "model_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        "shards": [s["sha256"] for s in shards],
    }


def _is_current(folder: Path, info: dict[str, Any], index_kind: str) -> bool:
    saved = folder / "index.json"
    if not saved.is_file() or not (folder / "index.faiss").is_file():
        return False
    previous = json.loads(saved.read_text())
    same = all(previous.get(k) == v for k, v in info.items())
    return same and index_kind in ("auto", previous.get("kind"))


def iter_split(corpus_dir: Path, split: str) -> Iterator[tuple[str, str, dict[str, bytes]]]:
    """(sensor, key, members) of every chip in ``split``, by sensor then key."""
    shards = [s for s in read_webdataset_index(corpus_dir) if s["split"] == split]
    for shard in sorted(shards, key=lambda s: (s["sensor"], s["path"])):
        for key, members in iter_tar(corpus_dir / WDS_DIR / shard["path"]):
            yield shard["sensor"], key, members


@torch.no_grad()
def encode_split(
    model: CLOSP, corpus_dir: Path, split: str, batch_size: int = 64
) -> tuple[pd.DataFrame, np.ndarray]:
    """The key table and the (N, D) float32 image embeddings of a split, row-aligned."""
    rows: list[dict[str, Any]] = []
    chunks: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    pending_sensor = None
    for sensor, key, members in iter_split(corpus_dir, split):
        if pending and (sensor != pending_sensor or len(pending) == batch_size):
            chunks.append(_encode(model, pending, pending_sensor))
            pending = []
        pending_sensor = sensor
        record = json.loads(members["json"])
        pending.append(mask_filled_bands(decode_image(members), record))
        rows.append(_row(sensor, key, record))
    if pending:
        chunks.append(_encode(model, pending, pending_sensor))
    table = pd.DataFrame(rows)
    table.insert(0, "id", np.arange(len(table), dtype=np.int64))
    return table, np.concatenate(chunks).astype(np.float32)


def _encode(model: CLOSP, images: list[np.ndarray], sensor: str | None) -> np.ndarray:
    batch = torch.from_numpy(np.stack(images).astype(np.float32, copy=False))
    return model.encode_image(batch, str(sensor)).float().cpu().numpy()


def _row(sensor: str, key: str, record: dict[str, Any]) -> dict[str, Any]:
    location, captions = record.get("location", {}), record.get("captions", {})
    return {
        "key": key,
        "sensor": sensor,
        "lon": float(location.get("lon", math.nan)),
        "lat": float(location.get("lat", math.nan)),
        "labels": sorted(record.get("labels", [])),
        "caption": captions.get("reference", ""),
        "sentence": captions.get("sentence", ""),
    }


def choose_index(n: int) -> str:
    """Exact search while it is cheap; a graph index above ``FLAT_MAX`` vectors."""
    return "flat" if n <= FLAT_MAX else "hnsw"


def build_index(vectors: np.ndarray, kind: str) -> Any:
    """A FAISS inner-product index of ``kind`` holding ``vectors`` with ids 0..N-1."""
    import faiss

    dim = vectors.shape[1]
    index: Any
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    elif kind == "ivf":
        nlist = max(1, min(int(4 * math.sqrt(len(vectors))), len(vectors) // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = max(1, nlist // 16)
    else:
        raise ConfigError(f"index kind {kind!r} is unknown; use one of {INDEX_KINDS[1:]}")
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def write_index(
    folder: Path, index: Any, table: pd.DataFrame, vectors: np.ndarray, info: dict[str, Any]
) -> Path:
    """Write the index files into a temporary sibling folder, then swap it into place."""
    import faiss

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        faiss.write_index(index, str(tmp / "index.faiss"))
        table.to_parquet(tmp / "keys.parquet", index=False)
        np.save(tmp / "embeddings.npy", vectors)
        counts = table.groupby("sensor").size().to_dict()
        meta = {**info, "count": len(table), "dim": int(vectors.shape[1]), "sensors": counts}
        (tmp / "index.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        _swap(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _swap(new: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)
