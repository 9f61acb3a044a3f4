"""The caption stage: the same bytes for any number of workers, and static labels computed
once per cell and reused by reruns (from ``work/labels/``) until a product changes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from pipeline.build import stage_chips, stage_search
from pipeline.captions.stage import caption_chips, kept_chips
from pipeline.config import load_config
from pipeline.labels import raster_blocks
from pipeline.labels.raster_fractions import open_dataset


@pytest.fixture(scope="module")
def chips_index(tiny_archive, run_config, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("captions")
    config = load_config(run_config(root / "run.yaml", tiny_archive, root / "corpus"))
    return stage_chips(config, stage_search(config))


def _config(run_config, tmp_path: Path, archive: Path, workers: int):
    chips = {"max_nodata_fraction": 0.05, "max_cloud_fraction": 0.1, "workers": workers}
    path = run_config(tmp_path / f"run-{workers}.yaml", archive, tmp_path / "unused", chips=chips)
    return load_config(path)


def _run(config, chips_index: Path, work: Path) -> tuple[bytes, bytes]:
    out = caption_chips(config, chips_index, work / "records.jsonl")
    return out.read_bytes(), (work / "label_warnings.json").read_bytes()


def test_one_or_two_workers_write_the_same_bytes(
    tiny_archive, run_config, chips_index, tmp_path
) -> None:
    one = _run(_config(run_config, tmp_path, tiny_archive, 1), chips_index, tmp_path / "w1")
    two = _run(_config(run_config, tmp_path, tiny_archive, 2), chips_index, tmp_path / "w2")
    assert one[0].count(b"\n") == len(kept_chips(chips_index)) > 0
    assert one == two


@pytest.fixture
def count_reads(monkeypatch) -> list[str]:
    """Every label raster window read (``raster_blocks.read_window``) in this process."""
    reads: list[str] = []
    original = raster_blocks.read_window

    def counting(ds, band, window, href):
        reads.append(href)
        return original(ds, band, window, href)

    monkeypatch.setattr(raster_blocks, "read_window", counting)
    open_dataset.cache_clear()
    return reads


def test_rerun_reads_no_label_raster_and_a_changed_product_is_recomputed(
    tiny_archive, run_config, chips_index, tmp_path, count_reads
) -> None:
    archive = tmp_path / "archive"
    shutil.copytree(tiny_archive, archive)
    config = _config(run_config, tmp_path, archive, 1)  # one thread: reads counted here
    work = tmp_path / "work"
    first = _run(config, chips_index, work)
    assert count_reads, "the first run computes the static labels"
    assert len(list((work / "labels").glob("*.parquet"))) == 1

    count_reads.clear()
    assert _run(config, chips_index, work) == first
    assert count_reads == []

    corine = Path(config.labels.corine[0].href)
    with rasterio.open(corine, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:
        data = ds.read(1)
        ds.write(np.where(data == data[0, 0], data, data[0, 0]).astype(data.dtype), 1)
    open_dataset.cache_clear()
    count_reads.clear()
    _run(config, chips_index, work)
    assert str(corine) in count_reads
    assert len(list((work / "labels").glob("*.parquet"))) == 2
