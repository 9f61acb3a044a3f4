"""Task bodies of ``clm_build_corpus`` and ``clm_archive_refresh``: one pipeline call each.

The first task (``check_config``) resolves the params once and hands the resolved paths to the
others through XCom (``run``: a small dict of strings), so every task of a run reads the same
files. A version that changed the corpus is announced as an asset event through the corpus
alias (``assets``); a refresh that found nothing new, or a build that reproduced the latest
version, announces nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigError
from pipeline.orchestration.assets import CORPUS_ALIAS, AssetEvent, corpus_event
from pipeline.orchestration.params import RunPaths, load_run_config, resolve_params
from pipeline.orchestration.settings import airflow_variable, find_base

if TYPE_CHECKING:
    from pipeline.config import RunConfig

log = logging.getLogger(__name__)


def check_config(params: dict[str, Any]) -> dict[str, str | None]:
    """Resolve and validate the params; fail the run at once (no retry) when they are wrong."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        paths = resolve_params(params, find_base(variable=airflow_variable))
        config = load_run_config(paths)
    except ConfigError as exc:
        raise AirflowFailException(str(exc)) from exc
    log.info(
        "run config %s -> corpus %s (source %s)",
        paths.config,
        config.output.dir,
        config.source.kind,
    )
    return {
        "config": str(paths.config),
        "archive": str(paths.archive) if paths.archive else None,
        "out": str(paths.out) if paths.out else None,
        "corpus": str(config.output.dir),
    }


def run_config(run: dict[str, str | None]) -> RunConfig:
    """The run config ``check_config`` resolved (paths are absolute: no base needed)."""
    archive, out = run.get("archive"), run.get("out")
    paths = RunPaths(
        Path(str(run["config"])), Path(archive) if archive else None, Path(out) if out else None
    )
    return load_run_config(paths)


def search(run: dict[str, str | None]) -> str:
    from pipeline.build import stage_search

    return str(stage_search(run_config(run)))


def plan_refresh(run: dict[str, str | None]) -> dict[str, Any]:
    """What is new since the last build; empty (the run short-circuits) when nothing is."""
    from pipeline.build import stage_refresh_scenes

    plan = stage_refresh_scenes(run_config(run))
    log.info("refresh plan: %s", plan.describe())
    return {} if plan.is_empty else plan.to_dict()


def chips(run: dict[str, str | None], scenes: str | None = None) -> str:
    """Chips of ``scenes`` (default: the scene list a refresh plan wrote, ``work/scenes.parquet``)."""
    from pipeline.build import BuildPaths, stage_chips

    config = run_config(run)
    return str(
        stage_chips(config, Path(scenes) if scenes else BuildPaths(config.output.dir).scenes)
    )


def captions(run: dict[str, str | None], chips_index: str) -> str:
    from pipeline.build import stage_captions

    return str(stage_captions(run_config(run), Path(chips_index)))


def publish(
    run: dict[str, str | None], chips_index: str, records: str, outlet_events: Any, dag_id: str
) -> dict[str, Any]:
    """Write and publish the corpus; emit a corpus asset event only for a new version."""
    from pipeline.build import publish_corpus

    config = run_config(run)
    version = publish_corpus(config, Path(chips_index), Path(records))
    if version.published:
        event = corpus_event(config.output.dir, version.name, version.diff, dag_id)
        emit(outlet_events, CORPUS_ALIAS, event)
        log.info("published %s of %s: asset event %s", version.name, config.output.dir, event.uri)
    else:
        log.info("the corpus equals %s: nothing published, no asset event", version.name)
    return {
        "corpus": str(config.output.dir),
        "version": version.name,
        "published": version.published,
    }


def emit(outlet_events: Any, alias: str, event: AssetEvent) -> None:
    """Add ``event`` to the run's outlet events through ``alias`` (Airflow ``outlet_events``)."""
    from airflow.sdk import Asset, AssetAlias

    outlet_events[AssetAlias(alias)].add(Asset(uri=event.uri, name=event.name), extra=event.extra)


def summary(published: dict[str, Any]) -> dict[str, Any]:
    from pipeline.corpus.inspect import format_summary, summarize

    result = summarize(Path(published["corpus"]))
    log.info("%s", format_summary(result))
    return result


def datasheet(published: dict[str, Any]) -> str:
    from pipeline.corpus.report import write_report

    return str(write_report(Path(published["corpus"])))
