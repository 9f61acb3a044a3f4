"""The CrisisLandMark-compatible HDF5 view, read the way the reference dataset loader does."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile

import h5py
import numpy as np
import pandas as pd

from pipeline.corpus.hdf5_view import MASTER_FILE

S2_SCALE = 10000.0


def reference_samples(corpus, sensor, split):
    """Like the reference loader: keys of one sensor and split from metadata.parquet, images from
    the HDF5 file (S2 divided by 10000), the caption = the ``labels`` attribute joined by ". "."""
    meta = pd.read_parquet(corpus / "metadata.parquet")
    keys = sorted(meta[(meta["sensor"] == sensor) & (meta["split"] == split)]["key"])
    with h5py.File(corpus / MASTER_FILE, "r") as h5:
        for key in keys:
            group = h5[key]
            image = group["image"][()].astype(np.float32)
            if sensor == "s2":
                image = image / S2_SCALE
            yield key, image, ". ".join(str(v) for v in group.attrs["labels"])


def webdataset_samples(corpus):
    """key -> (image, reference caption) from every WebDataset tar of the corpus."""
    out = {}
    for path in sorted((corpus / "webdataset").glob("*.tar")):
        with tarfile.open(path) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        for name, data in members.items():
            if name.endswith(".image.npy.gz"):
                key = name[: -len(".image.npy.gz")]
                image = np.load(io.BytesIO(gzip.decompress(data)), allow_pickle=False)
                out[key] = (image, members[f"{key}.txt"].decode())
    return out


def test_master_file_has_exactly_the_reference_schema(tiny_corpus):
    meta = pd.read_parquet(tiny_corpus / "metadata.parquet").set_index("key")
    with h5py.File(tiny_corpus / MASTER_FILE, "r") as h5:
        assert sorted(h5.keys()) == sorted(meta.index)
        for key in h5:
            assert isinstance(h5.get(key, getlink=True), h5py.ExternalLink)
            group = h5[key]
            assert set(group.keys()) == {"image", "coords"}
            assert set(group.attrs.keys()) == {"crs", "timestamp", "labels"}
            bands = 12 if meta.loc[key, "sensor"] == "s2" else 2
            assert group["image"].shape == (bands, 120, 120)
            assert group["image"].dtype == np.float32
            assert group["coords"].shape == (2, 120, 120)
            assert int(group.attrs["crs"]) == meta.loc[key, "epsg"]
            assert str(group.attrs["timestamp"]) == meta.loc[key, "datetime"]


def test_reference_loader_gets_the_webdataset_arrays_and_captions(tiny_corpus):
    wds = webdataset_samples(tiny_corpus)
    seen = 0
    for sensor in ("s1", "s2"):
        for split in ("train", "corpus"):
            for key, image, caption in reference_samples(tiny_corpus, sensor, split):
                wds_image, wds_caption = wds[key]
                expected = wds_image / S2_SCALE if sensor == "s2" else wds_image
                np.testing.assert_array_equal(image, expected)
                assert caption == wds_caption
                seen += 1
    assert seen == len(wds) == len(pd.read_parquet(tiny_corpus / "metadata.parquet"))


def test_captions_match_the_records(tiny_corpus):
    records = {
        r["key"]: r
        for r in map(json.loads, (tiny_corpus / "records.jsonl").read_text().splitlines())
    }
    for key, _, caption in reference_samples(tiny_corpus, "s2", "corpus"):
        assert caption == records[key]["captions"]["reference"]


def test_external_links_resolve_after_the_corpus_moves(tiny_corpus, tmp_path, monkeypatch):
    moved = tmp_path / "moved"
    shutil.copytree(tiny_corpus / "shards", moved / "shards")
    shutil.copy(tiny_corpus / MASTER_FILE, moved / MASTER_FILE)
    monkeypatch.chdir(tmp_path)
    with h5py.File(moved / MASTER_FILE, "r") as h5:
        key = sorted(h5.keys())[0]
        assert h5[key]["image"].shape[1:] == (120, 120)


def test_metadata_has_labels_per_source_and_provenance(tiny_corpus):
    meta = pd.read_parquet(tiny_corpus / "metadata.parquet")
    for column in ("labels", "labels_land_cover", "labels_land_use", "labels_crisis", "split"):
        assert column in meta.columns
    row = meta.iloc[0]
    assets = json.loads(row["assets"])
    assert set(assets) >= ({"VV", "VH"} if row["sensor"] == "s1" else {"B02", "B04", "B08"})
    assert all(not href.startswith("http") for href in assets.values()), "source hrefs, unresolved"
    assert len(row["read_window"]) == 4 and row["read_window"][2] - row["read_window"][0] == 1200
    assert row["software_version"] and len(row["config_digest"]) == 16
    crisis = meta[meta["labels_crisis"].map(len) > 0]
    assert set(crisis["labels_crisis"].explode()) <= {"flooded area", "burned area"}
    assert len(crisis)
