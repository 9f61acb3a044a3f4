"""The search stage: find scenes through the configured source, apply the selection rules,
and record both the scenes and the report of what was left out and why."""

from __future__ import annotations

import concurrent.futures as cf
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.config import RunConfig
from pipeline.errors import ConfigError, SourceError
from pipeline.sources.band_values import apply_overrides
from pipeline.sources.base import Scene, SceneSource, SearchQuery, SearchResult, SkippedItem
from pipeline.sources.geoparquet import GeoParquetSource
from pipeline.sources.selection import Selection, select_scenes, window_queries
from pipeline.sources.settings import ApiSettings
from pipeline.storage import atomic_path, write_json_atomic

SOURCE_KINDS = ("geoparquet", "stac_api", "sentinelhub")


def make_source(config: RunConfig) -> SceneSource:
    kind = config.source.kind
    if kind == "geoparquet":
        return GeoParquetSource(config.source.items)
    if kind == "stac_api":
        from pipeline.sources.stac_api import StacApiSource

        return StacApiSource.from_settings(config.source.api or ApiSettings())
    if kind == "sentinelhub":
        from pipeline.sources.sentinelhub import SentinelHubSource

        return SentinelHubSource(config.source.api or ApiSettings())
    raise ConfigError(f"unknown source.kind {kind!r}; supported: {list(SOURCE_KINDS)}")


def query_of(config: RunConfig) -> SearchQuery:
    """The validated search section is already a query."""
    return config.search


def search_scenes(config: RunConfig, out: Path) -> Path:
    """Write the normalized records of every selected scene to ``out`` (parquet), their band
    contracts carrying the run config's ``source.bands``, and the selection report (rules,
    counts, every scene left out with its reason) beside it."""
    source = make_source(config)
    queries = window_queries(query_of(config), config.selection)
    results = run_searches(source, queries, _concurrency(config))
    found = [scene for result in results for scene in result.scenes]
    selection = select_scenes(found, config.selection, config.search.max_cloud_cover)
    write_json_atomic(report_path(out), selection_report(config, results, selection))
    if not selection.kept:
        skipped = [s for result in results for s in result.skipped]
        raise SourceError(_nothing_found(config, len(found), skipped, report_path(out)))
    write_scenes(apply_overrides(selection.kept, config.source.bands), out)
    return out


def report_path(scenes_out: Path) -> Path:
    return scenes_out.with_suffix(".selection.json")


def run_searches(
    source: SceneSource, queries: list[SearchQuery], max_concurrency: int
) -> list[SearchResult]:
    """Run the searches, at most ``max_concurrency`` at a time; results in query order."""
    with cf.ThreadPoolExecutor(max_workers=max(1, min(max_concurrency, len(queries) or 1))) as pool:
        return list(pool.map(lambda q: search_result(source, q), queries))


def search_result(source: SceneSource, query: SearchQuery) -> SearchResult:
    full = getattr(source, "search_result", None)
    if callable(full):
        result: SearchResult = full(query)
        return result
    return SearchResult(tuple(source.search(query)))


def _concurrency(config: RunConfig) -> int:
    return config.source.api.max_concurrency if config.source.api else 1


def selection_report(
    config: RunConfig, results: list[SearchResult], selection: Selection
) -> dict[str, Any]:
    """Deterministic (no wall-clock time): same recipe and archive, same report."""
    skipped = sorted({(s.item_id, s.collection, s.reason) for r in results for s in r.skipped})
    return {
        "source": config.source.kind,
        "rules": asdict(config.selection),
        "max_cloud_cover": config.search.max_cloud_cover,
        "searches": len(results),
        "truncated": any(r.truncated for r in results),
        "found": len({s.item_id for r in results for s in r.scenes}),
        "kept": len(selection.kept),
        "rejected": [asdict(r) for r in selection.rejected],
        "skipped": [{"item_id": i, "collection": c, "reason": r} for i, c, r in skipped],
    }


def _generic(reason: str, item_id: str) -> str:
    """A skip reason without the item's own id, so that equal reasons count together."""
    return str(reason).replace(f"item {item_id!r}", "the item").replace(repr(item_id), "the item")


def _nothing_found(config: RunConfig, found: int, skipped: list[SkippedItem], report: Path) -> str:
    s = config.search
    where = (
        f"collections {list(s.collections)}, {s.start:%Y-%m-%d}..{s.end:%Y-%m-%d}, bbox {s.bbox}"
    )
    if found:
        return (
            f"{found} scene(s) match {where} but the selection rules reject all of them; "
            f"relax `selection:` (every reason is in {report})"
        )
    if skipped:
        reasons = Counter(_generic(item.reason, item.item_id) for item in skipped).most_common(3)
        listed = "; ".join(f"{reason} ({n} items)" for reason, n in reasons)
        return (
            f"the source returned {len(skipped)} item(s) for {where} but none could be "
            f"normalized, so all were skipped: {listed} (every item and reason is in {report}); "
            "fix the provider profile or mapping file (source.profile) for these items"
        )
    return (
        f"no scenes match {where}; widen search.datetime / search.bbox or raise "
        "search.max_cloud_cover"
    )


def write_scenes(scenes: list[Scene], out: Path) -> None:
    frame = pd.DataFrame([s.to_record() for s in scenes])
    with atomic_path(out) as tmp:
        frame.to_parquet(tmp, index=False)


def read_scenes(path: Path) -> list[Scene]:
    return [Scene.from_record(row) for row in pd.read_parquet(path).to_dict("records")]
