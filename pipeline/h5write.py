"""Per-chip HDF5 objects written and read through h5py's low-level API.

The chip work files (``pipeline.chips.extract``) and the corpus shards
(``pipeline.corpus.shards``) hold one group, dataset or attribute set per chip, thousands per
file. h5py's high-level ``create_group`` / ``create_dataset`` / ``attrs[...] =`` / ``get``
check their arguments and build property lists, dataspaces and datatypes afresh on every
call: ~0.1-0.2 ms of Python per object, more than HDF5 spends on a chip whose compressed
chunk is copied. ``ChipWriter`` makes the same HDF5 calls with what those build made once per
file and reused for every chip, so the files are the same bytes (tested for every recipe of
``pipeline.compression.CANDIDATES`` against the high-level calls). The filters still run in
HDF5 whenever pixels are written rather than copied as a compressed chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import h5py
import numpy as np
from h5py import h5a, h5d, h5g, h5p, h5s, h5t, h5z

from pipeline.compression import ShardCompression

Location: TypeAlias = h5py.h5f.FileID | h5g.GroupID  # where a group, dataset or attribute goes
_STR = h5py.string_dtype()  # variable-length UTF-8, as h5py stores a Python str


class ChipWriter:
    """Creates groups, datasets and attributes in one file as h5py's high-level API does with
    its defaults (no times, no creation order in new groups and datasets), datasets
    stored with ``recipe`` (one chunk per dataset)."""

    def __init__(self, recipe: ShardCompression) -> None:
        self.recipe = recipe
        self._dcpl: dict[tuple[int, ...], h5p.PropDCID] = {}
        self._spaces: dict[tuple[int, ...], h5s.SpaceID] = {}
        self._types: dict[str, h5t.TypeID] = {}
        self._attr_types: dict[str, tuple[h5t.TypeID, h5t.TypeID]] = {}
        self._gcpl = h5p.create(h5p.GROUP_CREATE)
        self._gcpl.set_obj_track_times(False)
        self._lcpl = {
            h5t.CSET_ASCII: _lcpl(h5t.CSET_ASCII),
            h5t.CSET_UTF8: _lcpl(h5t.CSET_UTF8),
        }

    def group(self, parent: Location, name: str) -> h5g.GroupID:
        """A new group ``name`` under ``parent``."""
        encoded, cset = _encode(name)
        return h5g.create(parent, encoded, lcpl=self._lcpl[cset], gcpl=self._gcpl)

    def dataset(
        self, parent: Location, name: str, shape: tuple[int, ...], dtype: np.dtype
    ) -> h5d.DatasetID:
        """A new dataset ``name`` under ``parent``, not written yet."""
        space = self._space(shape)
        return h5d.create(
            parent, _encode(name)[0], self._type(dtype), space, dcpl=self._plist(shape)
        )

    def array(self, parent: Location, name: str, data: np.ndarray) -> h5d.DatasetID:
        """A new dataset holding ``data``, through the recipe's HDF5 filters."""
        data = np.ascontiguousarray(data)
        ds = self.dataset(parent, name, data.shape, data.dtype)
        ds.write(h5s.ALL, h5s.ALL, data)
        return ds

    def chunk(
        self, parent: Location, name: str, shape: tuple[int, ...], dtype: np.dtype, chunk: Chunk
    ) -> None:
        """A new dataset holding ``chunk``, its single chunk as the recipe's filters made it."""
        mask, data = chunk
        self.dataset(parent, name, shape, dtype).write_direct_chunk((0,) * len(shape), data, mask)

    def int_attr(self, obj: Location, name: str, value: int) -> None:
        """A scalar integer attribute, as ``attrs[name] = int(value)``."""
        self._attr(obj, name, np.asarray(value), "int")

    def str_attr(self, obj: Location, name: str, value: str) -> None:
        """A scalar string attribute, as ``attrs[name] = str(value)``."""
        self._attr(obj, name, np.asarray(value, dtype=_STR), "str")

    def str_array_attr(self, obj: Location, name: str, values: Sequence[str]) -> None:
        """A string array attribute, as ``attrs[name] = np.array(values, string_dtype())``."""
        self._attr(obj, name, np.array(values, dtype=_STR), "str")

    def _attr(self, obj: Location, name: str, data: np.ndarray, kind: str) -> None:
        """As ``AttributeManager.create``: the file type is h5py's logical type of the dtype,
        the memory type its bit-for-bit one (for strings: the Python objects)."""
        if kind not in self._attr_types:
            types = h5t.py_create(data.dtype, logical=True), h5t.py_create(data.dtype)
            self._attr_types[kind] = types
        file_type, memory_type = self._attr_types[kind]
        attr = h5a.create(obj, _encode(name)[0], file_type, self._space(data.shape))
        attr.write(data, mtype=memory_type)
        attr.close()

    def _plist(self, shape: tuple[int, ...]) -> h5p.PropDCID:
        if shape not in self._dcpl:
            self._dcpl[shape] = creation_plist(self.recipe, shape)
        return self._dcpl[shape]

    def _space(self, shape: tuple[int, ...]) -> h5s.SpaceID:
        if shape not in self._spaces:
            self._spaces[shape] = h5s.create_simple(shape)
        return self._spaces[shape]

    def _type(self, dtype: np.dtype) -> h5t.TypeID:
        key = np.dtype(dtype).str
        if key not in self._types:
            self._types[key] = h5t.py_create(np.dtype(dtype), logical=True)
        return self._types[key]


Chunk = tuple[int, bytes]  # (filter mask, bytes) of a dataset's single stored chunk


def creation_plist(recipe: ShardCompression, shape: tuple[int, ...]) -> h5p.PropDCID:
    """The dataset creation property list h5py builds from ``recipe.dataset_options(shape)``:
    chunks, then shuffle, then the compression filter (optional, as h5py sets it)."""
    options = recipe.dataset_options(shape)
    dcpl = h5p.create(h5p.DATASET_CREATE)
    if "chunks" in options:
        dcpl.set_chunk(options["chunks"])
    if options.get("shuffle"):
        dcpl.set_shuffle()
    compression = options.get("compression")
    if compression == "gzip":
        dcpl.set_deflate(options["compression_opts"])
    elif compression == "lzf":
        dcpl.set_filter(h5z.FILTER_LZF, h5z.FLAG_OPTIONAL)
    elif compression is not None:  # a filter id of hdf5plugin
        dcpl.set_filter(compression, h5z.FLAG_OPTIONAL, options["compression_opts"])
    dcpl.set_obj_track_times(options["track_times"])
    dcpl.set_attr_creation_order(0)
    return dcpl


def open_dataset(parent: Location, path: str) -> h5d.DatasetID | None:
    """The dataset at ``path`` under ``parent``, or None when there is none (as ``get``)."""
    try:
        return h5d.open(parent, _encode(path)[0])
    except KeyError:
        return None


def single_chunk(ds: h5d.DatasetID) -> Chunk | None:
    """(filter mask, bytes) of ``ds``'s chunk when the whole dataset is one chunk."""
    plist = ds.get_create_plist()
    if plist.get_layout() != h5d.CHUNKED:
        return None
    chunk = plist.get_chunk()
    if chunk != ds.shape:
        return None
    mask, data = ds.read_direct_chunk((0,) * len(chunk))
    return int(mask), bytes(data)


def read_array(ds: h5d.DatasetID) -> np.ndarray:
    """All of ``ds``, decoded, in its own dtype (as ``Dataset[()]``)."""
    out = np.empty(ds.shape, dtype=ds.dtype)
    ds.read(h5s.ALL, h5s.ALL, out)
    return out


def _lcpl(cset: int) -> h5p.PropLCID:
    lcpl = h5p.create(h5p.LINK_CREATE)
    lcpl.set_create_intermediate_group(True)
    lcpl.set_char_encoding(cset)
    return lcpl


def _encode(name: str) -> tuple[bytes, int]:
    """``name`` as h5py encodes it: ASCII when it can, UTF-8 otherwise."""
    try:
        return name.encode("ascii"), h5t.CSET_ASCII
    except UnicodeEncodeError:
        return name.encode("utf-8"), h5t.CSET_UTF8
