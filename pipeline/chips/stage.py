"""The chip stage over all scenes: plan, read and quality-check, with progress and resume."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from pipeline.chips.extract import QualityRules, extract_scene
from pipeline.chips.plan import PlannedChip, plan_scene
from pipeline.config import RunConfig
from pipeline.sources.assets import asset_resolver
from pipeline.sources.base import Scene
from pipeline.sources.select import read_scenes
from pipeline.storage import atomic_path


def extract_chips(config: RunConfig, scenes_path: Path, work: Path) -> Path:
    """Chip every scene in ``scenes_path``; write ``work/chips.parquet`` (one row per chip)."""
    scenes = read_scenes(scenes_path)
    plans = {s.item_id: plan_scene(s, config.search.bbox) for s in scenes}
    rules = QualityRules(config.chips.max_nodata_fraction, config.chips.max_cloud_fraction)
    chip_dir = work / "chips"
    with asset_resolver(config.source.asset_base, config.source.items.parent) as resolve:
        rows = _run(scenes, plans, rules, chip_dir, resolve, config.chips.workers)
    out = work / "chips.parquet"
    with atomic_path(out) as tmp:
        pd.DataFrame(rows).sort_values("key").to_parquet(tmp, index=False)
    return out


def _run(
    scenes: list[Scene],
    plans: dict[str, list[PlannedChip]],
    rules: QualityRules,
    chip_dir: Path,
    resolve: Any,
    workers: int,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    kept: Counter[str] = Counter()
    bar = tqdm(total=len(scenes), unit="scene", desc="chips", mininterval=1.0)
    with _executor(workers) as pool:
        futures = [
            pool.submit(extract_scene, s, plans[s.item_id], rules, chip_dir, resolve)
            for s in scenes
        ]
        for future in futures:
            scene_rows = future.result()
            rows.extend(scene_rows)
            kept.update(r["sensor"] for r in scene_rows if r["rejected"] is None)
            bar.set_postfix({"kept_s1": kept["s1"], "kept_s2": kept["s2"], "seen": len(rows)})
            bar.update()
    bar.close()
    return rows


def _executor(workers: int) -> cf.Executor:
    if workers <= 1:
        return cf.ThreadPoolExecutor(max_workers=1)
    return cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
