"""Fixtures of the numerics tests: Sentinel-1 linear backscatter over its whole range."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine


@pytest.fixture
def s1_bands(tmp_path: Path) -> tuple[Path, Path]:
    """VV over the whole positive float32 range (subnormals to 3.4e38, exact powers of ten
    and two, nodata codes), VH over typical sigma0 (1e-6..100): one 120 x 120 chip each,
    GeoTIFFs on the chip ``ChipGeometry(32632, 10, 20)``."""
    rng = np.random.default_rng(3)
    vv = np.power(10.0, rng.uniform(-44.8, 38.5, 14400)).astype(np.float32)
    specials = [0.0, -1.0, np.nan, np.inf, 1.4e-45, 1.1754944e-38, 3.4028235e38]
    exact = [10.0**k for k in range(11)] + [2.0**k for k in range(-149, 128, 7)]
    vv[: len(specials) + len(exact)] = specials + exact
    vh = np.power(10.0, rng.uniform(-6.0, 2.0, 14400)).astype(np.float32)
    paths = []
    for name, band in (("vv", vv), ("vh", vh)):
        path = tmp_path / f"{name}.tif"
        profile = {"driver": "GTiff", "width": 120, "height": 120, "count": 1}
        profile |= {"dtype": "float32", "crs": "EPSG:32632"}
        profile["transform"] = Affine(10.0, 0.0, 12000.0, 0.0, -10.0, 25200.0)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(band.reshape(120, 120), 1)
        paths.append(path)
    return paths[0], paths[1]
