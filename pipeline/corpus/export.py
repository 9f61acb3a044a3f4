"""Corpus views, written from the corpus files alone (shards, metadata, records, sources).

- ``clm-hdf5``: ``corpus.h5`` (external links to the shards) plus ``queries.jsonl`` and TREC
  ``qrels/`` for retrieval evaluation, as in the CrisisLandMark release;
- ``webdataset``: tar shards per sensor and split for streaming training;
- ``stac``: a static STAC catalog of the chips and their source scenes.

The build writes the configured views (``output.views``, all by default); ``clm export``
writes one view of an existing corpus and publishes it as a new version (a later build
publishes its configured views only).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.config import CORPUS_VIEWS
from pipeline.corpus.dirlock import corpus_writer
from pipeline.corpus.hdf5_view import write_master
from pipeline.corpus.publish import (
    current_version,
    discard_temporaries,
    open_staging,
    publish_staging,
)
from pipeline.corpus.queries import write_queries
from pipeline.corpus.stac_view import write_stac
from pipeline.corpus.versions import Version
from pipeline.corpus.webdataset import write_webdataset
from pipeline.errors import ConfigError, CorpusError

DEFAULT_WEBDATASET_SHARD_SIZE = 512


def write_view(
    corpus: Path, view: str, webdataset_shard_size: int = DEFAULT_WEBDATASET_SHARD_SIZE
) -> list[Path]:
    """Write one view of the corpus in ``corpus``; returns the main paths written."""
    if view == "clm-hdf5":
        return [write_master(corpus), *write_queries(corpus)]
    if view == "webdataset":
        return write_webdataset(corpus, webdataset_shard_size)
    if view == "stac":
        return [write_stac(corpus)]
    raise ConfigError(f"unknown corpus view {view!r}; choose one of {', '.join(CORPUS_VIEWS)}")


def write_views(
    corpus: Path,
    views: Sequence[str] = CORPUS_VIEWS,
    webdataset_shard_size: int = DEFAULT_WEBDATASET_SHARD_SIZE,
) -> dict[str, list[Path]]:
    """Write every view in ``views`` (in a fixed order); view -> paths."""
    return {
        view: write_view(corpus, view, webdataset_shard_size)
        for view in CORPUS_VIEWS
        if view in views
    }


def export_view(
    corpus: Path, view: str, webdataset_shard_size: int = DEFAULT_WEBDATASET_SHARD_SIZE
) -> tuple[Version, list[Path]]:
    """Write one view of the published corpus in ``corpus`` and publish the result as a
    version (nothing new when the view was already there, byte for byte)."""
    corpus = Path(corpus)
    if view not in CORPUS_VIEWS:
        raise ConfigError(f"unknown corpus view {view!r}; choose one of {', '.join(CORPUS_VIEWS)}")
    if current_version(corpus) is None:
        raise CorpusError(
            f"{corpus} holds no published corpus (no versions/current); build it first "
            "(`clm build --config CONFIG --out DIR`)"
        )
    with corpus_writer(corpus) as held:
        staging = open_staging(held, resume=False)  # never an interrupted build's files
        try:
            written = write_view(staging, view, webdataset_shard_size)
        except BaseException:
            discard_temporaries(staging)
            raise
        version = publish_staging(held)
    return version, [corpus / p.relative_to(staging) for p in written]
