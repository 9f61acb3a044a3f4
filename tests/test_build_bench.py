"""The build benchmark (``benchmarks/``): its pieces against the real build, readers and
server, and a smoke run of the whole command on the tiny archive."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.readers import READERS, resolved
from benchmarks.replicate import pick_scenes, read_items, replicate
from benchmarks.report import disk_usage, marginal_costs
from benchmarks.stage_timing import TOP_LEVEL, VIEWS
from benchmarks.variant import served_item
from pipeline.archive.serve import serve_directory
from pipeline.chips.extract import pixel_sha256
from pipeline.chips.plan import plan_scene
from pipeline.config import load_config
from pipeline.sources.select import read_scenes, search_scenes

REPO = Path(__file__).resolve().parents[1]


def test_every_timed_stage_function_is_still_called_by_name():
    """The stage breakdown wraps these module globals; a rename must update the benchmark."""
    for module_name, name, stage in (*TOP_LEVEL, *VIEWS):
        module = importlib.import_module(module_name)
        assert callable(getattr(module, name, None)), f"{module_name}.{name} ({stage}) is gone"


def _config(archive: Path, out: Path, items: Path):
    config = load_config(REPO / "configs" / "demo.yaml", archive=archive, out=out)
    return dataclasses.replace(config, source=dataclasses.replace(config.source, items=items))


def test_replicated_scenes_all_survive_the_builds_selection(tiny_archive, tmp_path):
    items = read_items(tiny_archive / "items.parquet")
    scene_set = replicate(tiny_archive, items, 3, tmp_path / "served")
    found = read_scenes(
        search_scenes(_config(tiny_archive, tmp_path / "c", scene_set.items), tmp_path / "s.pq")
    )
    once = read_scenes(
        search_scenes(
            _config(tiny_archive, tmp_path / "c", tiny_archive / "items.parquet"),
            tmp_path / "s1.pq",
        )
    )
    assert len(found) == 3 * len(once) > 0
    assert len({s.item_id for s in found}) == len(found)
    for scene in found:  # every copy's COGs exist under its own served path
        assert all((scene_set.root / a.href).is_file() for a in scene.assets.values())
    assert {s.assets["VV" if s.sensor == "s1" else "B02"].href.split("/")[0] for s in found} == {
        "r0",
        "r1",
        "r2",
    }


def test_pick_scenes_spreads_over_sensors(tiny_archive):
    items = read_items(tiny_archive / "items.parquet")
    picked = pick_scenes(items, 4)
    assert len(picked) == 4
    assert {i["collection"] for i in picked} == {i["collection"] for i in items}
    assert pick_scenes(items, None) == sorted(items, key=lambda i: (i["collection"], i["id"]))


def test_every_reader_reads_the_same_arrays_over_http(tiny_archive, tmp_path):
    scene_set = replicate(tiny_archive, read_items(tiny_archive / "items.parquet"), 1, tmp_path)
    scenes = read_scenes(
        search_scenes(_config(tiny_archive, tmp_path / "c", scene_set.items), tmp_path / "s.pq")
    )
    items = {i["id"]: i for i in read_items(scene_set.items)}
    picked = [next(s for s in scenes if s.sensor == sensor) for sensor in ("s2", "s1")]
    with serve_directory(scene_set.root) as server:
        for scene in picked:
            chips = plan_scene(scene)
            served = resolved(scene, server.url)
            item = served_item(items[scene.item_id], server.url)
            hashes = {
                name: {k: pixel_sha256(a) for k, a in reader(served, chips, item)}
                for name, reader in READERS.items()
            }
            assert len(hashes["project_reader"]) == len(chips) > 0
            for name, got in hashes.items():
                assert got == hashes["project_reader"], f"{name} differs on {scene.item_id}"


def test_disk_usage_follows_top_level_links_and_counts_each_file_once(tmp_path):
    corpus = tmp_path / "corpus"
    version = corpus / "versions" / "v1" / "shards"
    version.mkdir(parents=True)
    (version / "a.h5").write_bytes(b"x" * 10000)
    (corpus / "shards").symlink_to(version)
    (corpus / "work").mkdir()
    (corpus / "work" / "w.h5").write_bytes(b"y" * 5000)
    os.link(version / "a.h5", corpus / "work" / "hard.h5")  # the same inode again
    usage = disk_usage(corpus)
    shards = usage["parts"]["shards"]
    assert shards >= 10000
    assert usage["shards"] == shards
    assert usage["total"] == sum(usage["parts"].values())
    assert usage["parts"]["versions"] < shards  # the shard file is counted under shards only
    assert usage["parts"]["work"] < 2 * shards  # the hard link is not counted again


RUN_FIELDS = {
    "variant",
    "multiplier",
    "scenes",
    "chips",
    "seconds",
    "chips_per_s",
    "ms_per_chip",
    "requests",
    "requests_per_chip",
    "bytes_served",
    "bytes_per_chip",
    "file_bytes",
    "bytes_vs_file_size",
    "peak_rss_mb",
    "max_process_rss_mb",
    "arrays",
}


@pytest.mark.slow
def test_the_benchmark_command_on_the_tiny_archive(tiny_archive, tmp_path):
    out = tmp_path / "bench"
    cmd = [sys.executable, "-m", "benchmarks.build_bench", "--scale", "tiny"]
    cmd += ["--archive", str(tiny_archive), "--multipliers", "1,2", "--out", str(out)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    subprocess.run(cmd, cwd=REPO, env=env, check=True, timeout=1200)
    report = json.loads((out / "bench.json").read_text())
    runs = report["runs"]
    variants = {"build", *READERS}
    assert {(r["variant"], r["multiplier"]) for r in runs} == {
        (v, m) for v in variants for m in (1, 2)
    }
    for run in runs:
        assert set(run) >= RUN_FIELDS, run["variant"]
        assert run["arrays"]["identical"], (run["variant"], run["arrays"])
        assert run["chips"] > 0 and run["bytes_served"] > 0 and run["peak_rss_mb"] > 0
    assert report["all_arrays_identical"]
    build = [r for r in runs if r["variant"] == "build"]
    for run in build:
        assert {"chips", "captions", "corpus_shards", "views", "lock_publish"} <= set(
            run["stages"]["seconds"]
        )
        assert {"webdataset", "stac"} <= set(run["stages"]["views_seconds"])
        assert run["corpus_bytes"]["shards"] > 0 and run["kept_chips"] > 0
    reader = {r["multiplier"]: r for r in runs if r["variant"] == "project_reader"}
    assert reader[2]["chips"] == 2 * reader[1]["chips"]  # replication really doubles the work
    assert reader[2]["bytes_served"] == 2 * reader[1]["bytes_served"]
    head = report["headline"]
    assert set(head["by_multiplier"]) == {"x1", "x2"} and head["at_multiplier"] == 2
    assert head["build_vs_reader_chips_per_s"] == head["by_multiplier"]["x2"] > 0
    assert set(report["scaling"]) == variants
    with Image.open(out / "bench.png") as png:
        assert png.format == "PNG" and png.size[0] >= 1000


def test_marginal_costs_cancel_the_fixed_start_up():
    def run(m: int, seconds: float) -> dict:
        stages = {"seconds": {"chips": seconds / 2, "captions": seconds / 2}}
        return {"multiplier": m, "chips": 100 * m, "seconds": seconds, "stages": stages}

    fixed, per_chip = 30.0, 0.05  # seconds, seconds per chip
    runs = [run(m, fixed + per_chip * 100 * m) for m in (1, 4, 16)]
    costs = marginal_costs(runs)
    assert costs["marginal_ms_per_chip"] == pytest.approx(50.0)
    assert costs["fixed_seconds"] == pytest.approx(fixed)
    assert costs["marginal_ms_per_chip_by_stage"]["captions"] == pytest.approx(25.0)
    assert marginal_costs(runs[:1]) == {}
