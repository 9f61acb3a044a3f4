"""The build, stage by stage. This module and the DAGs are the only places that know the order:

search_scenes -> extract_chips -> caption_chips -> write_corpus -> summarize
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.captions.stage import caption_chips
from pipeline.chips.stage import extract_chips
from pipeline.config import RunConfig
from pipeline.corpus.inspect import summarize
from pipeline.corpus.write import write_corpus
from pipeline.sources.select import search_scenes


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
    def records(self) -> Path:
        return self.work / "records.jsonl"


def stage_search(config: RunConfig) -> Path:
    return search_scenes(config, BuildPaths(config.output.dir).scenes)


def stage_chips(config: RunConfig, scenes: Path) -> Path:
    return extract_chips(config, scenes, BuildPaths(config.output.dir).work)


def stage_captions(config: RunConfig, chips: Path) -> Path:
    return caption_chips(config, chips, BuildPaths(config.output.dir).records)


def stage_corpus(config: RunConfig, chips: Path, records: Path) -> Path:
    return write_corpus(config, chips, records, BuildPaths(config.output.dir).work)


def build(config: RunConfig) -> dict[str, Any]:
    """Run every stage in order; returns the corpus summary."""
    scenes = stage_search(config)
    chips = stage_chips(config, scenes)
    records = stage_captions(config, chips)
    corpus = stage_corpus(config, chips, records)
    return summarize(corpus)
