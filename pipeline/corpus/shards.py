"""The image shards of a corpus, written in parallel, one task per shard.

Shards follow the CrisisLandMark release layout: one HDF5 group per image key holding
``image (B,120,120) float32`` and ``coords (2,120,120)`` (pixel-centre x/y in the chip
CRS), with attributes ``crs`` (EPSG code), ``timestamp`` and ``labels``. Chips are sharded
per sensor in acquisition order (datetime, key), so a refresh that adds newer scenes only
rewrites the last shard of each sensor and appends new ones.

Every shard is one task on the build's executor (``pipeline.engine.executor``): the task
reads its chips' pixels, writes the shard in memory and renames it into place; the main
process only plans and collects names, by shard. A chip's pixels come from its scene's work
file (``pipeline.chips.extract``) or, once those were released after a publish
(``pipeline.corpus.gc``), from the published shard that holds it. Either source already
holds the image compressed with the shard recipe, one chunk per chip: the compressed chunk
is copied as it is (``read_direct_chunk`` / ``write_direct_chunk``), so no chip is decoded
or compressed twice. A source in another recipe is decoded and written normally: the
same bytes either way.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pipeline.chips.extract import RELEASED_ATTR, scene_outputs
from pipeline.chips.grid import CHIP_PIXELS, ChipGeometry
from pipeline.compression import COMPRESSION_ATTR, ShardCompression, shard_compression
from pipeline.errors import CorpusError
from pipeline.progress import progress
from pipeline.storage import hdf5_atomic

SENSORS = ("s1", "s2")


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


def shard_digest(
    chips: Sequence[dict[str, Any]], records: Mapping[str, Any], compression: str
) -> str:
    """What a shard holds: its chips (key, pixels, labels) and the recipe they are stored in."""
    text = "\n".join(
        f"{c['key']} {c['pixel_sha256']} {'.'.join(records[c['key']]['labels'])}" for c in chips
    )
    return hashlib.sha256(f"{compression}\n{text}".encode()).hexdigest()


@dataclass(frozen=True)
class ShardTask:
    """Everything one shard task needs, as plain picklable values."""

    path: Path
    chips: tuple[dict[str, Any], ...]
    labels: Mapping[str, tuple[str, ...]]
    chip_dir: Path
    published: Mapping[str, Path]  # key -> published shard, for chips whose work pixels went
    compression: str
    digest: str


def write_shards(
    pool: cf.Executor,
    corpus: Path,
    shards: Mapping[str, list[dict[str, Any]]],
    records: Mapping[str, Any],
    chip_dir: Path,
    compression: str,
    published: Mapping[str, Path] | None = None,
) -> list[str]:
    """Write every shard whose content changed, in parallel; returns the names written."""
    with shards_written(pool, corpus, shards, records, chip_dir, compression, published) as names:
        return names


@contextlib.contextmanager
def shards_written(
    pool: cf.Executor,
    corpus: Path,
    shards: Mapping[str, list[dict[str, Any]]],
    records: Mapping[str, Any],
    chip_dir: Path,
    compression: str,
    published: Mapping[str, Path] | None = None,
) -> Iterator[list[str]]:
    """Submit a task for every shard whose content changed and yield their names; the block
    runs while the tasks do (the build process's own serial work then overlaps them instead
    of leaving the workers idle), and leaving it waits for every shard."""
    tasks = {}
    for name, chips in shards.items():
        path = corpus / "shards" / name
        digest = shard_digest(chips, records, compression)
        if not shard_is_current(path, digest):
            tasks[name] = _task(path, chips, records, chip_dir, published or {}, compression)
    total = sum(len(shards[n]) for n in tasks)
    with progress(total, "chip", "shards") as bar:
        names = {pool.submit(write_shard, task): name for name, task in tasks.items()}
        yield sorted(tasks)
        for future in cf.as_completed(names):
            future.result()
            name = names.pop(future)  # dropped: the cluster forgets the task and its payload
            _finished(name)
            bar.update(len(shards[name]))


def _finished(name: str) -> None:
    """A shard is in place (the main process's per-shard step; tests kill the build here)."""


def _task(
    path: Path,
    chips: Sequence[dict[str, Any]],
    records: Mapping[str, Any],
    chip_dir: Path,
    published: Mapping[str, Path],
    compression: str,
) -> ShardTask:
    keys = [c["key"] for c in chips]
    return ShardTask(
        path,
        tuple(chips),
        {k: tuple(records[k]["labels"]) for k in keys},
        chip_dir,
        {k: published[k] for k in keys if k in published},
        compression,
        shard_digest(chips, records, compression),
    )


def shard_is_current(path: Path, digest: str) -> bool:
    if not path.exists():
        return False
    try:
        with h5py.File(path, "r") as h5:
            return bool(h5.attrs.get("content_sha256") == digest)
    except OSError:  # unreadable (e.g. truncated by a full disk): rewrite it
        return False


def write_shard(task: ShardTask) -> str:
    """Write one shard (in a worker): its chips in order, then the content digest."""
    recipe = shard_compression(task.compression)
    with (
        ChipSources(task.chip_dir, task.published) as sources,
        hdf5_atomic(task.path, track_order=True) as h5,
    ):
        for chip in task.chips:
            _write_chip(h5, chip, sources.image(chip), task.labels[chip["key"]], recipe)
        h5.attrs[COMPRESSION_ATTR] = task.compression
        h5.attrs["content_sha256"] = task.digest
    return task.path.name


@dataclass(frozen=True)
class StoredImage:
    """A chip image as stored in its source: the compressed chunk and the recipe name."""

    dataset: h5py.Dataset
    compression: str | None

    def chunk(self, recipe_name: str) -> tuple[int, bytes] | None:
        """(filter mask, bytes) of the single chunk, when it is stored with ``recipe_name``."""
        ds = self.dataset
        if self.compression != recipe_name or ds.chunks != ds.shape:
            return None
        mask, data = ds.id.read_direct_chunk((0,) * ds.ndim)
        return int(mask), bytes(data)


class ChipSources:
    """Open work files and published shards of one task, closed together."""

    def __init__(self, chip_dir: Path, published: Mapping[str, Path]) -> None:
        self.chip_dir, self.published = chip_dir, published
        self.files: dict[Path, tuple[h5py.File, str | None]] = {}  # file, its recipe

    def __enter__(self) -> ChipSources:
        return self

    def __exit__(self, *exc: object) -> None:
        for fh, _ in self.files.values():
            fh.close()

    def _open(self, path: Path) -> tuple[h5py.File, str | None]:
        if path not in self.files:
            fh = h5py.File(path, "r")
            self.files[path] = fh, _recipe_of(fh)
        return self.files[path]

    def image(self, chip: Mapping[str, Any]) -> StoredImage:
        key = chip["key"]
        work, recipe = self._open(
            scene_outputs(self.chip_dir, chip["item_id"], chip["inputs_digest"])[0]
        )
        stored = work.get(key)
        if stored is not None:
            return StoredImage(stored, recipe)
        if work.attrs.get(RELEASED_ATTR) and key in self.published:
            shard, recipe = self._open(self.published[key])
            return StoredImage(shard[key]["image"], recipe)
        raise CorpusError(
            f"the pixels of chip {key} are neither in {work.filename} nor in the published "
            f"corpus; delete {work.filename} and its .json and build again (the scene is re-cut)"
        )


def _recipe_of(h5: h5py.File) -> str | None:
    value = h5.attrs.get(COMPRESSION_ATTR)
    return str(value) if value is not None else None


def pixel_coords(cell: ChipGeometry) -> np.ndarray:
    """(2, H, W) pixel-centre x and y of a chip in its CRS."""
    minx, _, _, maxy = cell.bounds
    centres = (np.arange(cell.pixels) + 0.5) * cell.pixel_size
    xs, ys = np.meshgrid(minx + centres, maxy - centres)
    return np.stack([xs, ys])


def _write_chip(
    h5: h5py.File,
    chip: Mapping[str, Any],
    stored: StoredImage,
    labels: Sequence[str],
    recipe: ShardCompression,
) -> None:
    group = h5.create_group(chip["key"])
    _write_image(group, stored, recipe)
    _write_coords(group, int(chip["epsg"]), int(chip["col"]), int(chip["row"]), recipe)
    group.attrs["crs"] = int(chip["epsg"])
    group.attrs["timestamp"] = chip["datetime"]
    group.attrs["labels"] = np.array(sorted(labels), dtype=h5py.string_dtype())


# (epsg, col, row, recipe) -> (filter mask, bytes) of the compressed ``coords`` chunk: they
# depend on the cell and the recipe only, so every acquisition of a cell a worker writes after
# the first reuses them (a time series revisits its cells). ~6 KB a cell, <= ~25 MB a worker;
# the oldest goes first (plain dict operations: safe for a worker's threads under the GIL).
_COORDS: OrderedDict[tuple[int, int, int, str], tuple[int, bytes]] = OrderedDict()
_COORDS_MAX = 4096


def _write_coords(
    group: h5py.Group, epsg: int, col: int, row: int, recipe: ShardCompression
) -> None:
    """The chip's ``coords``: written through HDF5's filters the first time a worker meets the
    cell, then as the chunk those filters produced (the same bytes, tested)."""
    key = (epsg, col, row, recipe.name)
    cached = _COORDS.get(key)
    if cached is None or recipe.filter == "none":
        coords = pixel_coords(ChipGeometry(epsg, col, row))
        ds = group.create_dataset("coords", data=coords, **recipe.dataset_options(coords.shape))
        if recipe.filter != "none":
            mask, data = ds.id.read_direct_chunk((0, 0, 0))
            _COORDS[key] = int(mask), bytes(data)
            if len(_COORDS) > _COORDS_MAX:
                _COORDS.popitem(last=False)
        return
    shape = (2, CHIP_PIXELS, CHIP_PIXELS)
    ds = group.create_dataset(
        "coords", shape=shape, dtype=np.float64, **recipe.dataset_options(shape)
    )
    ds.id.write_direct_chunk((0, 0, 0), cached[1], cached[0])


def _write_image(group: h5py.Group, stored: StoredImage, recipe: ShardCompression) -> None:
    shape = stored.dataset.shape
    image = group.create_dataset(
        "image", shape=shape, dtype=np.float32, **recipe.dataset_options(shape)
    )
    chunk = stored.chunk(recipe.name) if stored.dataset.dtype == np.float32 else None
    if chunk is not None:
        image.id.write_direct_chunk((0,) * len(shape), chunk[1], chunk[0])
    else:
        image[...] = stored.dataset[()].astype(np.float32, copy=False)
