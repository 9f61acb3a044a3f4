"""The search stage: find scenes through the configured source and record them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.config import RunConfig
from pipeline.errors import ConfigError, SourceError
from pipeline.sources.base import Scene, SceneSource, SearchQuery
from pipeline.sources.geoparquet import GeoParquetSource
from pipeline.storage import atomic_path


def make_source(config: RunConfig) -> SceneSource:
    if config.source.kind == "geoparquet":
        return GeoParquetSource(config.source.items)
    raise ConfigError(f"unknown source.kind {config.source.kind!r}; supported: geoparquet")


def query_of(config: RunConfig) -> SearchQuery:
    s = config.search
    return SearchQuery(s.collections, s.start, s.end, s.bbox, s.max_cloud_cover)


def search_scenes(config: RunConfig, out: Path) -> Path:
    """Write the normalized records of every matching scene to ``out`` (parquet)."""
    scenes = list(make_source(config).search(query_of(config)))
    if not scenes:
        raise SourceError(
            f"no scenes match collections {list(config.search.collections)}, "
            f"{config.search.start:%Y-%m-%d}..{config.search.end:%Y-%m-%d}, bbox {config.search.bbox}; "
            "widen search.datetime / search.bbox or raise search.max_cloud_cover"
        )
    write_scenes(scenes, out)
    return out


def write_scenes(scenes: list[Scene], out: Path) -> None:
    frame = pd.DataFrame([s.to_record() for s in scenes])
    with atomic_path(out) as tmp:
        frame.to_parquet(tmp, index=False)


def read_scenes(path: Path) -> list[Scene]:
    return [Scene.from_record(row) for row in pd.read_parquet(path).to_dict("records")]
