"""The chip stage over all scenes: plan, read and quality-check, with progress and resume."""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from pipeline.chips.extract import QualityRules, extract_scene
from pipeline.chips.plan import PlannedChip, plan_scene
from pipeline.config import RunConfig
from pipeline.errors import SourceError
from pipeline.sources.assets import asset_resolver
from pipeline.sources.base import Scene
from pipeline.sources.redact import redact
from pipeline.sources.select import read_scenes
from pipeline.storage import atomic_path, write_json_atomic

log = logging.getLogger(__name__)


def extract_chips(config: RunConfig, scenes_path: Path, work: Path) -> Path:
    """Chip every scene in ``scenes_path``; write ``work/chips.parquet`` (one row per chip)."""
    scenes = read_scenes(scenes_path)
    failed: dict[str, str] = {}
    plans = _plans(scenes, config.search.bbox, config.chips.on_error, failed)
    scenes = [s for s in scenes if s.item_id in plans]
    rules = QualityRules(config.chips.max_nodata_fraction, config.chips.max_cloud_fraction)
    chip_dir = work / "chips"
    with asset_resolver(config.source.asset_base, config.source.items.parent) as resolve:
        rows = _run(scenes, plans, rules, chip_dir, resolve, config, failed)
    write_json_atomic(failed_scenes_path(work), failed)
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
    config: RunConfig,
    failed: dict[str, str],
) -> list[dict[str, Any]]:
    chips, retry = config.chips, config.source.retry
    rows: list[dict[str, Any]] = []
    kept: Counter[str] = Counter()
    bar = tqdm(total=len(scenes), unit="scene", desc="chips", mininterval=1.0)
    with _executor(chips.workers) as pool:
        futures = {
            s.item_id: pool.submit(
                extract_scene, s, plans[s.item_id], rules, chip_dir, resolve, retry
            )
            for s in scenes
        }
        for item_id, future in futures.items():
            scene_rows = _result(item_id, future, chips.on_error, failed)
            rows.extend(scene_rows)
            kept.update(r["sensor"] for r in scene_rows if r["rejected"] is None)
            bar.set_postfix({"kept_s1": kept["s1"], "kept_s2": kept["s2"], "seen": len(rows)})
            bar.update()
    bar.close()
    return rows


def _plans(
    scenes: list[Scene], bbox: Any, on_error: str, failed: dict[str, str]
) -> dict[str, list[PlannedChip]]:
    """The chips of every scene whose item geometry is consistent (others: as ``_result``)."""
    plans = {}
    for scene in scenes:
        try:
            plans[scene.item_id] = plan_scene(scene, bbox)
        except SourceError as exc:
            _skip_or_raise(scene.item_id, exc, on_error, failed)
    return plans


def failed_scenes_path(work: Path) -> Path:
    return work / "failed_scenes.json"


def _result(
    item_id: str, future: cf.Future, on_error: str, failed: dict[str, str]
) -> list[dict[str, Any]]:
    """A scene's chip rows; an unreadable scene raises, or with ``on_error: skip`` is recorded."""
    try:
        return list(future.result())
    except SourceError as exc:
        _skip_or_raise(item_id, exc, on_error, failed)
        return []


def _skip_or_raise(item_id: str, exc: SourceError, on_error: str, failed: dict[str, str]) -> None:
    if on_error != "skip":
        raise exc
    failed[item_id] = redact(str(exc))
    log.warning("skipped scene %s: %s", item_id, failed[item_id])


def _executor(workers: int) -> cf.Executor:
    if workers <= 1:
        return cf.ThreadPoolExecutor(max_workers=1)
    return cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
