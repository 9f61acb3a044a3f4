"""Corpus views, written from the corpus files alone (shards, metadata, records, sources).

- ``clm-hdf5``: ``corpus.h5`` (external links to the shards) plus ``queries.jsonl`` and TREC
  ``qrels/`` for retrieval evaluation, as in the CrisisLandMark release;
- ``webdataset``: tar shards per sensor and split for streaming training;
- ``stac``: a static STAC catalog of the chips and their source scenes.

The build writes the configured views (``output.views``, all by default); ``clm export``
writes one view of an existing corpus and publishes it as a new version (a later build
publishes its configured views only). Two exports go to a separate directory (``--out``),
leaving the corpus unchanged: ``clm-release`` (the CrisisLandMark release layout, see
``pipeline/corpus/release.py``) and ``hf`` (Parquet + dataset card, ``pipeline/corpus/hf.py``).
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Sequence
from pathlib import Path

from pipeline.config import CORPUS_VIEWS
from pipeline.corpus.dirlock import corpus_writer
from pipeline.corpus.export_dir import check_export_target
from pipeline.corpus.hdf5_view import write_master
from pipeline.corpus.hf import export_hf
from pipeline.corpus.publish import (
    current_version,
    discard_temporaries,
    open_staging,
    publish_staging,
)
from pipeline.corpus.queries import write_queries
from pipeline.corpus.release import export_release
from pipeline.corpus.stac_view import write_stac
from pipeline.corpus.versions import Version
from pipeline.corpus.webdataset import write_webdataset
from pipeline.errors import ConfigError, CorpusError

DEFAULT_WEBDATASET_SHARD_SIZE = 512
EXPORT_FORMATS = ("clm-release", "hf")


def write_view(
    corpus: Path,
    view: str,
    webdataset_shard_size: int = DEFAULT_WEBDATASET_SHARD_SIZE,
    pool: cf.Executor | None = None,
) -> list[Path]:
    """Write one view of the corpus in ``corpus`` (WebDataset tars and STAC validation as
    tasks on ``pool``, default here); returns the main paths written."""
    if view == "clm-hdf5":
        return [write_master(corpus), *write_queries(corpus)]
    if view == "webdataset":
        return write_webdataset(corpus, webdataset_shard_size, pool)
    if view == "stac":
        return [write_stac(corpus, pool=pool)]
    choices = ", ".join((*CORPUS_VIEWS, *EXPORT_FORMATS))
    raise ConfigError(f"unknown corpus view {view!r}; choose one of {choices}")


def write_export(corpus: Path, fmt: str, out: Path | None) -> list[Path]:
    """Write ``clm-release`` or ``hf`` of ``corpus`` into the separate directory ``out``."""
    target = check_export_target(corpus, out, fmt)
    if fmt == "clm-release":
        return export_release(corpus, target)
    return export_hf(corpus, target)


def write_views(
    corpus: Path,
    views: Sequence[str] = CORPUS_VIEWS,
    webdataset_shard_size: int = DEFAULT_WEBDATASET_SHARD_SIZE,
    pool: cf.Executor | None = None,
) -> dict[str, list[Path]]:
    """Write every view in ``views`` (in a fixed order); view -> paths."""
    return {
        view: write_view(corpus, view, webdataset_shard_size, pool)
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
        raise ConfigError(
            f"unknown corpus view {view!r}; choose one of {', '.join((*CORPUS_VIEWS, *EXPORT_FORMATS))}"
        )
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
