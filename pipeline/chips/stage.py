"""The chip stage over all scenes: plan, fingerprint, read and quality-check, with progress
and resume (a scene is cut again only when something it is cut from changed)."""

from __future__ import annotations

import concurrent.futures as cf
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.chips.extract import (
    CHIP_COLUMNS,
    QualityRules,
    extract_scene,
    inputs_digest,
    scene_outputs,
)
from pipeline.chips.plan import plan_scene
from pipeline.chips.workers import worker_pool
from pipeline.config import ChipsConfig, RunConfig, SourceConfig
from pipeline.errors import SourceError
from pipeline.progress import progress
from pipeline.sources.access import fingerprint_href
from pipeline.sources.assets import Resolver, asset_location, asset_resolver
from pipeline.sources.base import Scene
from pipeline.sources.fingerprint import UnverifiableAssetError, fingerprint
from pipeline.sources.redact import redact
from pipeline.sources.select import read_scenes
from pipeline.storage import atomic_path, write_json_atomic

log = logging.getLogger(__name__)

Job = tuple[str | None, cf.Future]  # (inputs digest, future rows); no digest: failed early
Submit = Callable[[cf.Executor, Scene], Job]


def extract_chips(config: RunConfig, scenes_path: Path, work: Path) -> Path:
    """Chip every scene in ``scenes_path``; write ``work/chips.parquet`` (one row per chip)."""
    scenes = read_scenes(scenes_path)
    chip_dir = work / "chips"
    failed: dict[str, str] = {}
    source = config.source
    with asset_resolver(source.asset_base, source.items.parent) as resolve:
        submit = _submitter(config, chip_dir, resolve)
        rows, current = _run(scenes, submit, config.chips, failed)
    write_json_atomic(failed_scenes_path(work), failed)
    out = write_chip_index(work / "chips.parquet", rows)
    remove_stale_work_files(chip_dir, current)
    return out


def _submitter(config: RunConfig, chip_dir: Path, resolve: Resolver) -> Submit:
    """Plan and fingerprint a scene here, then hand its reading to the pool; a scene that
    cannot be planned or fingerprinted becomes a failed job (``chips.on_error`` decides)."""
    rules = QualityRules(config.chips.max_nodata_fraction, config.chips.max_cloud_fraction)

    def submit(pool: cf.Executor, scene: Scene) -> Job:
        try:
            chips = plan_scene(scene, config.search.bbox)
            inputs = inputs_digest(scene, chips, rules, asset_fingerprints(scene, config.source))
        except SourceError as exc:
            failed: cf.Future = cf.Future()
            failed.set_exception(exc)
            return None, failed
        return inputs, pool.submit(
            extract_scene, scene, chips, rules, chip_dir, resolve, inputs, config.source.retry
        )

    return submit


def asset_fingerprints(scene: Scene, source: SourceConfig) -> dict[str, dict[str, Any]]:
    """Band -> fingerprint of the asset bytes, taken where ``corpus.lock`` takes them."""
    return {
        band: _fingerprint(
            fingerprint_href(scene, asset_location(a.href, source.asset_base, source.items.parent)),
            source,
            f"scene {scene.item_id} band {band}",
        )
        for band, a in scene.assets.items()
    }


def _fingerprint(location: str, source: SourceConfig, what: str) -> dict[str, Any]:
    """An unverifiable remote asset fails the scene, unless ``source.on_unverifiable: record``
    accepts it: its work files are then keyed by ``{"unverifiable": true}`` (a change in its
    bytes cannot be noticed, as the lock and manifest say)."""
    try:
        return fingerprint(location, source.retry)
    except UnverifiableAssetError as exc:
        if source.on_unverifiable == "record":
            return {"unverifiable": True}
        raise UnverifiableAssetError(f"{what} at {exc.location}", exc.reason) from None
    except OSError as exc:
        raise SourceError(
            f"cannot fingerprint asset {redact(location)}: {redact(str(exc))}; check that it "
            "is readable"
        ) from exc


def _run(
    scenes: list[Scene],
    submit: Submit,
    chips: ChipsConfig,
    failed: dict[str, str],
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every chip row, and item id -> inputs digest of each scene cut or resumed."""
    rows: list[dict[str, Any]] = []
    kept: Counter[str] = Counter()
    with worker_pool(chips.workers) as pool, progress(len(scenes), "scene", "chips") as bar:
        jobs = {s.item_id: submit(pool, s) for s in scenes}
        for item_id, (_, future) in jobs.items():
            scene_rows = _result(item_id, future, chips.on_error, failed)
            rows.extend(scene_rows)
            kept.update(r["sensor"] for r in scene_rows if r["rejected"] is None)
            bar.update(1, kept_s1=kept["s1"], kept_s2=kept["s2"], seen=len(rows))
    current = {i: inputs for i, (inputs, _) in jobs.items() if inputs and i not in failed}
    return rows, current


def failed_scenes_path(work: Path) -> Path:
    return work / "failed_scenes.json"


def _result(
    item_id: str, future: cf.Future, on_error: str, failed: dict[str, str]
) -> list[dict[str, Any]]:
    """A scene's chip rows; an unreadable scene raises, or with ``on_error: skip`` is recorded."""
    try:
        return list(future.result())
    except SourceError as exc:
        if on_error != "skip":
            raise
        failed[item_id] = redact(str(exc))
        log.warning("skipped scene %s: %s", item_id, failed[item_id])
        return []


def write_chip_index(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    """``work/chips.parquet``: rows by key, fixed columns and types, so its bytes do not
    depend on which scenes were cut in this run and which were resumed."""
    table = pa.Table.from_pylist(sorted(rows, key=lambda r: r["key"]), schema=CHIP_COLUMNS)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def remove_stale_work_files(chip_dir: Path, current: Mapping[str, str]) -> list[Path]:
    """Delete the work files not cut from the current inputs of a scene of this run (earlier
    inputs, dropped or failed scenes); temporaries are ``build.remove_partial_files``' job."""
    keep = {
        p.name for item, inputs in current.items() for p in scene_outputs(chip_dir, item, inputs)
    }
    stale = sorted(
        p
        for p in chip_dir.glob("*")
        if p.suffix in (".h5", ".json") and not p.name.startswith(".") and p.name not in keep
    )
    for path in stale:
        path.unlink()
    return stale
