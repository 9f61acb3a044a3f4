"""`clm export --format clm-release`: the reference authors' loaders read every chip of it.

The two loaders below follow the published CLOSP ``CrisisLandMarkDataset`` logic (current
version: ``crisislandmark.h5`` + ``metadata.parquet``, every part file required; earlier
version: ``geocrisis.parquet`` + ``splits.parquet``, files opened by their ``file`` column),
written here with pandas and h5py (no torchgeo, no polars). The current loader also maps
CORINE class names to Dynamic World names; on our labels (already in the reference label
space, none a CORINE name) that map is the identity after lower-casing, as done here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.corpus.drift import check_outputs
from pipeline.corpus.lock import LOCK_FILE, read_lock
from pipeline.corpus.release import release_source

PUBLISHED_PARTS = [
    *(f"benv2s2_part{n}.h5" for n in range(1, 5)),
    *(f"benv2s1_part{n}.h5" for n in range(1, 5)),
    "cabuar.h5",
    "mmflood.h5",
    "sen12flood.h5",
    "quakeset.h5",
]
SATELLITE_TAGS = {
    "s2": ["benv2s2", "cabuar", "sen2flood"],
    "s1": ["benv2s1", "mmflood", "sen1flood", "quakeset"],
}
CORPUS_SPLIT = {"train": "train", "test": "corpus"}


def current_loader(root, split, satellite):
    """(key, image, coords, crs, timestamp, labels) as the current reference loader reads them."""
    for name in ["crisislandmark.h5", "metadata.parquet", *PUBLISHED_PARTS]:
        if not (root / name).exists():
            raise FileNotFoundError(root / name)
    meta = pd.read_parquet(root / "metadata.parquet")
    meta = meta[meta["split"] == split]
    meta = meta[meta["key"].str.contains("|".join(SATELLITE_TAGS[satellite]), regex=True)]
    meta = meta[["key", "labels"]].explode("labels")
    meta["labels"] = meta["labels"].str.lower()
    grouped = meta.groupby("key").agg(set)
    with h5py.File(root / "crisislandmark.h5", "r") as h5:
        for key, labels in zip(grouped.index, grouped["labels"], strict=True):
            group = h5[key]
            yield (
                key,
                group["image"][:],
                group["coords"][:],
                group.attrs["crs"],
                group.attrs["timestamp"],
                labels,
            )


def earlier_loader(root, split, satellite):
    """(key, image, centre, crs, caption) as the earlier loader (geocrisis/splits) reads them."""
    samples = pd.read_parquet(root / "geocrisis.parquet")
    wanted = "training" if split == "train" else "corpus"
    splits = pd.read_parquet(root / "splits.parquet")
    samples = samples[samples["key"].isin(splits[splits["split"] == wanted]["key"])]
    samples = samples.explode("labels")
    samples["labels"] = samples["labels"].str.lower()
    grouped = samples.groupby(["file", "key"])["labels"].agg(list).reset_index()
    grouped = grouped[grouped["key"].map(lambda k: any(t in k for t in SATELLITE_TAGS[satellite]))]
    for path, key, labels in grouped.sort_values("key")[["file", "key", "labels"]].itertuples(
        index=False
    ):
        with h5py.File(path, "r") as h5:
            data = h5[key]["image"][:]
            centre = h5[key]["coords"][:, 60, 60]
            crs = h5[key].attrs["crs"]
        if any(x in path for x in ["benv2s1", "sen1flood"]):
            data = np.flip(data, axis=0)
        if "quakeset" in path:
            data = data[2:]
        yield key, data, centre, crs, ". ".join(labels)


@pytest.fixture(scope="module")
def release(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "crisislandmark"
    args = ["export", "--corpus", str(tiny_corpus), "--format", "clm-release", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def corpus_chips(corpus):
    meta = pd.read_parquet(corpus / "metadata.parquet").set_index("key")
    return meta


def shard_group(corpus, meta, key):
    return h5py.File(corpus / "shards" / meta.loc[key, "shard"], "r")[key]


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("satellite", ["s2", "s1"])
def test_current_reference_loader_reads_every_chip(release, tiny_corpus, split, satellite):
    meta = corpus_chips(tiny_corpus)
    clm_key = pd.read_parquet(release / "metadata.parquet").set_index("key")["clm_key"]
    expected = meta[(meta["split"] == CORPUS_SPLIT[split]) & (meta["sensor"] == satellite)]
    seen = []
    for key, image, coords, crs, timestamp, labels in current_loader(release, split, satellite):
        original = clm_key[key]
        group = shard_group(tiny_corpus, meta, original)
        np.testing.assert_array_equal(image, group["image"][()])
        np.testing.assert_array_equal(coords, group["coords"][()])
        assert int(crs) == meta.loc[original, "epsg"]
        assert str(timestamp) == meta.loc[original, "datetime"]
        assert labels == set(meta.loc[original, "labels"])
        seen.append(original)
    assert len(expected) > 0
    assert sorted(seen) == sorted(expected.index)


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("satellite", ["s2", "s1"])
def test_earlier_reference_loader_reads_every_chip(release, tiny_corpus, split, satellite):
    meta = corpus_chips(tiny_corpus)
    clm_key = pd.read_parquet(release / "geocrisis.parquet").set_index("key")["clm_key"]
    expected = meta[(meta["split"] == CORPUS_SPLIT[split]) & (meta["sensor"] == satellite)]
    seen = []
    for key, image, centre, crs, caption in earlier_loader(release, split, satellite):
        original = clm_key[key]
        group = shard_group(tiny_corpus, meta, original)
        np.testing.assert_array_equal(image, group["image"][()])
        np.testing.assert_array_equal(centre, group["coords"][:, 60, 60])
        assert int(crs) == meta.loc[original, "epsg"]
        assert sorted(caption.split(". ")) == sorted(meta.loc[original, "labels"])
        seen.append(original)
    assert sorted(seen) == sorted(expected.index)


def test_every_part_file_exists_and_keys_keep_the_corpus_key(release):
    for name in PUBLISHED_PARTS:
        with h5py.File(release / name, "r") as h5:
            for key in h5:
                assert key.endswith(h5[key].attrs["clm_key"])
    with h5py.File(release / "quakeset.h5", "r") as h5:
        assert len(h5) == 0  # the tiny archive has no earthquake: the file is there, empty
    meta = pd.read_parquet(release / "metadata.parquet")
    assert set(meta["split"]) == {"train", "test"}
    assert (
        meta["key"]
        == [f"{t}_{k}" for t, k in zip(meta["source_tag"], meta["clm_key"], strict=True)]
    ).all()


@pytest.mark.parametrize(
    ("sensor", "labels", "expected"),
    [
        ("s2", ["crops"], "benv2s2"),
        ("s2", ["trees", "burned area"], "cabuar"),
        ("s2", ["water", "flooded area"], "sen2flood"),
        ("s1", ["built"], "benv2s1"),
        ("s1", ["flooded area"], "mmflood"),
        ("s1", ["earthquake damage", "flooded area"], "quakeset"),
        ("s1", ["burned area"], "benv2s1"),  # no SAR burned-area source in the release
        ("s2", ["earthquake damage"], "benv2s2"),  # nor an optical earthquake source
    ],
)
def test_source_tag_follows_sensor_and_hazard(sensor, labels, expected):
    tag, file = release_source(sensor, labels, "ITEM_1_2")
    assert tag == expected
    assert file in PUBLISHED_PARTS
    assert file.startswith({"sen2flood": "sen12flood"}.get(tag, tag))


def test_land_cover_chips_spread_over_the_parts_by_key():
    files = {release_source("s2", ["crops"], f"ITEM_{i}_{i}")[1] for i in range(40)}
    assert files == {f"benv2s2_part{n}.h5" for n in range(1, 5)}
    assert release_source("s2", ["crops"], "A_1_2") == release_source("s2", ["built"], "A_1_2")


def test_export_leaves_the_corpus_unchanged_and_replaces_the_target(release, tiny_corpus):
    assert check_outputs(read_lock(tiny_corpus / LOCK_FILE), tiny_corpus) == []
    (release / "stale.txt").write_text("left over")
    args = ["export", "--corpus", str(tiny_corpus), "-f", "clm-release", "--out", str(release)]
    assert CliRunner().invoke(app, args).exit_code == 0
    assert not (release / "stale.txt").exists()
    assert not list(release.parent.glob(".*.tmp"))


@pytest.mark.parametrize("out", [None, "inside"])
def test_export_needs_an_out_directory_outside_the_corpus(tiny_corpus, out):
    args = ["export", "--corpus", str(tiny_corpus), "--format", "clm-release"]
    if out:
        args += ["--out", str(tiny_corpus / "release")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "--out" in result.output
    assert not (tiny_corpus / "release").exists()


def test_out_is_refused_for_views_written_inside_the_corpus(tiny_corpus, tmp_path):
    args = ["export", "--corpus", str(tiny_corpus), "-f", "stac", "--out", str(tmp_path / "x")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "drop --out" in result.output


PLAIN_H5PY_READER = r"""
import json, sys
import h5py  # as the reference loader: no `import hdf5plugin`
root, shard = sys.argv[1], sys.argv[2]
read = 0
with h5py.File(root + "/crisislandmark.h5", "r") as h5:
    for key in h5:
        h5[key]["image"][:]
        h5[key]["coords"][:, 60, 60]
        read += 1
try:
    with h5py.File(shard, "r") as h5:
        h5[next(iter(h5))]["image"][:]
    shard_ok = True
except OSError:
    shard_ok = False
print(json.dumps({"read": read, "shard_ok": shard_ok, "plugin": "hdf5plugin" in sys.modules}))
"""


def test_release_reads_without_hdf5plugin_though_the_shards_need_it(release, tiny_corpus):
    """The reference loader never imports hdf5plugin: the export recompresses shards stored
    with a plugin filter (the default) to gzip, which HDF5 has built in."""
    shard = sorted((tiny_corpus / "shards").glob("*.h5"))[0]
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_H5PY_READER, str(release), str(shard)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    seen = json.loads(result.stdout)
    assert seen == {"read": len(corpus_chips(tiny_corpus)), "shard_ok": False, "plugin": False}
    with h5py.File(release / "benv2s2_part1.h5", "r") as h5:
        assert {h5[k]["image"].compression for k in h5} == {"gzip"}
