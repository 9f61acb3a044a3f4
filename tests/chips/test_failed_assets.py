"""An unreadable scene fails the build naming the asset, or is skipped and recorded."""

from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipeline.build import build
from pipeline.config import load_config
from pipeline.errors import ChipReadError, SourceError


@pytest.fixture
def broken_archive(tiny_archive, tmp_path):
    archive = tmp_path / "archive"
    shutil.copytree(tiny_archive, archive)
    victim = sorted((archive / "scenes" / "sentinel-1-grd").iterdir())[0]
    (victim / "vv.tif").write_bytes(b"not a tiff")
    return archive, victim.name


def test_unreadable_scene_fails_the_build_by_default(broken_archive, tmp_path, run_config):
    archive, _ = broken_archive
    config = load_config(run_config(tmp_path / "run.yaml", archive, tmp_path / "corpus"))
    with pytest.raises(ChipReadError, match=r"vv\.tif"):
        build(config)
    assert not (tmp_path / "corpus" / "manifest.json").exists()


def test_unreadable_scene_is_skipped_and_recorded_on_request(broken_archive, tmp_path, run_config):
    archive, item_id = broken_archive
    path = run_config(tmp_path / "run.yaml", archive, tmp_path / "corpus")
    raw = yaml.safe_load(path.read_text())
    raw["chips"]["on_error"] = "skip"
    path.write_text(yaml.safe_dump(raw))
    summary = build(load_config(path))
    manifest = json.loads((tmp_path / "corpus" / "manifest.json").read_text())
    assert manifest["complete"] is False
    assert list(manifest["failed_scenes"]) == [item_id]
    assert "vv.tif" in manifest["failed_scenes"][item_id]
    assert summary["failed_scenes"] == manifest["failed_scenes"]
    assert summary["chips"]["s1"] > 0


def _skip_on_error(path):
    raw = yaml.safe_load(path.read_text())
    raw["chips"]["on_error"] = "skip"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def corrupt_archive(tiny_archive, tmp_path, garble_tile):
    """The demo archive with one garbled DEFLATE tile in one S2 band (GDAL alone decodes it
    to wrong pixels: only the tile checksum catches it)."""
    archive = tmp_path / "archive"
    shutil.copytree(tiny_archive, archive)
    victim = sorted((archive / "scenes" / "sentinel-2-l2a").iterdir())[0]
    garble_tile(victim / "B02.tif", 0.98)
    return archive, victim.name


def test_corrupt_tile_fails_the_build_naming_scene_band_and_file(
    corrupt_archive, tmp_path, run_config
):
    archive, item_id = corrupt_archive
    config = load_config(run_config(tmp_path / "run.yaml", archive, tmp_path / "corpus"))
    with pytest.raises(ChipReadError, match=rf"{item_id}: band B02: .*B02\.tif.*DEFLATE checksum"):
        build(config)
    assert not (tmp_path / "corpus" / "manifest.json").exists()


def test_corrupt_tile_is_a_failed_scene_under_skip(corrupt_archive, tmp_path, run_config):
    archive, item_id = corrupt_archive
    path = _skip_on_error(run_config(tmp_path / "run.yaml", archive, tmp_path / "corpus"))
    summary = build(load_config(path))
    manifest = json.loads((tmp_path / "corpus" / "manifest.json").read_text())
    failed = json.loads((tmp_path / "corpus" / "work" / "failed_scenes.json").read_text())
    assert list(failed) == [item_id] and "B02.tif" in failed[item_id]
    assert manifest["failed_scenes"] == failed == summary["failed_scenes"]
    assert manifest["complete"] is False
    chips = pd.read_parquet(tmp_path / "corpus" / "work" / "chips.parquet")
    assert item_id not in set(chips["item_id"])  # no chip of the corrupt scene, none half-read


def _with_wrong_epsg(archive, item_id: str, epsg: int) -> None:
    table = pq.read_table(archive / "items.parquet")
    codes = [
        epsg if i == item_id else c
        for i, c in zip(table["id"].to_pylist(), table["proj:epsg"].to_pylist(), strict=True)
    ]
    column = table.schema.get_field_index("proj:epsg")
    table = table.set_column(
        column, table.schema.field(column), pa.array(codes, table["proj:epsg"].type)
    )
    pq.write_table(table, archive / "items.parquet")


@pytest.fixture
def wrong_epsg_archive(tiny_archive, tmp_path):
    """The demo archive (real COGs) with one S2 item claiming UTM 33N instead of 32N."""
    archive = tmp_path / "archive"
    shutil.copytree(tiny_archive, archive)
    item_id = sorted(p.name for p in (archive / "scenes" / "sentinel-2-l2a").iterdir())[0]
    _with_wrong_epsg(archive, item_id, 32633)
    return archive, item_id


def test_wrong_proj_epsg_is_a_failed_scene_with_the_reason(
    wrong_epsg_archive, tmp_path, run_config
):
    archive, item_id = wrong_epsg_archive
    path = _skip_on_error(run_config(tmp_path / "run.yaml", archive, tmp_path / "corpus"))
    summary = build(load_config(path))
    reason = summary["failed_scenes"][item_id]
    assert list(summary["failed_scenes"]) == [item_id]
    assert re.search(
        r"proj:epsg 32633 and proj:transform put the raster \d+ km east of the item footprint",
        reason,
    )
    assert "check the item's proj:epsg/proj:transform" in reason


def test_wrong_proj_epsg_fails_the_build_by_default(wrong_epsg_archive, tmp_path, run_config):
    archive, item_id = wrong_epsg_archive
    config = load_config(run_config(tmp_path / "run.yaml", archive, tmp_path / "corpus"))
    with pytest.raises(SourceError, match=rf"scene {item_id}: proj:epsg 32633"):
        build(config)
