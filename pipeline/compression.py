"""HDF5 filters of the corpus shards and chip work files (``output.shard_compression``), chosen by measurement.

Every candidate is a named, fixed recipe (filter, level, shuffle), so the same name always
gives the same bytes; the manifest records the recipe. Filters beyond HDF5's own (gzip,
lzf) come from ``hdf5plugin``: readers ``import hdf5plugin`` before opening a shard (as the
CrisisLandMark release's own requirements do). The measurements behind the default are in
``docs/corpus-format.md`` (``benchmarks/shard_compression.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError

# Filters HDF5 (and so plain h5py) decodes without hdf5plugin.
BUILTIN_FILTERS = ("gzip", "lzf", "none")
COMPRESSION_ATTR = "clm_compression"  # the recipe name, on every shard and chip work file


@dataclass(frozen=True)
class ShardCompression:
    """One recipe: ``filter`` (gzip | lzf | none | zstd | blosc | blosc2 | bitshuffle),
    ``level``, ``shuffle`` (the byte-shuffle filter before it), ``codec`` (the compressor
    inside blosc, blosc2 and bitshuffle) and the inner shuffle of blosc/blosc2."""

    name: str
    filter: str
    level: int | None = None
    shuffle: bool = False
    codec: str | None = None
    inner_shuffle: str | None = None

    @property
    def reproducible(self) -> bool:
        """Whether equal chips always compress to equal bytes. h5py's LZF filter keeps its
        hash table from one call to the next, so its output depends on what the process
        compressed before: measured, but refused for a corpus (``checked_recipe``)."""
        return self.filter != "lzf"

    @property
    def needs_hdf5plugin(self) -> bool:
        return self.filter not in BUILTIN_FILTERS

    def dataset_options(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """``create_dataset`` keywords: one chunk per dataset (a chip is always read whole)."""
        opts: dict[str, Any] = {"track_times": False}
        if self.filter == "none":
            return opts
        opts["chunks"] = tuple(shape)
        if self.shuffle:
            opts["shuffle"] = True
        opts.update(self._filter_options())
        return opts

    def _filter_options(self) -> dict[str, Any]:
        if self.filter == "gzip":
            return {"compression": "gzip", "compression_opts": self.level}
        if self.filter == "lzf":
            return {"compression": "lzf"}
        return dict(self._plugin())

    def _plugin(self) -> Mapping[str, Any]:
        import hdf5plugin  # registers the filters with HDF5 as it is imported

        codec: Any = self.codec  # the recipes above name valid codecs
        level = 3 if self.level is None else self.level
        if self.filter == "zstd":
            return hdf5plugin.Zstd(clevel=level)
        if self.filter == "blosc":
            shuffle = {"byte": hdf5plugin.Blosc.SHUFFLE, "bit": hdf5plugin.Blosc.BITSHUFFLE}
            return hdf5plugin.Blosc(codec, level, shuffle[self.inner_shuffle or "byte"])
        if self.filter == "blosc2":
            shuffle = {"byte": hdf5plugin.Blosc2.SHUFFLE, "bit": hdf5plugin.Blosc2.BITSHUFFLE}
            return hdf5plugin.Blosc2(codec, level, shuffle[self.inner_shuffle or "byte"])
        if self.filter == "bitshuffle":
            return hdf5plugin.Bitshuffle(cname=codec, clevel=level)
        raise ConfigError(f"unknown shard filter {self.filter!r}")

    def describe(self) -> dict[str, Any]:
        """The recipe as recorded in the manifest (``shard_compression``)."""
        return {
            "name": self.name,
            "filter": self.filter,
            "level": self.level,
            "shuffle": self.shuffle,
            "codec": self.codec,
            "inner_shuffle": self.inner_shuffle,
            "chunks": "one per dataset",
            "hdf5_filter_id": self.filter_id(),
            "needs_hdf5plugin": self.needs_hdf5plugin,
        }

    def filter_id(self) -> int | None:
        opts = self._filter_options() if self.filter != "none" else {}
        value = opts.get("compression")
        return {"gzip": 1, "lzf": 32000}.get(value, value) if value is not None else None


CANDIDATES: dict[str, ShardCompression] = {
    "gzip-1": ShardCompression("gzip-1", "gzip", 1),
    "gzip-4": ShardCompression("gzip-4", "gzip", 4),
    "gzip-6": ShardCompression("gzip-6", "gzip", 6),
    "shuffle-gzip-1": ShardCompression("shuffle-gzip-1", "gzip", 1, shuffle=True),
    "shuffle-gzip-4": ShardCompression("shuffle-gzip-4", "gzip", 4, shuffle=True),
    "shuffle-gzip-6": ShardCompression("shuffle-gzip-6", "gzip", 6, shuffle=True),
    "lzf": ShardCompression("lzf", "lzf"),
    "shuffle-lzf": ShardCompression("shuffle-lzf", "lzf", shuffle=True),
    "zstd-3": ShardCompression("zstd-3", "zstd", 3),
    "shuffle-zstd-1": ShardCompression("shuffle-zstd-1", "zstd", 1, shuffle=True),
    "shuffle-zstd-3": ShardCompression("shuffle-zstd-3", "zstd", 3, shuffle=True),
    "shuffle-zstd-9": ShardCompression("shuffle-zstd-9", "zstd", 9, shuffle=True),
    "blosc-lz4-5": ShardCompression("blosc-lz4-5", "blosc", 5, codec="lz4", inner_shuffle="byte"),
    "blosc-zstd-3": ShardCompression(
        "blosc-zstd-3", "blosc", 3, codec="zstd", inner_shuffle="byte"
    ),
    "blosc-zstd-1-bit": ShardCompression(
        "blosc-zstd-1-bit", "blosc", 1, codec="zstd", inner_shuffle="bit"
    ),
    "blosc-zstd-3-bit": ShardCompression(
        "blosc-zstd-3-bit", "blosc", 3, codec="zstd", inner_shuffle="bit"
    ),
    "blosc-zstd-5-bit": ShardCompression(
        "blosc-zstd-5-bit", "blosc", 5, codec="zstd", inner_shuffle="bit"
    ),
    "blosc-lz4-5-bit": ShardCompression(
        "blosc-lz4-5-bit", "blosc", 5, codec="lz4", inner_shuffle="bit"
    ),
    "blosc2-lz4-5": ShardCompression(
        "blosc2-lz4-5", "blosc2", 5, codec="lz4", inner_shuffle="byte"
    ),
    "blosc2-zstd-3-bit": ShardCompression(
        "blosc2-zstd-3-bit", "blosc2", 3, codec="zstd", inner_shuffle="bit"
    ),
    "blosc2-zstd-3": ShardCompression(
        "blosc2-zstd-3", "blosc2", 3, codec="zstd", inner_shuffle="byte"
    ),
    "bitshuffle-lz4": ShardCompression("bitshuffle-lz4", "bitshuffle", codec="lz4"),
    "bitshuffle-zstd-3": ShardCompression("bitshuffle-zstd-3", "bitshuffle", 3, codec="zstd"),
    "none": ShardCompression("none", "none"),
}
DEFAULT_SHARD_COMPRESSION = "blosc-zstd-1-bit"


def shard_compression(name: str) -> ShardCompression:
    """The recipe called ``name``; a ``ConfigError`` listing the choices otherwise."""
    if name not in CANDIDATES:
        raise ConfigError(
            f"unknown output.shard_compression {name!r}; choose one of {', '.join(CANDIDATES)}"
        )
    return CANDIDATES[name]


def checked_recipe(name: str, where: str) -> str:
    """``name``, when it is a recipe whose shards are the same bytes on every run; a
    ``ConfigError`` naming ``where`` and the fix otherwise."""
    if not shard_compression(name).reproducible:
        raise ConfigError(
            f"{where}: output.shard_compression {name!r} does not give the same bytes twice "
            "(h5py's LZF filter carries state from one chunk to the next), so corpus.lock "
            f"could never be checked; choose {DEFAULT_SHARD_COMPRESSION} (the default) or "
            "another recipe of docs/corpus-format.md"
        )
    return name
