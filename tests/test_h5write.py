"""The per-chip writers through h5py's low-level API (``pipeline.h5write``) write the bytes of
h5py's high-level calls: chip work files (``extract_scene``) and corpus shards
(``shards_written``, chunks copied or pixels decoded, coords cold or warm), for every recipe of
``CANDIDATES``, S1 (2 bands) and S2 (12 bands). The reference writers below are the plain
high-level calls. ``pixel_sha256`` hashes what it always hashed, whatever the layout."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np
import pytest

import pipeline.chips.extract as extract
from pipeline.chips.extract import QualityRules, extract_scene, pixel_sha256, scene_outputs
from pipeline.chips.grid import ChipGeometry
from pipeline.chips.plan import PlannedChip
from pipeline.chips.read import ChipPixels
from pipeline.compression import CANDIDATES, COMPRESSION_ATTR, shard_compression
from pipeline.corpus import shards as shards_module
from pipeline.corpus.shards import pixel_coords, plan_shards, shard_digest, shards_written
from pipeline.sources.base import Scene
from pipeline.storage import hdf5_atomic

INPUTS = "0123456789abcdef"
BANDS = {"s1": 2, "s2": 12}
LABELS = ("trees", "crops")


def scene(sensor: str) -> Scene:
    collection = {"s1": "sentinel-1-grd", "s2": "sentinel-2-l2a"}[sensor]
    return Scene(
        f"{sensor.upper()}X_LOW_LEVEL",
        collection,
        sensor,
        f"sentinel-{sensor[1]}a",
        datetime(2022, 6, 1, 10, tzinfo=UTC),
        32632,
        (0, 0, 0, 0),
        {},
        {},
    )


def cut(sensor: str) -> list[ChipPixels]:
    """Three chips of a scene, the middle one cloudy (rejected: not in the work file)."""
    rng = np.random.default_rng(len(sensor) + BANDS[sensor])
    item = scene(sensor).item_id
    out = []
    for i in range(3):
        cell = ChipGeometry(32632, 100 + i, 200)
        image = np.round(rng.gamma(2.0, 500.0, (BANDS[sensor], 120, 120)), 1).astype(np.float32)
        out.append(ChipPixels(PlannedChip(f"{item}_{i}", item, cell), image, 0.0, 0.5 * (i == 1)))
    return out


def work_files(work: Path, recipe: str, monkeypatch) -> list[dict]:
    """Both scenes cut by ``extract_scene`` into ``work`` with ``recipe``; the kept rows."""
    monkeypatch.setattr(extract, "WORK_COMPRESSION", recipe)
    monkeypatch.setattr(extract, "read_scene_chips", lambda s, chips, retry: iter(cut(s.sensor)))
    rows = []
    for sensor in BANDS:
        s = scene(sensor)
        planned = [p.chip for p in cut(sensor)]
        rows += extract_scene(s, planned, QualityRules(), work, lambda href: href, INPUTS)
    return [r for r in rows if r["rejected"] is None]


def records(rows: list[dict]) -> dict[str, dict]:
    return {r["key"]: {"labels": list(LABELS)} for r in rows}


def reference_work_file(path: Path, recipe: str, sensor: str) -> bytes:
    """A work file as the chip stage wrote it with h5py's ``create_dataset``."""
    codec = shard_compression(recipe)
    with hdf5_atomic(path) as h5:
        h5.attrs[COMPRESSION_ATTR] = recipe
        for pixels in cut(sensor):
            if pixels.cloud_fraction == 0:
                image = pixels.image
                h5.create_dataset(pixels.chip.key, data=image, **codec.dataset_options(image.shape))
    return path.read_bytes()


def reference_shard(path: Path, rows: list[dict], recipe: str) -> bytes:
    """A shard written with h5py's ``create_group`` / ``create_dataset`` / ``attrs``, every
    dataset through HDF5's filters."""
    codec = shard_compression(recipe)
    images = {p.chip.key: p.image for sensor in BANDS for p in cut(sensor)}
    with hdf5_atomic(path, track_order=True) as h5:
        for row in rows:
            group = h5.create_group(row["key"])
            image = images[row["key"]]
            group.create_dataset("image", data=image, **codec.dataset_options(image.shape))
            coords = pixel_coords(ChipGeometry(row["epsg"], row["col"], row["row"]))
            group.create_dataset("coords", data=coords, **codec.dataset_options(coords.shape))
            group.attrs["crs"] = int(row["epsg"])
            group.attrs["timestamp"] = row["datetime"]
            group.attrs["labels"] = np.array(sorted(LABELS), dtype=h5py.string_dtype())
        h5.attrs[COMPRESSION_ATTR] = recipe
        h5.attrs["content_sha256"] = shard_digest(rows, records(rows), recipe)
    return path.read_bytes()


@pytest.mark.parametrize("recipe", [n for n, r in CANDIDATES.items() if r.reproducible])
def test_low_level_writers_write_the_bytes_of_h5py_high_level(tmp_path, monkeypatch, recipe):
    rows = work_files(tmp_path / "work", recipe, monkeypatch)
    assert len(rows) == 4
    for sensor in BANDS:
        written = scene_outputs(tmp_path / "work", scene(sensor).item_id, INPUTS)[0]
        expected = reference_work_file(tmp_path / f"ref-{sensor}.h5", recipe, sensor)
        assert written.read_bytes() == expected, f"{sensor} work file"

    other = "gzip-1" if recipe == "none" else "none"  # the shard task decodes these pixels
    assert work_files(tmp_path / "other", other, monkeypatch) == rows
    plan = plan_shards(rows, 8)
    assert sorted(plan) == ["s1-00000.h5", "s2-00000.h5"]
    shards_module._COORDS.clear()
    with cf.ThreadPoolExecutor(1) as pool:
        for out, work in [
            ("cold", "work"),  # chunks copied, coords through the filters
            ("warm", "work"),  # chunks copied, coords copied from the cache
            ("decoded", "other"),  # pixels decoded and filtered
        ]:
            with shards_written(pool, tmp_path / out, plan, records(rows), tmp_path / work, recipe):
                pass
    for name, chips in plan.items():
        expected = reference_shard(tmp_path / f"ref-{name}", chips, recipe)
        for out in ("cold", "warm", "decoded"):
            assert (tmp_path / out / "shards" / name).read_bytes() == expected, f"{out} {name}"


@pytest.mark.parametrize(
    "layout",
    [
        lambda a: a,
        np.asfortranarray,
        lambda a: a[:, ::2, 1:],
        lambda a: a[::-1],
        lambda a: a.astype(">f4"),
        lambda a: a.astype(np.float64),
        lambda a: a[0, 0, 0],
    ],
    ids=["c", "fortran", "strided", "reversed", "big-endian", "float64", "scalar"],
)
def test_pixel_sha256_hashes_little_endian_float32_in_c_order(layout):
    image = np.random.default_rng(5).normal(size=(12, 120, 120)).astype(np.float32)
    image[0, 0, :3] = [np.nan, -0.0, np.inf]
    chip = layout(image)
    expected = hashlib.sha256(np.asarray(chip).astype("<f4").tobytes(order="C")).hexdigest()
    assert pixel_sha256(chip) == expected
