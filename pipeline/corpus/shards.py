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
from h5py import h5d

from pipeline.chips.extract import RELEASED_ATTR, scene_outputs
from pipeline.chips.grid import CHIP_PIXELS, ChipGeometry
from pipeline.compression import COMPRESSION_ATTR, shard_compression
from pipeline.errors import CorpusError
from pipeline.h5write import ChipWriter, Chunk, Location, open_dataset, read_array, single_chunk
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
    writer = ChipWriter(shard_compression(task.compression))
    with (
        ChipSources(task.chip_dir, task.published) as sources,
        hdf5_atomic(task.path, track_order=True) as h5,
    ):
        for chip in task.chips:
            _write_chip(writer, h5.id, chip, sources.image(chip), task.labels[chip["key"]])
        h5.attrs[COMPRESSION_ATTR] = task.compression
        h5.attrs["content_sha256"] = task.digest
    return task.path.name


@dataclass(frozen=True)
class StoredImage:
    """A chip image as stored in its source: the dataset and the source's recipe name."""

    dataset: h5d.DatasetID
    compression: str | None

    def chunk(self, recipe_name: str) -> Chunk | None:
        """The single float32 chunk, when it is stored with ``recipe_name``."""
        if self.compression != recipe_name or self.dataset.dtype != np.float32:
            return None
        return single_chunk(self.dataset)


@dataclass(frozen=True)
class _Source:
    """An open work file or published shard: its recipe, and whether its pixels went."""

    h5: h5py.File
    recipe: str | None
    released: bool


class ChipSources:
    """Open work files and published shards of one task, closed together. Chips are looked up
    by low-level name (``open_dataset``), and a file's attributes read once when it opens."""

    def __init__(self, chip_dir: Path, published: Mapping[str, Path]) -> None:
        self.chip_dir, self.published = chip_dir, published
        self.files: dict[Path, _Source] = {}

    def __enter__(self) -> ChipSources:
        return self

    def __exit__(self, *exc: object) -> None:
        for source in self.files.values():
            source.h5.close()

    def _open(self, path: Path) -> _Source:
        if path not in self.files:
            h5 = h5py.File(path, "r")
            recipe = h5.attrs.get(COMPRESSION_ATTR)
            released = bool(h5.attrs.get(RELEASED_ATTR))
            self.files[path] = _Source(h5, None if recipe is None else str(recipe), released)
        return self.files[path]

    def image(self, chip: Mapping[str, Any]) -> StoredImage:
        key = chip["key"]
        work = self._open(scene_outputs(self.chip_dir, chip["item_id"], chip["inputs_digest"])[0])
        stored = open_dataset(work.h5.id, key)
        if stored is not None:
            return StoredImage(stored, work.recipe)
        if work.released and key in self.published:
            shard = self._open(self.published[key])
            return StoredImage(h5d.open(shard.h5.id, f"{key}/image".encode()), shard.recipe)
        name = work.h5.filename
        raise CorpusError(
            f"the pixels of chip {key} are neither in {name} nor in the published "
            f"corpus; delete {name} and its .json and build again (the scene is re-cut)"
        )


def pixel_coords(cell: ChipGeometry) -> np.ndarray:
    """(2, H, W) pixel-centre x and y of a chip in its CRS."""
    minx, _, _, maxy = cell.bounds
    centres = (np.arange(cell.pixels) + 0.5) * cell.pixel_size
    xs, ys = np.meshgrid(minx + centres, maxy - centres)
    return np.stack([xs, ys])


def _write_chip(
    writer: ChipWriter,
    h5: Location,
    chip: Mapping[str, Any],
    stored: StoredImage,
    labels: Sequence[str],
) -> None:
    group = writer.group(h5, chip["key"])
    _write_image(writer, group, stored)
    _write_coords(writer, group, int(chip["epsg"]), int(chip["col"]), int(chip["row"]))
    writer.int_attr(group, "crs", int(chip["epsg"]))
    writer.str_attr(group, "timestamp", chip["datetime"])
    writer.str_array_attr(group, "labels", sorted(labels))


# (epsg, col, row, recipe) -> (filter mask, bytes) of the compressed ``coords`` chunk: they
# depend on the cell and the recipe only, so every acquisition of a cell a worker writes after
# the first reuses them (a time series revisits its cells). ~6 KB a cell, <= ~25 MB a worker;
# the oldest goes first (plain dict operations: safe for a worker's threads under the GIL).
_COORDS: OrderedDict[tuple[int, int, int, str], Chunk] = OrderedDict()
_COORDS_MAX = 4096
_COORDS_SHAPE = (2, CHIP_PIXELS, CHIP_PIXELS)
_FLOAT32, _FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)


def _write_coords(writer: ChipWriter, group: Location, epsg: int, col: int, row: int) -> None:
    """The chip's ``coords``: written through HDF5's filters the first time a worker meets the
    cell, then as the chunk those filters produced (the same bytes, tested). Recipe ``none``
    stores no chunk: its coords always go through HDF5."""
    key = (epsg, col, row, writer.recipe.name)
    cached = _COORDS.get(key)
    if cached is not None:
        writer.chunk(group, "coords", _COORDS_SHAPE, _FLOAT64, cached)
        return
    ds = writer.array(group, "coords", pixel_coords(ChipGeometry(epsg, col, row)))
    chunk = single_chunk(ds)
    if chunk is not None:
        _COORDS[key] = chunk
        if len(_COORDS) > _COORDS_MAX:
            _COORDS.popitem(last=False)


def _write_image(writer: ChipWriter, group: Location, stored: StoredImage) -> None:
    chunk = stored.chunk(writer.recipe.name)
    if chunk is not None:
        writer.chunk(group, "image", stored.dataset.shape, _FLOAT32, chunk)
    else:
        writer.array(group, "image", read_array(stored.dataset).astype(np.float32, copy=False))
