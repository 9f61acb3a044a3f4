"""One measured variant, run in its own process so its peak memory is its own:

    python -m benchmarks.variant SPEC.json RESULT.json

``SPEC`` names the variant (a reader of ``benchmarks.readers`` or ``build``), the scenes
(``scenes.parquet`` of the build's search), the items, the server URL and the workers. The
result holds the wall time, the chips read and a SHA-256 per chip of its converted pixels
(the chip stage's ``pixel_sha256``), so the caller can check that every reader read the same.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import multiprocessing
import resource
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from benchmarks.readers import READERS, resolved
from benchmarks.replicate import read_items
from benchmarks.stage_timing import breakdown, stage_timers
from pipeline.chips.extract import pixel_sha256
from pipeline.chips.plan import PlannedChip, plan_scene
from pipeline.sources.base import Scene
from pipeline.sources.select import read_scenes
from pipeline.storage import write_json_atomic

Task = tuple[str, Scene, list[PlannedChip], dict[str, Any]]


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    result = run_build(spec) if spec["variant"] == "build" else run_reader(spec)
    result["max_process_rss_bytes"] = max_process_rss()
    write_json_atomic(Path(argv[1]), result)
    return 0


def run_reader(spec: dict[str, Any]) -> dict[str, Any]:
    """Every planned chip of every scene through one reader, scenes spread over the workers."""
    tasks = reader_tasks(spec)
    start = time.perf_counter()
    if spec["workers"] <= 1:
        per_scene = [scene_hashes(task) for task in tasks]
    else:
        spawn = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(spec["workers"], mp_context=spawn) as pool:
            per_scene = list(pool.map(scene_hashes, tasks))
    seconds = time.perf_counter() - start
    hashes = dict(pair for scene in per_scene for pair in scene)
    return {"seconds": seconds, "chips": len(hashes), "hashes": hashes}


def reader_tasks(spec: dict[str, Any]) -> list[Task]:
    """(reader, scene with served hrefs, planned chips, STAC item with served hrefs)."""
    items = {i["id"]: served_item(i, spec["base_url"]) for i in read_items(Path(spec["items"]))}
    bbox = tuple(spec["bbox"]) if spec.get("bbox") else None
    return [
        (spec["variant"], resolved(s, spec["base_url"]), plan_scene(s, bbox), items[s.item_id])
        for s in read_scenes(Path(spec["scenes"]))
    ]


def served_item(item: dict[str, Any], base_url: str) -> dict[str, Any]:
    assets = {k: {**a, "href": f"{base_url}/{a['href']}"} for k, a in item["assets"].items()}
    return {**item, "assets": assets}


def scene_hashes(task: Task) -> list[tuple[str, str]]:
    """(chip key, pixel SHA-256) of every chip of one scene, read by the task's reader."""
    name, scene, chips, item = task
    if name.startswith("odc"):
        import odc.stac

        odc.stac.configure_rio(cloud_defaults=True)
    return [(key, pixel_sha256(image)) for key, image in READERS[name](scene, chips, item)]


def run_build(spec: dict[str, Any]) -> dict[str, Any]:
    """``pipeline.build.build`` on the served scene set, timed stage by stage."""
    from pipeline.build import build

    config = build_config(spec)
    chip_rows: list[dict[str, Any]] = []
    hooks = {"chips": lambda path: chip_rows.extend(pq.read_table(path).to_pylist())}
    with stage_timers(after=hooks) as stages:
        start = time.perf_counter()
        summary = build(config)
        seconds = time.perf_counter() - start
    kept = {r["key"]: r["pixel_sha256"] for r in chip_rows if r["rejected"] is None}
    return {
        "seconds": seconds,
        "chips": len(chip_rows),
        "kept_chips": len(kept),
        "hashes": kept,
        "stages": breakdown(stages, seconds),
        "summary_chips": summary.get("chips") if isinstance(summary, dict) else None,
    }


def build_config(spec: dict[str, Any]) -> Any:
    """The demo recipe over the benchmark's archive, items, server and workers."""
    from pipeline.config import load_config

    config = load_config(spec["config"], archive=Path(spec["archive"]), out=Path(spec["out"]))
    source = dataclasses.replace(
        config.source, items=Path(spec["items"]), asset_base=spec["base_url"]
    )
    engine = dataclasses.replace(config.engine, n_workers=spec["workers"])
    return dataclasses.replace(config, source=source, engine=engine)


def max_process_rss() -> int:
    """The largest resident set of this process or any of its (finished) workers, bytes."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, workers) * 1024  # Linux reports KiB


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
