"""An unreadable scene fails the build naming the asset, or is skipped and recorded."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from pipeline.build import build
from pipeline.config import load_config
from pipeline.errors import ChipReadError


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
