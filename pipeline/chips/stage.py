"""The chip stage over all scenes: plan here, then fingerprint, read and quality-check each
scene on the build's engine (a scene is the unit of work), with progress in chips and resume
(a scene is cut again only when something it is cut from changed)."""

from __future__ import annotations

import concurrent.futures as cf
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import engine
from pipeline.chips.extract import (
    CHIP_COLUMNS,
    QualityRules,
    extract_scene,
    inputs_digest,
    scene_outputs,
)
from pipeline.chips.plan import PlannedChip, plan_scene
from pipeline.chips.read import read_bands
from pipeline.config import RunConfig, SourceConfig
from pipeline.engine.slots import ProviderLimits
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

Planned = tuple[Scene, "list[PlannedChip] | SourceError"]  # a scene, its chips or why none


def extract_chips(config: RunConfig, scenes_path: Path, work: Path) -> Path:
    """Chip every scene in ``scenes_path``; write ``work/chips.parquet`` (one row per chip)."""
    planned = [_plan(scene, config) for scene in read_scenes(scenes_path)]
    chip_dir = work / "chips"
    failed: dict[str, str] = {}
    source = config.source
    with asset_resolver(source.asset_base, source.items.parent) as resolve:
        job = SceneJob(_rules(config), chip_dir, resolve, source, engine.provider_limits(config))
        with engine.executor(config) as pool:
            rows, current, taken = _run(pool, job, planned, config.chips.on_error, failed)
    write_json_atomic(failed_scenes_path(work), failed)
    write_json_atomic(taken_fingerprints_path(work), taken)
    out = write_chip_index(work / "chips.parquet", rows)
    remove_stale_work_files(chip_dir, current)
    return out


def _rules(config: RunConfig) -> QualityRules:
    return QualityRules(config.chips.max_nodata_fraction, config.chips.max_cloud_fraction)


def _plan(scene: Scene, config: RunConfig) -> Planned:
    """The scene's chips; a scene that cannot be planned fails (``chips.on_error`` decides)."""
    try:
        return scene, plan_scene(scene, config.search.bbox)
    except SourceError as exc:
        return scene, exc


@dataclass(frozen=True)
class SceneJob:
    """What a worker needs to cut a scene, by value: a worker may run on another machine
    (the paths must be shared, credentials come from the worker's environment)."""

    rules: QualityRules
    chip_dir: Path
    resolve: Resolver
    source: SourceConfig
    limits: ProviderLimits


@dataclass(frozen=True)
class SceneCut:
    inputs: str  # the inputs digest naming the scene's work files
    rows: list[dict[str, Any]]  # one per planned chip
    prints: dict[str, dict[str, Any]]  # band -> the fingerprint it was cut from (verified)


def cut_scene(job: SceneJob, scene: Scene, chips: Sequence[PlannedChip]) -> SceneCut:
    """On a worker: fingerprint the scene's assets and cut its chips (or find them cut by an
    earlier run), holding a slot of each provider it reads from."""
    hrefs = [a.href for a in scene.assets.values()]
    reads = [job.resolve(h) for h in hrefs]
    locations = [asset_location(h, job.source.asset_base, job.source.items.parent) for h in hrefs]
    with job.limits.hold([*reads, *locations]):
        by_band = asset_fingerprints(scene, job.source)
        inputs = inputs_digest(scene, chips, job.rules, by_band)
        rows = extract_scene(
            scene, chips, job.rules, job.chip_dir, job.resolve, inputs, job.source.retry
        )
    taken = {band: fp for band, fp in by_band.items() if "unverifiable" not in fp}
    return SceneCut(inputs, rows, taken)


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
    pool: cf.Executor,
    job: SceneJob,
    planned: list[Planned],
    on_error: str,
    failed: dict[str, str],
) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, dict[str, dict[str, Any]]]]:
    """Every chip row, item id -> inputs digest of each scene cut or resumed, and the asset
    fingerprints the scenes were cut from; progress in chips as scenes complete, in any
    order (rows are sorted by key when written)."""
    rows: list[dict[str, Any]] = []
    current: dict[str, str] = {}
    taken: dict[str, dict[str, dict[str, Any]]] = {}
    kept: Counter[str] = Counter()
    total = sum(len(chips) for _, chips in planned if isinstance(chips, list))
    with progress(total, "chip", "chips") as bar:
        futures = {}
        runnable = []
        for scene, chips in planned:
            if isinstance(chips, SourceError):
                _result(scene.item_id, _failed(chips), on_error, failed)
                continue
            runnable.append((scene, chips))
        for scene, chips in sorted(runnable, key=_band_chips, reverse=True):
            futures[pool.submit(cut_scene, job, scene, chips)] = (scene.item_id, len(chips))
        for future in cf.as_completed(futures):
            item_id, n = futures.pop(future)  # dropped: the worker frees the result
            cut = _result(item_id, future, on_error, failed)
            scene_rows = cut.rows if cut else []
            if cut:
                current[item_id] = cut.inputs
                taken[item_id] = cut.prints
            rows.extend(scene_rows)
            kept.update(r["sensor"] for r in scene_rows if r["rejected"] is None)
            bar.update(n, kept_s1=kept["s1"], kept_s2=kept["s2"], scenes=len(current))
    return rows, current, dict(sorted(taken.items()))


def _band_chips(planned: tuple[Scene, list[PlannedChip]]) -> int:
    """A scene's work (chips x bands read): the largest scenes are submitted first, so the
    last tasks of the stage are short ones and no worker waits long for the others."""
    scene, chips = planned
    return len(chips) * len(read_bands(scene))


def _failed(exc: BaseException) -> cf.Future:
    future: cf.Future = cf.Future()
    future.set_exception(exc)
    return future


def failed_scenes_path(work: Path) -> Path:
    return work / "failed_scenes.json"


def taken_fingerprints_path(work: Path) -> Path:
    """Item id -> band -> fingerprint of every verified asset this run's scenes were cut from
    (cut or resumed), as the chip workers took them: ``corpus.lock`` records these, so it
    names the bytes the chips come from and the build process need not ask again. Keyed by
    item and band, never by URL: a signed URL carries its signature."""
    return work / "asset_fingerprints.json"


def _result(
    item_id: str, future: cf.Future, on_error: str, failed: dict[str, str]
) -> SceneCut | None:
    """A scene cut (or resumed); an unreadable scene raises, or with ``on_error: skip`` is
    recorded (``None``)."""
    try:
        cut: SceneCut = future.result()
        return cut
    except SourceError as exc:
        if on_error != "skip":
            raise
        failed[item_id] = redact(str(exc))
        log.warning("skipped scene %s: %s", item_id, failed[item_id])
        return None


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
