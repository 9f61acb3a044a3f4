"""Corpus and model Assets: one Asset per corpus directory, one per model run folder.

The DAGs are static but corpora are chosen per run (by the ``config`` param), so the producing
tasks declare an ``AssetAlias`` as outlet and add the concrete ``Asset`` at run time:
``corpus_event`` gives the URI (``file://`` + the corpus directory) and the event's extra.
Airflow records the event against both the Asset and the alias; ``clm_train_closp`` is
scheduled on the alias, so any corpus that publishes a version triggers it, and the task reads
which corpus from the triggering event (``corpus_from_events``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

CORPUS_ALIAS = "clm-corpus"
MODEL_ALIAS = "clm-model"


@dataclass(frozen=True)
class AssetEvent:
    """One asset event to emit: the Asset's URI and name, and the event's extra."""

    uri: str
    name: str
    extra: dict[str, Any]


def asset_uri(folder: Path) -> str:
    """``file://`` URI of an absolute folder (no trailing slash: one Asset per folder)."""
    return Path(folder).resolve().as_uri()


def path_of(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise ValueError(f"asset URI {uri!r} is not a file:// URI")
    return Path(unquote(parsed.path))


def corpus_event(corpus: Path, version: str, diff: Mapping[str, Any], dag_id: str) -> AssetEvent:
    """The event a published corpus version emits (small, JSON: the diff counts only)."""
    uri = asset_uri(corpus)
    extra = {
        "corpus": str(Path(corpus).resolve()),
        "version": version,
        "previous": diff.get("previous"),
        "items_added": len(diff.get("items_added") or []),
        "events_added": len(diff.get("events_added") or []),
        "producer": dag_id,
    }
    return AssetEvent(uri, f"corpus:{uri}", extra)


def model_event(run_dir: Path, corpus: Path, headline: Mapping[str, float]) -> AssetEvent:
    uri = asset_uri(run_dir)
    extra = {"run_dir": str(Path(run_dir).resolve()), "corpus": str(Path(corpus).resolve())}
    return AssetEvent(uri, f"model:{uri}", {**extra, "metrics": dict(headline)})


def corpus_from_events(events: Iterable[Any]) -> Path | None:
    """The corpus of the latest triggering event (by timestamp), or None without events.

    ``events``: Airflow's ``AssetEventDagRunReference`` objects (``.asset.uri``, ``.extra``,
    ``.timestamp``), e.g. ``triggering_asset_events[AssetAlias(CORPUS_ALIAS)]``."""
    latest = max(events, key=lambda e: e.timestamp, default=None)
    if latest is None:
        return None
    extra = latest.extra or {}
    return Path(extra["corpus"]) if extra.get("corpus") else path_of(latest.asset.uri)
