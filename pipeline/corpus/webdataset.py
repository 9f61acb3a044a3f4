"""The WebDataset view of a corpus: tar shards per sensor and split, for streaming training.

``webdataset/{sensor}-{split}-{NNNNN}.tar`` holds the samples of one sensor and split in
key order; each sample has ``<key>.image.npy`` (the float32 image as in the HDF5 shards),
``<key>.json`` (the caption record), ``<key>.txt`` (reference caption) and
``<key>.sentence.txt``. Tar headers carry a fixed mtime, owner and mode, so the same
corpus always gives the same bytes.
``webdataset/index.json`` lists the shards with their sample counts and digests.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from pipeline.errors import CorpusError
from pipeline.storage import atomic_path, write_json_atomic

WDS_DIR = "webdataset"
INDEX_NAME = "index.json"
SENSORS = ("s1", "s2")
SPLITS = ("train", "corpus")
TAR_MTIME = 0


def write_webdataset(corpus_dir: Path, shard_size: int = 512) -> list[Path]:
    """Write (or refresh) the tar shards of ``corpus_dir``; returns their paths in order."""
    if shard_size < 1:
        raise CorpusError(f"shard_size must be at least 1, got {shard_size}")
    corpus_dir = Path(corpus_dir)
    meta = read_corpus_metadata(corpus_dir)
    records = read_records_by_key(corpus_dir / "records.jsonl")
    entries = []
    for (sensor, split), group in _groups(meta):
        for number, start in enumerate(range(0, len(group), shard_size)):
            rows = group.iloc[start : start + shard_size]
            path = corpus_dir / WDS_DIR / f"{sensor}-{split}-{number:05d}.tar"
            digest = _write_shard(path, corpus_dir, rows, records)
            entries.append(_index_entry(path, sensor, split, rows, digest))
    _remove_stale(corpus_dir / WDS_DIR, {e["path"] for e in entries})
    write_json_atomic(corpus_dir / WDS_DIR / INDEX_NAME, {"version": 1, "shards": entries})
    return [corpus_dir / WDS_DIR / e["path"] for e in entries]


def read_corpus_metadata(corpus_dir: Path) -> pd.DataFrame:
    """key, sensor, split, shard of every chip, sorted by sensor and key."""
    path = Path(corpus_dir) / "metadata.parquet"
    if not path.is_file() or not (Path(corpus_dir) / "records.jsonl").is_file():
        raise CorpusError(
            f"{corpus_dir} has no metadata.parquet/records.jsonl; build the corpus first "
            "(`clm build --config CONFIG --out DIR`)"
        )
    meta = pd.read_parquet(path, columns=["key", "sensor", "split", "shard"])
    bad = [k for k in meta["key"] if "." in k]
    if bad:
        raise CorpusError(
            f"chip key {bad[0]!r} contains a dot, which WebDataset reads as an extension; "
            "rebuild the corpus with dot-free keys"
        )
    return meta.sort_values(["sensor", "key"], kind="stable").reset_index(drop=True)


def read_records_by_key(path: Path) -> dict[str, dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return {r["key"]: r for r in map(json.loads, fh) if r}


def _groups(meta: pd.DataFrame) -> Iterator[tuple[tuple[str, str], pd.DataFrame]]:
    for sensor in SENSORS:
        for split in SPLITS:
            group = meta[(meta["sensor"] == sensor) & (meta["split"] == split)]
            if len(group):
                yield (sensor, split), group


def _write_shard(
    path: Path, corpus_dir: Path, rows: pd.DataFrame, records: dict[str, dict[str, Any]]
) -> str:
    """Write one tar under a temporary name, then rename it; returns its sha256."""
    with atomic_path(path) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for key, image in _images(corpus_dir, rows):
                for name, data in sample_members(key, image, _record(records, key)):
                    _add_member(tar, name, data)
        return _sha256(tmp)


def _record(records: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    if key not in records:
        raise CorpusError(
            f"chip {key} is in metadata.parquet but not in records.jsonl; rebuild the corpus"
        )
    return records[key]


def sample_members(key: str, image: np.ndarray, record: dict[str, Any]) -> list[tuple[str, bytes]]:
    """The tar members of one sample, in the order they are written."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(image, dtype=np.float32), allow_pickle=False)
    captions = record.get("captions", {})
    return [
        (f"{key}.image.npy", buf.getvalue()),
        (f"{key}.json", json.dumps(record, sort_keys=True, ensure_ascii=False).encode()),
        (f"{key}.txt", str(captions.get("reference", "")).encode()),
        (f"{key}.sentence.txt", str(captions.get("sentence", "")).encode()),
    ]


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), TAR_MTIME, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def _images(corpus_dir: Path, rows: pd.DataFrame) -> Iterator[tuple[str, np.ndarray]]:
    open_files: dict[str, h5py.File] = {}
    try:
        for key, shard in zip(rows["key"], rows["shard"], strict=True):
            if shard not in open_files:
                path = corpus_dir / "shards" / shard
                if not path.is_file():
                    raise CorpusError(f"shard {path} (listed for {key}) is missing; rebuild")
                open_files[shard] = h5py.File(path, "r")
            yield key, open_files[shard][key]["image"][()]
    finally:
        for fh in open_files.values():
            fh.close()


def _index_entry(
    path: Path, sensor: str, split: str, rows: pd.DataFrame, digest: str
) -> dict[str, Any]:
    keys: Sequence[str] = list(rows["key"])
    return {
        "path": path.name,
        "sensor": sensor,
        "split": split,
        "count": len(keys),
        "first_key": keys[0],
        "last_key": keys[-1],
        "sha256": digest,
    }


def _remove_stale(folder: Path, keep: set[str]) -> None:
    for path in sorted(folder.glob("*.tar")):
        if path.name not in keep:
            path.unlink()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_webdataset_index(corpus_dir: Path) -> list[dict[str, Any]]:
    """The shard list written by ``write_webdataset``; a clear error when it is missing."""
    path = Path(corpus_dir) / WDS_DIR / INDEX_NAME
    if not path.is_file():
        raise CorpusError(
            f"{path} is missing; write the WebDataset view first "
            "(pipeline.corpus.webdataset.write_webdataset or `clm train`, which writes it)"
        )
    shards: list[dict[str, Any]] = json.loads(path.read_text())["shards"]
    return shards


def ensure_webdataset(corpus_dir: Path, shard_size: int = 512) -> list[Path]:
    """The shard paths, writing the view first when its index is missing or out of date."""
    corpus_dir = Path(corpus_dir)
    index = corpus_dir / WDS_DIR / INDEX_NAME
    metadata = corpus_dir / "metadata.parquet"
    if index.is_file() and index.stat().st_mtime >= metadata.stat().st_mtime:
        shards = read_webdataset_index(corpus_dir)
        paths = [corpus_dir / WDS_DIR / s["path"] for s in shards]
        if all(p.is_file() for p in paths):
            return paths
    return write_webdataset(corpus_dir, shard_size)
