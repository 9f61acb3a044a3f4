"""The WebDataset view of a corpus: tar shards per sensor and split, for streaming training.

``webdataset/{sensor}-{split}-{NNNNN}.tar`` holds the samples of one sensor and split in
key order; each sample has ``<key>.image.npy.gz`` (the float32 image as in the HDF5 shards,
as ``.npy`` compressed with gzip: both the ``webdataset`` package and Hugging Face ``datasets``
decompress ``.gz`` members and decode ``.npy``; level ``NPY_GZIP_LEVEL``, measured in
docs/corpus-format.md),
``<key>.json`` (a fixed-schema header, ``sample_header``: every field always present and typed,
the full caption record as JSON text in ``record``), ``<key>.txt`` (reference caption) and
``<key>.sentence.txt``. The fixed header lets readers that infer a schema from the first
samples (Hugging Face ``datasets``) read every sample. Tar headers carry a fixed mtime, owner and mode, so the same
corpus always gives the same bytes.
``webdataset/index.json`` lists the shards with their sample counts and digests.

Each tar is one task on the executor (``pipeline.engine.executor``); the index is assembled in
shard order, so the bytes do not depend on the number of workers.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import io
import json
import tarfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from pipeline.errors import CorpusError
from pipeline.progress import Progress, progress
from pipeline.storage import atomic_path, write_json_atomic, write_text_atomic

WDS_DIR = "webdataset"
INDEX_NAME = "index.json"
CARD_NAME = "README.md"
SENSORS = ("s1", "s2")
SPLITS = ("train", "corpus")
TAR_MTIME = 0
CAPTION_KEYS = ("reference", "sentence", "short", "land_use", "crisis")
IMAGE_MEMBER = "image.npy.gz"
NPY_GZIP_LEVEL = 1  # 4x the speed of level 6 for 12 % more bytes (docs/corpus-format.md)


@dataclass(frozen=True)
class TarTask:
    """One tar shard to write: its samples (key, HDF5 shard) and their caption records."""

    path: Path
    corpus_dir: Path
    sensor: str
    split: str
    keys: tuple[str, ...]
    shards: tuple[str, ...]
    records: Mapping[str, dict[str, Any]]


def write_webdataset(
    corpus_dir: Path, shard_size: int = 512, pool: cf.Executor | None = None
) -> list[Path]:
    """Write (or refresh) the tar shards of ``corpus_dir`` on ``pool`` (default: here);
    returns their paths in order."""
    if shard_size < 1:
        raise CorpusError(f"shard_size must be at least 1, got {shard_size}")
    corpus_dir = Path(corpus_dir)
    tasks = plan_tars(corpus_dir, shard_size)
    with progress(sum(len(t.keys) for t in tasks), "sample", "webdataset") as bar:
        if pool is None:
            digests = {}
            for task in tasks:
                digests[task.path.name] = write_tar(task)
                bar.update(len(task.keys))
        else:
            digests = _run(pool, tasks, bar)
    entries = [_index_entry(t, digests[t.path.name]) for t in tasks]
    _remove_stale(corpus_dir / WDS_DIR, {e["path"] for e in entries})
    write_json_atomic(corpus_dir / WDS_DIR / INDEX_NAME, {"version": 1, "shards": entries})
    write_text_atomic(
        corpus_dir / WDS_DIR / CARD_NAME, _card(sorted({e["split"] for e in entries}))
    )
    return [corpus_dir / WDS_DIR / e["path"] for e in entries]


def plan_tars(corpus_dir: Path, shard_size: int) -> list[TarTask]:
    meta = read_corpus_metadata(corpus_dir)
    records = read_records_by_key(corpus_dir / "records.jsonl")
    tasks = []
    for (sensor, split), group in _groups(meta):
        for number, start in enumerate(range(0, len(group), shard_size)):
            rows = group.iloc[start : start + shard_size]
            keys = tuple(rows["key"])
            tasks.append(
                TarTask(
                    corpus_dir / WDS_DIR / f"{sensor}-{split}-{number:05d}.tar",
                    corpus_dir,
                    sensor,
                    split,
                    keys,
                    tuple(rows["shard"]),
                    {k: _record(records, k) for k in keys},
                )
            )
    return tasks


def _run(pool: cf.Executor, tasks: Sequence[TarTask], bar: Progress) -> dict[str, str]:
    """Tar name -> sha256, whatever order the tasks finish in."""
    names = {pool.submit(write_tar, t): t for t in tasks}
    digests = {}
    for future in cf.as_completed(names):
        task = names.pop(future)  # dropped: the cluster forgets the task and its payload
        digests[task.path.name] = future.result()
        bar.update(len(task.keys))
    return digests


def _card(splits: Sequence[str]) -> str:
    """A dataset card naming the split of every tar, so ``datasets.load_dataset(<this folder>)``
    reads both splits (its own split inference knows ``train`` but not ``corpus``)."""
    files = "".join(f'  - split: {s}\n    path: "*-{s}-*.tar"\n' for s in splits)
    return (
        "---\nconfigs:\n- config_name: default\n  data_files:\n" + files + "---\n"
        "# CrisisLandMark corpus, WebDataset view\n\n"
        "Tar shards `{sensor}-{split}-NNNNN.tar`; see `docs/corpus-format.md` of the builder.\n"
    )


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


def write_tar(task: TarTask) -> str:
    """Write one tar under a temporary name, then rename it; returns its sha256."""
    with atomic_path(task.path) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for key, image in _images(task.corpus_dir, task.keys, task.shards):
                members = sample_members(key, image, task.records[key], task.sensor, task.split)
                for name, data in members:
                    _add_member(tar, name, data)
        return _sha256(tmp)


def _record(records: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    if key not in records:
        raise CorpusError(
            f"chip {key} is in metadata.parquet but not in records.jsonl; rebuild the corpus"
        )
    return records[key]


def sample_members(
    key: str, image: np.ndarray, record: dict[str, Any], sensor: str, split: str
) -> list[tuple[str, bytes]]:
    """The tar members of one sample, in the order they are written."""
    captions = record.get("captions", {})
    header = sample_header(key, record, sensor, split)
    return [
        (f"{key}.{IMAGE_MEMBER}", encode_image(image)),
        (f"{key}.json", json.dumps(header, sort_keys=True, ensure_ascii=False).encode()),
        (f"{key}.txt", str(captions.get("reference", "")).encode()),
        (f"{key}.sentence.txt", str(captions.get("sentence", "")).encode()),
    ]


def encode_image(image: np.ndarray) -> bytes:
    """``.npy.gz``: the float32 ``.npy`` in a gzip stream (mtime 0, so the bytes repeat)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(image, dtype=np.float32), allow_pickle=False)
    return zlib.compress(buf.getvalue(), NPY_GZIP_LEVEL, wbits=31)


def decode_image(members: Mapping[str, bytes]) -> np.ndarray:
    """The image of a sample's tar members (``IMAGE_MEMBER``; an older ``image.npy`` too)."""
    if IMAGE_MEMBER in members:
        data = zlib.decompress(members[IMAGE_MEMBER], wbits=31)
    else:
        data = members["image.npy"]
    return np.load(io.BytesIO(data), allow_pickle=False)


def sample_header(key: str, record: dict[str, Any], sensor: str, split: str) -> dict[str, Any]:
    """The JSON member: the same fields with the same types in every sample, no nulls.

    ``captions`` holds every variant of ``CAPTION_KEYS`` ("" when a chip has none), ``labels``
    the sorted reference labels, ``location`` the chip centre; ``record`` is the complete
    caption record as JSON text (its nested lists and maps vary from chip to chip).
    """
    captions = record.get("captions", {})
    loc = record.get("location", {})
    return {
        "key": key,
        "sensor": sensor,
        "split": split,
        "datetime": str(record.get("acquisition", {}).get("datetime", "")),
        "labels": sorted(str(v) for v in record.get("labels", [])),
        "captions": {k: str(captions.get(k) or "") for k in CAPTION_KEYS},
        "location": {
            "lon": float(loc.get("lon", float("nan"))),
            "lat": float(loc.get("lat", float("nan"))),
            "epsg": int(loc.get("epsg") or 0),
            "place": str(loc.get("place") or ""),
            "country": str(loc.get("country") or ""),
        },
        "record": json.dumps(record, sort_keys=True, ensure_ascii=False),
    }


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), TAR_MTIME, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def _images(
    corpus_dir: Path, keys: Sequence[str], shards: Sequence[str]
) -> Iterator[tuple[str, np.ndarray]]:
    open_files: dict[str, h5py.File] = {}
    try:
        for key, shard in zip(keys, shards, strict=True):
            if shard not in open_files:
                path = corpus_dir / "shards" / shard
                if not path.is_file():
                    raise CorpusError(f"shard {path} (listed for {key}) is missing; rebuild")
                open_files[shard] = h5py.File(path, "r")
            yield key, open_files[shard][key]["image"][()]
    finally:
        for fh in open_files.values():
            fh.close()


def _index_entry(task: TarTask, digest: str) -> dict[str, Any]:
    keys = task.keys
    return {
        "path": task.path.name,
        "sensor": task.sensor,
        "split": task.split,
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
    """The shard paths, writing the view first when its index is missing or out of date: into
    a new published version (under the writer lock) when ``corpus_dir`` holds published
    versions, else in place."""
    corpus_dir = Path(corpus_dir)
    index = corpus_dir / WDS_DIR / INDEX_NAME
    metadata = corpus_dir / "metadata.parquet"
    if index.is_file() and index.stat().st_mtime >= metadata.stat().st_mtime:
        shards = read_webdataset_index(corpus_dir)
        paths = [corpus_dir / WDS_DIR / s["path"] for s in shards]
        if all(p.is_file() for p in paths):
            return paths
    from pipeline.corpus.export import export_view
    from pipeline.corpus.publish import current_version

    if current_version(corpus_dir) is None:
        return write_webdataset(corpus_dir, shard_size)
    export_view(corpus_dir, "webdataset", shard_size)
    return [corpus_dir / WDS_DIR / s["path"] for s in read_webdataset_index(corpus_dir)]
