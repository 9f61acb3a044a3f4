"""The CrisisLandMark-compatible HDF5 view: ``corpus.h5`` links every image key to its shard.

The shards already follow the release layout (one group per key: ``image``, ``coords``,
attributes ``crs``, ``timestamp``, ``labels``); the master file holds one HDF5 external
link per key, in key order, with paths relative to the corpus directory, so
``h5py.File("corpus.h5")[key]`` reads the group from its shard wherever the corpus is moved.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import pandas as pd

from pipeline.errors import CorpusError
from pipeline.storage import atomic_path

MASTER_FILE = "corpus.h5"


def write_master(corpus: Path) -> Path:
    """Write ``corpus/corpus.h5`` from ``metadata.parquet`` (key -> shard)."""
    meta_path = corpus / "metadata.parquet"
    if not meta_path.is_file():
        raise CorpusError(f"{corpus} has no metadata.parquet; build the corpus first (`clm build`)")
    meta = pd.read_parquet(meta_path, columns=["key", "sensor", "shard"]).sort_values("key")
    out = corpus / MASTER_FILE
    with atomic_path(out) as tmp, h5py.File(tmp, "w", track_order=True) as h5:
        for key, shard in zip(meta["key"], meta["shard"], strict=True):
            h5[key] = h5py.ExternalLink(f"shards/{shard}", f"/{key}")
        h5.attrs["layout"] = "crisislandmark-v1"
        h5.attrs["images"] = len(meta)
    return out
