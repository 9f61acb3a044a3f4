"""Shard compression recipes: every candidate stores the chip exactly, the config accepts
exactly the recipe names, and plain h5py needs hdf5plugin only for the plugin filters."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import h5py
import numpy as np
import pytest

from pipeline.compression import (
    BUILTIN_FILTERS,
    CANDIDATES,
    DEFAULT_SHARD_COMPRESSION,
    shard_compression,
)
from pipeline.config import OutputConfig
from pipeline.errors import ConfigError
from pipeline.schemas import load_schema


def chip(bands: int = 12) -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.round(rng.gamma(2.0, 600.0, (bands, 120, 120))).astype(np.float32)


@pytest.mark.parametrize("name", list(CANDIDATES))
def test_every_candidate_stores_the_chip_exactly(name, tmp_path):
    recipe = shard_compression(name)
    image = chip()
    path = tmp_path / "chip.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("image", data=image, **recipe.dataset_options(image.shape))
    with h5py.File(path, "r") as h5:
        np.testing.assert_array_equal(h5["image"][()], image)
        if recipe.filter != "none":
            assert h5["image"].chunks == image.shape  # one chunk: a chip is read whole
            assert h5["image"].id.get_storage_size() < image.nbytes
    assert recipe.describe()["name"] == name


def test_config_schema_lists_exactly_the_recipes():
    schema = load_schema("run-config.v1.schema.json")
    enum = schema["properties"]["output"]["properties"]["shard_compression"]["enum"]
    assert enum == list(CANDIDATES)
    assert OutputConfig(dir=".").shard_compression == DEFAULT_SHARD_COMPRESSION
    with pytest.raises(ConfigError, match="choose one of"):
        shard_compression("gzip-99")


PLAIN_READ = r"""
import json, sys
import h5py
path = sys.argv[1]
try:
    with h5py.File(path, "r") as h5:
        h5["image"][()]
    ok = True
except OSError:
    ok = False
print(json.dumps({"ok": ok, "hdf5plugin": "hdf5plugin" in sys.modules}))
"""


@pytest.mark.parametrize("name", ["gzip-4", "lzf", DEFAULT_SHARD_COMPRESSION, "shuffle-zstd-3"])
def test_plain_h5py_reads_builtin_filters_only(name, tmp_path):
    """In a fresh interpreter that never imports hdf5plugin (as the reference loader)."""
    recipe = shard_compression(name)
    image = chip(2)
    path = tmp_path / f"{uuid.uuid4().hex}.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("image", data=image, **recipe.dataset_options(image.shape))
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_READ, str(path)], capture_output=True, text=True, timeout=60
    )
    seen = json.loads(result.stdout)
    assert seen["hdf5plugin"] is False
    assert seen["ok"] is (recipe.filter in BUILTIN_FILTERS)
    assert recipe.needs_hdf5plugin is not seen["ok"]
