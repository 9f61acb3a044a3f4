"""Shard writing: compressed chunks copied from the chip work files give the same bytes as
decoding and compressing again; released chips come from the published shards; shards are
the same bytes whichever executor writes them."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import multiprocessing
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.chips.extract import RELEASED_ATTR, scene_outputs
from pipeline.chips.grid import ChipGeometry
from pipeline.compression import COMPRESSION_ATTR, shard_compression
from pipeline.corpus import shards as shards_module
from pipeline.corpus.shards import pixel_coords, plan_shards, shards_written
from pipeline.errors import CorpusError

ITEM, DIGEST = "S2X_TEST_ITEM", "0123456789abcdef"


def chips(n: int = 5) -> list[dict]:
    return [
        {
            "key": f"{ITEM}_{i:03d}",
            "item_id": ITEM,
            "inputs_digest": DIGEST,
            "sensor": "s2",
            "epsg": 32632,
            "col": 100 + i,
            "row": 200,
            "datetime": "2021-06-01T10:00:00+00:00",
            "pixel_sha256": f"{i:064d}",
        }
        for i in range(n)
    ]


def images(rows: list[dict]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        r["key"]: np.round(rng.gamma(2.0, 500.0, (12, 120, 120))).astype(np.float32) for r in rows
    }


def work_file(chip_dir: Path, pixels: dict[str, np.ndarray], recipe: str) -> Path:
    """A scene work file as the chip stage writes it, in ``recipe``."""
    path = scene_outputs(chip_dir, ITEM, DIGEST)[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = shard_compression(recipe)
    with h5py.File(path, "w") as h5:
        h5.attrs[COMPRESSION_ATTR] = recipe
        for key, image in pixels.items():
            h5.create_dataset(key, data=image, **codec.dataset_options(image.shape))
    return path


def records(rows: list[dict]) -> dict[str, dict]:
    return {r["key"]: {"labels": ["crops", "trees"]} for r in rows}


def write(corpus: Path, rows: list[dict], chip_dir: Path, pool: cf.Executor, **kw) -> bytes:
    shards = plan_shards(rows, 8)
    with shards_written(pool, corpus, shards, records(rows), chip_dir, "blosc-zstd-3-bit", **kw):
        pass
    return (corpus / "shards" / "s2-00000.h5").read_bytes()


@pytest.fixture(scope="module")
def serial():
    with _pool(1) as pool:
        yield pool


def test_copied_chunks_equal_a_fresh_compression(tmp_path, serial):
    rows = chips()
    pixels = images(rows)
    work_file(tmp_path / "same", pixels, "blosc-zstd-3-bit")  # chunks copied as they are
    work_file(tmp_path / "other", pixels, "gzip-1")  # decoded and compressed again
    copied = write(tmp_path / "a", rows, tmp_path / "same", serial)
    recompressed = write(tmp_path / "b", rows, tmp_path / "other", serial)
    assert copied == recompressed
    with h5py.File(tmp_path / "a" / "shards" / "s2-00000.h5", "r") as h5:
        assert h5.attrs[COMPRESSION_ATTR] == "blosc-zstd-3-bit"
        for key, image in pixels.items():
            np.testing.assert_array_equal(h5[key]["image"][()], image)
            assert h5[key]["coords"].shape == (2, 120, 120)


def test_released_chips_come_from_the_published_shard(tmp_path, serial):
    rows = chips()
    pixels = images(rows)
    work = work_file(tmp_path / "work", pixels, "blosc-zstd-3-bit")
    first = write(tmp_path / "v1", rows, tmp_path / "work", serial)
    with h5py.File(work, "w") as stub:  # what `clm gc` leaves
        stub.attrs[RELEASED_ATTR] = True
    published = {r["key"]: tmp_path / "v1" / "shards" / "s2-00000.h5" for r in rows}
    again = write(tmp_path / "v2", rows, tmp_path / "work", serial, published=published)
    assert again == first
    with pytest.raises(CorpusError, match="neither in"):
        write(tmp_path / "v3", rows, tmp_path / "work", serial)


@pytest.mark.parametrize("recipe", ["blosc-zstd-1-bit", "blosc-lz4-5", "shuffle-gzip-4", "none"])
def test_a_shard_is_the_same_bytes_with_cold_and_warm_coords(tmp_path, serial, recipe):
    """A worker compresses a cell's coords once and copies the chunk for every later chip of
    that cell: the shard is the same bytes as when every chip's coords go through HDF5's
    filters, for any recipe."""
    rows = chips()
    work_file(tmp_path / "work", images(rows), recipe)
    shards = plan_shards(rows, 8)

    def shard(out: str) -> bytes:
        with shards_written(
            serial, tmp_path / out, shards, records(rows), tmp_path / "work", recipe
        ):
            pass
        return (tmp_path / out / "shards" / "s2-00000.h5").read_bytes()

    shards_module._COORDS.clear()
    cold = shard("cold")
    assert len(shards_module._COORDS) == (0 if recipe == "none" else len(rows))
    warm = shard("warm")
    assert warm == cold
    with h5py.File(tmp_path / "warm" / "shards" / "s2-00000.h5", "r") as h5:
        for r in rows:
            expected = pixel_coords(ChipGeometry(r["epsg"], r["col"], r["row"]))
            np.testing.assert_array_equal(h5[r["key"]]["coords"][()], expected)


@pytest.mark.slow  # spawns two worker processes
def test_two_worker_processes_write_the_same_bytes(tmp_path, serial):
    rows = chips(20)
    work_file(tmp_path / "work", images(rows), "blosc-zstd-3-bit")
    shards = plan_shards(rows, 6)
    digests = {}
    for workers in (1, 2):
        out = tmp_path / f"workers-{workers}"
        with (
            _pool(workers) as pool,
            shards_written(
                pool, out, shards, records(rows), tmp_path / "work", "blosc-zstd-3-bit"
            ) as names,
        ):
            pass
        assert names == sorted(shards)
        digests[workers] = {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((out / "shards").glob("*.h5"))
        }
    assert digests[1] == digests[2] and len(digests[1]) == 4


def _pool(workers: int) -> cf.Executor:
    """One thread, or spawned processes: any ``concurrent.futures`` executor will do."""
    if workers == 1:
        return cf.ThreadPoolExecutor(1)
    return cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
