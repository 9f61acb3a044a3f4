"""The WebDataset view: tar shards per sensor and split, deterministic bytes, readable samples."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from pipeline.corpus.webdataset import (
    ensure_webdataset,
    read_webdataset_index,
    write_webdataset,
)
from pipeline.errors import CorpusError

LABELS = [["water"], ["crops", "built"], ["trees"], ["crops", "flooded area"], ["grass"]]


def make_corpus(root: Path, n: int = 10) -> Path:
    """A minimal corpus: HDF5 shards, metadata.parquet and records.jsonl for ``n`` chips."""
    rng = np.random.default_rng(0)
    rows, records = [], []
    (root / "shards").mkdir(parents=True)
    for i in range(n):
        sensor = "s2" if i % 2 else "s1"
        key = f"ITEM{sensor.upper()}_{i:03d}_{100 + i}"
        labels = LABELS[i % len(LABELS)]
        split = "train" if i % 5 == 0 else "corpus"
        rows.append({"key": key, "sensor": sensor, "split": split, "shard": f"{sensor}-00000.h5"})
        records.append(
            {
                "key": key,
                "labels": labels,
                "captions": {"reference": ". ".join(sorted(labels)), "sentence": f"chip {i}."},
                "location": {"lon": 10.0 + i / 100, "lat": 45.0},
            }
        )
    for sensor, bands in (("s1", 2), ("s2", 12)):
        with h5py.File(root / "shards" / f"{sensor}-00000.h5", "w") as h5:
            for row in rows:
                if row["sensor"] == sensor:
                    h5.create_group(row["key"])["image"] = rng.random((bands, 8, 8), np.float32)
    pd.DataFrame(rows).to_parquet(root / "metadata.parquet")
    (root / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


@pytest.fixture
def corpus(tmp_path):
    return make_corpus(tmp_path / "corpus")


def read_tar(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return tar.getmembers()


def test_shards_per_sensor_and_split_in_key_order(corpus):
    paths = write_webdataset(corpus, shard_size=512)
    names = [p.name for p in paths]
    assert names == [
        "s1-train-00000.tar",
        "s1-corpus-00000.tar",
        "s2-train-00000.tar",
        "s2-corpus-00000.tar",
    ]
    meta = pd.read_parquet(corpus / "metadata.parquet")
    for path in paths:
        sensor, split = path.name.split("-")[:2]
        expected = sorted(meta[(meta.sensor == sensor) & (meta.split == split)]["key"])
        members = [m.name for m in read_tar(path)]
        assert members[::4] == [f"{k}.image.npy.gz" for k in expected]
        assert members[:4] == [
            f"{expected[0]}{ext}" for ext in (".image.npy.gz", ".json", ".txt", ".sentence.txt")
        ]


def test_sample_contents_match_the_corpus(corpus):
    path = write_webdataset(corpus)[1]
    records = {
        r["key"]: r for r in map(json.loads, (corpus / "records.jsonl").read_text().splitlines())
    }
    with tarfile.open(path) as tar, h5py.File(corpus / "shards" / "s1-00000.h5") as h5:
        first = tar.getmembers()[:4]
        key = first[0].name.split(".")[0]
        data = {m.name[len(key) + 1 :]: tar.extractfile(m).read() for m in first}
        with gzip.open(io.BytesIO(data["image.npy.gz"])) as member:  # a plain gzip stream
            image = np.load(io.BytesIO(member.read()), allow_pickle=False)
        np.testing.assert_array_equal(image, h5[key]["image"][()])
    assert image.dtype == np.float32
    header = json.loads(data["json"])
    assert json.loads(header.pop("record")) == records[key]
    assert header == {
        "key": key,
        "sensor": "s1",
        "split": "corpus",
        "datetime": "",
        "labels": sorted(records[key]["labels"]),
        "captions": {
            "reference": records[key]["captions"]["reference"],
            "sentence": records[key]["captions"]["sentence"],
            "short": "",
            "land_use": "",
            "crisis": "",
        },
        "location": {"lon": records[key]["location"]["lon"], "lat": 45.0, "epsg": 0}
        | {"place": "", "country": ""},
    }
    assert data["txt"].decode() == records[key]["captions"]["reference"]
    assert data["sentence.txt"].decode() == records[key]["captions"]["sentence"]


def test_bytes_are_deterministic_and_headers_fixed(corpus):
    first = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in write_webdataset(corpus)}
    second = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in write_webdataset(corpus)}
    assert first == second
    for info in read_tar(corpus / "webdataset" / "s2-corpus-00000.tar"):
        assert (info.mtime, info.uid, info.gid, info.uname, info.mode) == (0, 0, 0, "", 0o644)
    index = {s["path"]: s["sha256"] for s in read_webdataset_index(corpus)}
    assert index == first


def test_shard_size_splits_and_stale_shards_go(corpus):
    small = write_webdataset(corpus, shard_size=2)
    assert "s1-corpus-00001.tar" in [p.name for p in small]
    counts = {s["path"]: s["count"] for s in read_webdataset_index(corpus)}
    assert all(c <= 2 for c in counts.values())
    assert sum(counts.values()) == 10
    write_webdataset(corpus, shard_size=512)
    assert not (corpus / "webdataset" / "s1-corpus-00001.tar").exists()
    assert not list((corpus / "webdataset").glob(".*.tmp"))


def test_ensure_reuses_a_current_view(corpus):
    paths = ensure_webdataset(corpus)
    before = [p.stat().st_mtime_ns for p in paths]
    assert ensure_webdataset(corpus) == paths
    assert [p.stat().st_mtime_ns for p in paths] == before


def test_the_webdataset_package_reads_the_shards(corpus):
    wds = pytest.importorskip("webdataset")
    path = write_webdataset(corpus)[3]
    samples = list(wds.WebDataset(str(path), shardshuffle=False).decode())
    assert len(samples) == 4
    with h5py.File(corpus / "shards" / "s2-00000.h5") as h5:
        for sample in samples:
            np.testing.assert_array_equal(sample["image.npy.gz"], h5[sample["__key__"]]["image"])
    assert samples[0]["image.npy.gz"].dtype == np.float32
    assert samples[0]["txt"] == samples[0]["json"]["captions"]["reference"]


def test_missing_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(CorpusError, match="build the corpus first"):
        write_webdataset(tmp_path)
    with pytest.raises(CorpusError, match="write the WebDataset view first"):
        read_webdataset_index(tmp_path)


def test_dotted_keys_are_rejected(corpus):
    meta = pd.read_parquet(corpus / "metadata.parquet")
    meta.loc[0, "key"] = "bad.key"
    meta.to_parquet(corpus / "metadata.parquet")
    with pytest.raises(CorpusError, match="contains a dot"):
        write_webdataset(corpus)


def test_training_publishes_the_webdataset_view_as_a_new_version(
    tiny_archive, run_config, tmp_path
):
    """The default build leaves the second copy of the pixels out; the trainer's
    ``ensure_webdataset`` writes it into a new published version, once, under the lock."""
    from pipeline.build import build
    from pipeline.config import load_config
    from pipeline.corpus.publish import current_version
    from pipeline.corpus.webdataset import ensure_webdataset

    out = tmp_path / "corpus"
    config = load_config(run_config(tmp_path / "run.yaml", tiny_archive, out))
    build(config)
    assert config.output.views == ("clm-hdf5", "stac")
    assert not (out / "webdataset").exists() and (out / "queries.jsonl").is_file()
    first = current_version(out)
    paths = ensure_webdataset(out, shard_size=8)
    second = current_version(out)
    assert second != first and paths and all(p.is_file() for p in paths)
    assert (out / "webdataset").is_symlink()  # published like every top-level name
    assert sorted(p.name for p in first.iterdir()) == sorted(
        p.name for p in second.iterdir() if p.name != "webdataset"
    )
    assert ensure_webdataset(out, shard_size=8) == paths and current_version(out) == second
