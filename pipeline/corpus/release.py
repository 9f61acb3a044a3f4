"""The CrisisLandMark release layout (``clm export --format clm-release``).

The reference authors' loader (CLOSP, ``CrisisLandMarkDataset``) reads one root folder:
``crisislandmark.h5`` (a group per key), the release's part files (every one must exist),
and ``metadata.parquet`` with ``key``, ``split`` (``train`` | ``test``) and ``labels``; it
picks a sensor by the source tag inside each key. Its earlier version read
``geocrisis.parquet`` (``key``, ``file``, ``labels``) and ``splits.parquet`` (``key``,
``split`` in ``training`` | ``corpus``). This module writes all of that from a built corpus:

- each chip gets the tag of the release source that matches its sensor and hazard
  (``RELEASE_SOURCES``), and the key ``<tag>_<corpus key>``;
- land-cover chips spread over ``part1..4`` by a digest of their corpus key, so a chip
  keeps its part file when the corpus grows;
- the part files hold the shard groups (plus attribute ``clm_key``): copied unchanged when
  the shards use a filter HDF5 has built in, else rewritten with ``RELEASE_COMPRESSION``
  (gzip; same pixels), because the reference loader opens the files with plain h5py and
  does not ``import hdf5plugin`` (its requirements install it, its loader never imports it);
  ``crisislandmark.h5`` links every key to its part file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import h5py
import pandas as pd

from pipeline.compression import COMPRESSION_ATTR, ShardCompression, shard_compression
from pipeline.corpus.export_dir import atomic_dir
from pipeline.errors import CorpusError

MASTER = "crisislandmark.h5"
PARTS = 4
LAND_COVER_TAGS = {"s2": "benv2s2", "s1": "benv2s1"}
# (sensor, crisis label) -> (source tag, part file); the first matching label in this order wins.
RELEASE_SOURCES: dict[tuple[str, str], tuple[str, str]] = {
    ("s1", "earthquake damage"): ("quakeset", "quakeset.h5"),
    ("s1", "flooded area"): ("mmflood", "mmflood.h5"),
    ("s2", "flooded area"): ("sen2flood", "sen12flood.h5"),
    ("s2", "burned area"): ("cabuar", "cabuar.h5"),
}
PART_FILES: tuple[str, ...] = (
    *(f"benv2s2_part{n}.h5" for n in range(1, PARTS + 1)),
    *(f"benv2s1_part{n}.h5" for n in range(1, PARTS + 1)),
    "cabuar.h5",
    "mmflood.h5",
    "sen12flood.h5",
    "quakeset.h5",
)
# Every tag the reference loader matches, per sensor (``sen1flood`` is never written).
SENSOR_TAGS = {
    "s2": ("benv2s2", "cabuar", "sen2flood"),
    "s1": ("benv2s1", "mmflood", "sen1flood", "quakeset"),
}
RELEASE_COMPRESSION = "gzip-4"  # built into HDF5; the smallest of those (docs/corpus-format.md)
SPLITS = {"train": "train", "corpus": "test"}
EARLIER_SPLITS = {"train": "training", "corpus": "corpus"}


def release_source(sensor: str, labels: Sequence[str], key: str) -> tuple[str, str]:
    """(source tag, part file) of one chip."""
    for (source_sensor, label), source in RELEASE_SOURCES.items():
        if source_sensor == sensor and label in labels:
            return source
    tag = LAND_COVER_TAGS[sensor]
    part = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % PARTS + 1
    return tag, f"{tag}_part{part}.h5"


def release_plan(meta: pd.DataFrame) -> pd.DataFrame:
    """``meta`` with ``clm_key``, ``source_tag``, ``file`` and the release ``key``, sorted."""
    _check_keys(meta["key"])
    sources = [
        release_source(sensor, list(labels), key)
        for sensor, labels, key in zip(meta["sensor"], meta["labels"], meta["key"], strict=True)
    ]
    plan = meta.rename(columns={"key": "clm_key", "split": "clm_split"}).copy()
    plan["source_tag"] = [tag for tag, _ in sources]
    plan["file"] = [file for _, file in sources]
    plan.insert(
        0, "key", [f"{t}_{k}" for t, k in zip(plan["source_tag"], plan["clm_key"], strict=True)]
    )
    plan.insert(1, "split", plan["clm_split"].map(SPLITS))
    return plan.sort_values("key", kind="stable").reset_index(drop=True)


def _check_keys(keys: pd.Series) -> None:
    tags = [t for group in SENSOR_TAGS.values() for t in group]
    clashing = [k for k in keys if any(t in k.lower() for t in tags)]
    if clashing:
        raise CorpusError(
            f"chip key {clashing[0]!r} already contains a release source tag, so the reference "
            "loader would pick it for the wrong sensor; rebuild with item ids free of "
            f"{', '.join(tags)}"
        )


def export_release(corpus: Path, out: Path) -> list[Path]:
    """Write the release layout of ``corpus`` into ``out`` (replaced whole); returns its files."""
    meta = gpd.read_parquet(Path(corpus) / "metadata.parquet")
    plan = release_plan(meta)
    with atomic_dir(out) as tmp:
        write_parts(Path(corpus), tmp, plan)
        write_release_master(tmp, plan)
        plan.to_parquet(tmp / "metadata.parquet", index=False)
        write_earlier_tables(tmp, plan, out / MASTER)
    return sorted(out.iterdir())


def write_parts(corpus: Path, folder: Path, plan: pd.DataFrame) -> None:
    """Every part file (empty ones too), its groups copied from the corpus shards."""
    shards: dict[str, h5py.File] = {}
    try:
        for name in PART_FILES:
            rows = plan[plan["file"] == name]
            with h5py.File(folder / name, "w", track_order=True) as part:
                for key, clm_key, shard in zip(
                    rows["key"], rows["clm_key"], rows["shard"], strict=True
                ):
                    _copy_group(_shard(shards, corpus, shard), clm_key, part, key)
                    part[key].attrs["clm_key"] = clm_key
    finally:
        for fh in shards.values():
            fh.close()


def _copy_group(shard: h5py.File, clm_key: str, part: h5py.File, key: str) -> None:
    """The shard group as it is, or rewritten with ``RELEASE_COMPRESSION`` when its filter
    needs ``hdf5plugin``."""
    recipe = _shard_recipe(shard)
    if recipe is None or not recipe.needs_hdf5plugin:
        part.copy(shard[clm_key], key)
        return
    source, target = shard[clm_key], part.create_group(key)
    release = shard_compression(RELEASE_COMPRESSION)
    for name, dataset in source.items():
        data = dataset[()]
        target.create_dataset(name, data=data, **release.dataset_options(data.shape))
    for name, value in source.attrs.items():
        target.attrs[name] = value


def _shard_recipe(shard: h5py.File) -> ShardCompression | None:
    name = shard.attrs.get(COMPRESSION_ATTR)
    return shard_compression(str(name)) if name is not None else None


def _shard(shards: dict[str, h5py.File], corpus: Path, name: str) -> h5py.File:
    if name not in shards:
        path = corpus / "shards" / name
        if not path.is_file():
            raise CorpusError(f"shard {path} listed in metadata.parquet is missing; rebuild")
        shards[name] = h5py.File(path, "r")
    return shards[name]


def write_release_master(folder: Path, plan: pd.DataFrame) -> None:
    """``crisislandmark.h5``: an external link per release key to its part file."""
    with h5py.File(folder / MASTER, "w", track_order=True) as h5:
        for key, file in zip(plan["key"], plan["file"], strict=True):
            h5[key] = h5py.ExternalLink(file, f"/{key}")
        h5.attrs["layout"] = "crisislandmark-release"
        h5.attrs["images"] = len(plan)


def write_earlier_tables(folder: Path, plan: pd.DataFrame, master: Path) -> None:
    """``geocrisis.parquet`` and ``splits.parquet`` for the loader's earlier version.

    Its ``file`` column is opened as given: the absolute path of ``crisislandmark.h5``
    (whose links reach every part), so the earlier loader's per-file band fixes
    (for BigEarthNet-S1 and QuakeSet files) do not apply to pixels already in VV, VH order.
    """
    keys = pd.DataFrame({"key": plan["key"], "clm_key": plan["clm_key"]})
    geocrisis = keys.assign(file=str(master), labels=[list(v) for v in plan["labels"]])
    geocrisis.to_parquet(folder / "geocrisis.parquet", index=False)
    splits = keys.assign(split=plan["clm_split"].map(EARLIER_SPLITS))
    splits.to_parquet(folder / "splits.parquet", index=False)
