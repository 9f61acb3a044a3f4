"""Property tests: fractions are proper for any alignment; harmonized labels do not depend
on the order label products are listed."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.chips.grid import ChipGeometry
from pipeline.labels.annotate import Annotator
from pipeline.labels.corine import CorineRaster

CHIP = ChipGeometry(32632, 600, 4190)  # 720000..721200 E, 5028000..5029200 N
_counter = itertools.count()


def _raster(
    folder: Path, seed: int, res: float, dx: float, dy: float, crs: str = "EPSG:32632"
) -> str:
    rng = np.random.default_rng(seed)
    minx, _, maxx, maxy = CHIP.bounds
    n = int(np.ceil((maxx - minx + 600) / res))
    data = rng.choice([12, 12, 23, 41, 2, 48], size=(n, n)).astype(np.uint8)  # 48 = EEA nodata
    path = folder / f"clc-{next(_counter)}.tif"
    transform = Affine(res, 0, minx - 300 + dx, 0, -res, maxy + 300 + dy)
    profile = {
        "driver": "GTiff",
        "width": n,
        "height": n,
        "count": 1,
        "dtype": "uint8",
        "crs": crs,
        "transform": transform,
        "nodata": 48,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return str(path)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    res=st.sampled_from([10.0, 20.0, 60.0, 100.0, 37.5]),
    dx=st.floats(-299, 299),
    dy=st.floats(-299, 299),
)
def test_fractions_are_proper_for_any_alignment(tmp_path, seed, res, dx, dy):
    fractions = CorineRaster(_raster(tmp_path, seed, res, dx, dy)).class_fractions(CHIP)
    values = list(fractions.fractions.values())
    assert all(0.0 <= v <= 1.0 for v in values)
    assert 0.0 <= fractions.nodata_fraction <= 1.0
    assert abs(sum(values) + fractions.nodata_fraction - 1.0) < 1e-9
    assert set(fractions.fractions) <= {211, 311, 512, 112}


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seeds=st.lists(st.integers(0, 10_000), min_size=2, max_size=3, unique=True),
    shift=st.floats(0, 1200),
)
def test_harmonized_labels_do_not_depend_on_source_order(tmp_path, seeds, shift):
    paths = [_raster(tmp_path, s, 100.0, shift * i, 0.0) for i, s in enumerate(seeds)]
    results = set()
    for order in itertools.permutations(paths):
        annotator = Annotator(corine=[CorineRaster(p) for p in order], dynamic_world=[], events=[])
        results.add(tuple(annotator.cell_labels(CHIP)["labels"]))
    assert len(results) == 1
