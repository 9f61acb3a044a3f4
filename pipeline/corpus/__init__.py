"""Corpus outputs: shards, metadata, splits, manifest and summaries.

Importing this package registers the ``hdf5plugin`` filters with HDF5, so every reader of
the shards here (views, exports, the dataset class, contact sheets) decodes the shard
recipe of ``output.shard_compression`` (``pipeline.compression``), in spawned workers too.
"""

import hdf5plugin  # noqa: F401  (registers the shard filters as it is imported)
