"""Shared fixtures: the real-data folder (optional) and small generated archives."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = PROJECT_ROOT.parent / "shared" / "real-data"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """``../shared/real-data`` from the project root; skips the test when absent."""
    if not REAL_DATA.is_dir():
        pytest.skip(
            f"real data folder {REAL_DATA} is absent (only present beside the team's checkouts)"
        )
    return REAL_DATA


@pytest.fixture(scope="session")
def tiny_archive(tmp_path_factory) -> Path:
    """The tiny simulated archive (a few small scenes with a flood), generated once per session."""
    from pipeline.archive.simulate import simulate_archive

    root = tmp_path_factory.mktemp("tiny-archive")
    simulate_archive(root, seed=0, scale="tiny")
    return root


@pytest.fixture(scope="session")
def run_config():
    """Factory: ``run_config(path, archive, out, **section_overrides) -> path`` of a run config."""
    return write_run_config


def write_run_config(path: Path, archive: Path, out: Path, **overrides) -> Path:
    """A run config over ``archive`` writing to ``out`` (overrides: top-level sections)."""
    import yaml

    raw = {
        "version": 1,
        "name": "test",
        "archive": str(archive / "archive.json"),
        "source": {"kind": "geoparquet", "asset_base": "serve"},
        "search": {
            "collections": ["sentinel-2-l2a", "sentinel-1-grd"],
            "datetime": "2020-01-01/2023-12-31",
        },
        "chips": {"max_nodata_fraction": 0.05, "max_cloud_fraction": 0.1},
        "labels": {"min_fraction": 0.05, "crisis": {"window_days": {"flood": 12, "wildfire": 365}}},
        "output": {"dir": str(out), "shard_size": 8},
    }
    raw.update(overrides)
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="session")
def garble_tile():
    """``garble_tile(path, where, col=0, row=0, nbytes=16)``: XOR bytes at fraction ``where``
    of one tile's compressed data, found through the TIFF TileOffsets (not the header)."""
    return _garble_tile


def _garble_tile(path: Path, where: float, col: int = 0, row: int = 0, nbytes: int = 16) -> None:
    """XOR ``nbytes`` bytes at fraction ``where`` of tile (col, row)'s compressed data."""
    import rasterio

    with rasterio.open(path) as ds:
        offset = int(ds.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=1))
        size = int(ds.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=1))
    data = bytearray(path.read_bytes())
    start = offset + int(size * where)
    for i in range(start, min(start + nbytes, offset + size)):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
