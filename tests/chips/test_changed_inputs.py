"""A rerun re-cuts exactly the scenes whose asset bytes changed, and ``work/chips.parquet``
never depends on which scenes were resumed (real COGs, real reads, real ``clm`` processes)."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml

import pipeline.chips.extract
from pipeline.build import stage_chips, stage_search
from pipeline.chips.extract import CHIP_COLUMNS
from pipeline.config import load_config
from pipeline.corpus.drift import check_outputs
from pipeline.corpus.lock import LOCK_FILE, read_lock
from pipeline.errors import SourceError


@pytest.fixture
def archive(tiny_archive, tmp_path):
    """A private copy of the tiny archive, to change assets in."""
    target = tmp_path / "archive"
    shutil.copytree(tiny_archive, target)
    return target


def chip_stage(config_path: Path) -> Path:
    """Search then chip, as ``clm build`` does; returns ``work/chips.parquet``."""
    config = load_config(config_path)
    return stage_chips(config, stage_search(config))


def rewrite_pixels(path: Path, offset: int = 7) -> None:
    """Rewrite a COG with rasterio, adding ``offset`` to every valid (non-zero) pixel."""
    with rasterio.open(path) as ds:
        profile, data = ds.profile, ds.read()
    changed = np.where(data > 0, data + offset, data).astype(data.dtype)
    tmp = path.with_name(f"new-{path.name}")
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(changed)
    tmp.replace(path)


def busiest_s2_scene(chips: pd.DataFrame) -> str:
    kept = chips[(chips["sensor"] == "s2") & chips["rejected"].isna()]
    return str(kept["item_id"].value_counts().sort_index().idxmax())


def work_files(chip_dir: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in chip_dir.iterdir()}


def record_scene_reads(monkeypatch) -> list[str]:
    """Item ids the chip reader is asked to read (the real reader does the reading)."""
    reads: list[str] = []
    real = pipeline.chips.extract.read_scene_chips

    def counted(scene, *args, **kwargs):
        reads.append(scene.item_id)
        return real(scene, *args, **kwargs)

    monkeypatch.setattr(pipeline.chips.extract, "read_scene_chips", counted)
    return reads


def test_a_changed_asset_re_cuts_its_scene_and_nothing_else(
    archive, tmp_path, run_config, monkeypatch
):
    config = run_config(tmp_path / "run.yaml", archive, tmp_path / "corpus")
    before = pd.read_parquet(chip_stage(config)).set_index("key")
    chip_dir = tmp_path / "corpus" / "work" / "chips"
    files_before = work_files(chip_dir)
    victim = busiest_s2_scene(before.reset_index())
    rewrite_pixels(archive / "scenes" / "sentinel-2-l2a" / victim / "B04.tif")

    reads = record_scene_reads(monkeypatch)
    after = pd.read_parquet(chip_stage(config)).set_index("key")

    assert reads == [victim]
    mine = before["item_id"] == victim
    kept = before.index[mine & before["rejected"].isna()]
    assert len(kept) > 1
    assert (after.loc[kept, "pixel_sha256"] != before.loc[kept, "pixel_sha256"]).all()
    others = before.index[~mine]
    pd.testing.assert_frame_equal(after.loc[others], before.loc[others])
    files_after = work_files(chip_dir)
    untouched = {n: v for n, v in files_before.items() if not n.startswith(victim)}
    assert {n: files_after.get(n) for n in untouched} == untouched
    recut = sorted(n for n in files_after if n.startswith(victim))
    assert len(recut) == 2, "the stale work files of the re-cut scene must be gone"
    assert not set(recut) & set(files_before)


@pytest.mark.parametrize("resumed", ["every scene", "every other scene"])
def test_chips_index_has_the_same_bytes_whichever_scenes_were_resumed(
    resumed, tiny_archive, tmp_path, run_config
):
    config = run_config(tmp_path / "run.yaml", tiny_archive, tmp_path / "corpus")
    index = chip_stage(config)
    clean = index.read_bytes()
    rows = json.loads(next((index.parent / "chips").glob("*.json")).read_text())
    assert set(rows[0]) == set(CHIP_COLUMNS.names)  # no field dropped or left empty
    if resumed == "every other scene":
        items = sorted(pd.read_parquet(index)["item_id"].unique())
        for item in items[::2]:
            for path in (index.parent / "chips").glob(f"{item}.*"):
                path.unlink()
    index.unlink()

    assert chip_stage(config).read_bytes() == clean


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unreachable_config(tmp_path, tiny_archive, run_config, on_error: str) -> Path:
    path = run_config(tmp_path / "run.yaml", tiny_archive, tmp_path / "corpus")
    raw = yaml.safe_load(path.read_text())
    raw["source"]["asset_base"] = f"http://127.0.0.1:{closed_port()}/archive"
    raw["search"]["collections"] = ["sentinel-1-grd"]
    raw["chips"]["on_error"] = on_error
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow  # the reader retries every unreachable asset
def test_unreachable_assets_fail_the_chip_stage_by_default(tiny_archive, tmp_path, run_config):
    with pytest.raises(SourceError, match=r"127\.0\.0\.1"):
        chip_stage(unreachable_config(tmp_path, tiny_archive, run_config, "raise"))


@pytest.mark.slow
def test_unreachable_assets_are_skipped_and_recorded_on_request(tiny_archive, tmp_path, run_config):
    index = chip_stage(unreachable_config(tmp_path, tiny_archive, run_config, "skip"))
    failed = yaml.safe_load((index.parent / "failed_scenes.json").read_text())
    scenes = pd.read_parquet(index.parent / "scenes.parquet")["item_id"]
    assert sorted(failed) == sorted(scenes)
    assert all("127.0.0.1" in reason for reason in failed.values())
    assert pd.read_parquet(index).empty
    assert not list((index.parent / "chips").glob("*.h5"))


READS_LOGGED = r"""
import sys
import pipeline.chips.extract as extract
log, real = sys.argv[1], extract.read_scene_chips
def logged(scene, *args, **kwargs):
    with open(log, "a") as fh:
        fh.write(scene.item_id + "\n")
    return real(scene, *args, **kwargs)
extract.read_scene_chips = logged
from pipeline.cli import app
sys.argv = ["clm", *sys.argv[2:]]
app()
"""


def clm(*args: object, reads: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``clm``; with ``reads``, log the item id of every scene read into that file."""
    argv = [str(a) for a in args]
    if reads is None:
        command = [str(Path(sys.executable).parent / "clm"), *argv]
    else:
        command = [sys.executable, "-c", READS_LOGGED, str(reads), *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_rebuild_after_an_asset_changed_re_cuts_it_and_keeps_the_lock_true(
    archive, tmp_path, run_config
):
    out = tmp_path / "corpus"
    config = run_config(tmp_path / "run.yaml", archive, out)
    assert clm("build", "--config", config).returncode == 0
    before = pd.read_parquet(out / "work" / "chips.parquet").set_index("key")
    victim = busiest_s2_scene(before.reset_index())
    band = archive / "scenes" / "sentinel-2-l2a" / victim / "B04.tif"
    rewrite_pixels(band)

    reads = tmp_path / "reads.txt"
    result = clm("build", "--config", config, reads=reads)
    assert result.returncode == 0, result.stderr[-2000:]

    assert (reads.read_text().split() if reads.exists() else []) == [victim]
    after = pd.read_parquet(out / "work" / "chips.parquet").set_index("key")
    kept = before.index[(before["item_id"] == victim) & before["rejected"].isna()]
    assert (after.loc[kept, "pixel_sha256"] != before.loc[kept, "pixel_sha256"]).all()
    lock = read_lock(out / LOCK_FILE)
    item = next(i for i in lock["items"] if i["id"] == victim)
    assert item["assets"]["B04"]["sha256"] == hashlib.sha256(band.read_bytes()).hexdigest()
    assert check_outputs(lock, out) == []
    in_place = clm("rebuild", "--lock", out / LOCK_FILE)
    assert in_place.returncode == 0, in_place.stdout + in_place.stderr[-2000:]
    from_scratch = clm("rebuild", "--lock", out / LOCK_FILE, "--out", tmp_path / "fresh")
    assert from_scratch.returncode == 0, from_scratch.stdout + from_scratch.stderr[-2000:]
