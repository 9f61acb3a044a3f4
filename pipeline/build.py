"""The build, stage by stage. This module and the DAGs are the only places that know the order:

search_scenes -> extract_chips -> caption_chips -> write_corpus (+ views, lock, version) -> summarize

``refresh`` runs the same stages over the previous scenes plus the new ones; ``rebuild``
runs them over exactly the scenes of a ``corpus.lock``, after checking the inputs for drift.
Every stage writes only while holding the corpus directory's writer lock (one writer per
directory, ``pipeline.corpus.dirlock``); the corpus stage writes a staging version and
publishes it with one atomic switch (``pipeline.corpus.publish``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import engine
from pipeline.captions.stage import caption_chips
from pipeline.chips.stage import extract_chips
from pipeline.config import RunConfig
from pipeline.corpus.dirlock import WriterLock, corpus_writer
from pipeline.corpus.drift import (
    Drift,
    SourceDriftError,
    check_inputs,
    check_items,
    check_outputs,
    format_drift,
)
from pipeline.corpus.export import write_views
from pipeline.corpus.gc import release_work_chips
from pipeline.corpus.inspect import summarize
from pipeline.corpus.lock import (
    LOCK_FILE,
    config_from_lock,
    event_entries,
    fingerprint_inputs,
    output_files,
    read_lock,
    write_lock,
)
from pipeline.corpus.publish import (
    current_version,
    discard_temporaries,
    keep_only,
    open_staging,
    publish_staging,
)
from pipeline.corpus.refresh import RefreshPlan, merged_scenes, plan_refresh, rejected_ids
from pipeline.corpus.versions import Version
from pipeline.corpus.write import SOURCES_FILE, write_corpus
from pipeline.sources.select import read_scenes, search_scenes, write_scenes


@dataclass(frozen=True)
class BuildPaths:
    """Where each stage writes; the work area sits inside the corpus directory."""

    corpus: Path

    @property
    def work(self) -> Path:
        return self.corpus / "work"

    @property
    def scenes(self) -> Path:
        return self.work / "scenes.parquet"

    @property
    def chips(self) -> Path:
        return self.work / "chips.parquet"

    @property
    def chip_dir(self) -> Path:
        return self.work / "chips"

    @property
    def records(self) -> Path:
        return self.work / "records.jsonl"

    @property
    def refresh_scenes(self) -> Path:
        """What the source holds now, searched by a refresh (compared with the lock)."""
        return self.work / "refresh" / "scenes.parquet"

    @property
    def rebuild_scenes(self) -> Path:
        """What the source holds now, searched by a rebuild (checked against the lock)."""
        return self.work / "rebuild" / "scenes.parquet"


def stage_search(config: RunConfig) -> Path:
    with corpus_writer(config.output.dir) as held:
        remove_partial_files(held)
        return search_scenes(config, BuildPaths(held.corpus).scenes)


def remove_partial_files(held: WriterLock) -> list[Path]:
    """Delete the temporaries a killed run left behind (``.NAME.*.tmp``, never a final name;
    see ``pipeline.storage.atomic_path``). Only the holder of the writer lock may: no other
    writer is alive, so every temporary is a dead run's."""
    corpus = held.corpus
    leftovers = sorted(p for p in corpus.rglob(".*.tmp") if p.is_file()) if corpus.is_dir() else []
    for path in leftovers:
        path.unlink()
    return leftovers


def stage_chips(config: RunConfig, scenes: Path) -> Path:
    with corpus_writer(config.output.dir) as held:
        return extract_chips(config, scenes, BuildPaths(held.corpus).work)


def stage_captions(config: RunConfig, chips: Path) -> Path:
    with corpus_writer(config.output.dir) as held:
        return caption_chips(config, chips, BuildPaths(held.corpus).records)


def stage_corpus(config: RunConfig, chips: Path, records: Path) -> Path:
    """Corpus files, the configured views, ``corpus.lock`` and (if anything changed) a version."""
    publish_corpus(config, chips, records)
    return config.output.dir


def publish_corpus(config: RunConfig, chips: Path, records: Path) -> Version:
    """Write the corpus, its views and lock into a staging version, then publish it at once."""
    paths = BuildPaths(config.output.dir)
    out = config.output
    with corpus_writer(paths.corpus) as held:
        inputs = fingerprint_inputs(config, paths.scenes, paths.work)  # before the manifest
        staging = open_staging(held)
        try:
            with engine.executor(config) as pool:
                write_corpus(
                    config,
                    paths.scenes,
                    chips,
                    records,
                    paths.chip_dir,
                    pool,
                    into=staging,
                    published=current_version(paths.corpus),
                )
                write_views(staging, out.views, out.webdataset_shard_size, pool)
                keep_only(
                    staging,
                    [p.relative_to(staging).as_posix() for p in output_files(staging, out.views)],
                )
                write_lock(config, staging, inputs, pool)
        except BaseException:
            discard_temporaries(staging)
            raise
        version = publish_staging(held)
        if out.work_chips == "release":
            release_work_chips(held, paths.chip_dir)
        return version


def build(config: RunConfig) -> dict[str, Any]:
    """Run every stage in order; returns the corpus summary."""
    with corpus_writer(config.output.dir), engine.session(config):
        scenes = stage_search(config)
        chips = stage_chips(config, scenes)
        records = stage_captions(config, chips)
        corpus = stage_corpus(config, chips, records)
    return summarize(corpus)


# ---- incremental refresh -------------------------------------------------------------------


EMPTY_LOCK: dict[str, Any] = {"items": [], "events": [], "watermark": None}


@dataclass(frozen=True)
class RefreshReport:
    plan: RefreshPlan
    version: Version | None  # None when nothing was new


def stage_refresh_scenes(config: RunConfig) -> RefreshPlan:
    """Search, compare with the last build's lock (none: the first refresh builds it all);
    when something is new, write ``work/scenes.parquet`` = the scenes selected now plus
    earlier ones no longer found."""
    paths = BuildPaths(config.output.dir)
    with corpus_writer(paths.corpus) as held:
        first = not (paths.corpus / LOCK_FILE).is_file()  # no build yet: everything is new
        lock = EMPTY_LOCK if first else read_lock(paths.corpus / LOCK_FILE)
        remove_partial_files(held)
        found = search_scenes(config, paths.refresh_scenes)
        current = read_scenes(found)
        plan = plan_refresh(lock, current, event_entries(config))
        if not plan.is_empty:
            previous = [] if first else read_scenes(paths.corpus / SOURCES_FILE)
            write_scenes(merged_scenes(current, previous, rejected_ids(found)), paths.scenes)
    return plan


def refresh(config: RunConfig) -> RefreshReport:
    """Add the scenes and crisis events that appeared since the last build; new version."""
    with corpus_writer(config.output.dir), engine.session(config):
        plan = stage_refresh_scenes(config)
        if plan.is_empty:
            return RefreshReport(plan, None)
        paths = BuildPaths(config.output.dir)
        chips = stage_chips(config, paths.scenes)
        records = stage_captions(config, chips)
        return RefreshReport(plan, publish_corpus(config, chips, records))


# ---- regeneration from a lock --------------------------------------------------------------


@dataclass(frozen=True)
class RebuildReport:
    corpus: Path
    input_drift: tuple[Drift, ...]
    output_drift: tuple[Drift, ...]
    ignored_items: int  # items selected now that are not in the lock

    @property
    def identical(self) -> bool:
        return not self.input_drift and not self.output_drift


def rebuild(
    lock_path: Path, out: Path | None = None, *, allow_drift: bool = False
) -> RebuildReport:
    """Regenerate the corpus of ``lock_path`` into ``out`` (default: the lock's directory)."""
    lock = read_lock(lock_path)
    lock_dir = Path(lock_path) if Path(lock_path).is_dir() else Path(lock_path).parent
    config = config_from_lock(lock, out or lock_dir)
    with corpus_writer(config.output.dir) as held, engine.session(config):
        return _rebuild(config, held, lock, lock_path, allow_drift)


def _rebuild(
    config: RunConfig,
    held: WriterLock,
    lock: dict[str, Any],
    lock_path: Path,
    allow_drift: bool,
) -> RebuildReport:
    paths = BuildPaths(config.output.dir)
    remove_partial_files(held)
    found = read_scenes(search_scenes(config, paths.rebuild_scenes))
    drift = check_inputs(lock, found) + check_items(lock, found)
    if drift and not allow_drift:
        raise SourceDriftError(
            f"{len(drift)} source input(s) changed since {lock_path} was written:\n"
            f"{format_drift(drift)}\nthe corpus cannot be regenerated byte for byte; pass "
            "--allow-drift to rebuild anyway, or run `clm refresh` to add new scenes",
            drift,
        )
    locked = {item["id"] for item in lock["items"]}
    write_scenes([s for s in found if s.item_id in locked], paths.scenes)
    chips = stage_chips(config, paths.scenes)
    publish_corpus(config, chips, stage_captions(config, chips))
    outputs = check_outputs(lock, config.output.dir)
    ignored = sum(s.item_id not in locked for s in found)
    return RebuildReport(config.output.dir, tuple(drift), tuple(outputs), ignored)
