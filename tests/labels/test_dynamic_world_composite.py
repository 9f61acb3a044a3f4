"""Dynamic World mode composite over a date window, and mean class probabilities."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
import rasterio
from affine import Affine

from pipeline.chips.grid import ChipGeometry
from pipeline.errors import ConfigError
from pipeline.labels.dynamic_world_composite import (
    DatedProduct,
    DynamicWorldComposite,
    mean_probabilities,
    mode_composite,
)

CHIP = ChipGeometry(32632, 600, 4190, pixels=4)  # a 40 m chip keeps the arrays readable


def _dw(path, bands):
    data = np.asarray(bands, dtype=np.float32)
    minx, _, _, maxy = CHIP.bounds
    profile = {
        "driver": "GTiff",
        "width": 4,
        "height": 4,
        "count": data.shape[0],
        "dtype": "float32",
        "crs": "EPSG:32632",
        "transform": Affine(10, 0, minx, 0, -10, maxy),
        "nodata": 255,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return str(path)


def test_mode_composite_prefers_the_most_frequent_valid_class():
    stack = np.array([[[4, 4], [0, 255]], [[4, 1], [0, 255]], [[2, 1], [255, 255]]])
    assert mode_composite(stack).tolist() == [[4, 1], [0, 255]]


def test_composite_uses_only_scenes_in_the_window(tmp_path):
    day = lambda d: datetime(2022, 6, d, tzinfo=UTC)  # noqa: E731
    crops = _dw(tmp_path / "a.tif", [np.full((4, 4), 4)])
    crops2 = _dw(tmp_path / "b.tif", [np.full((4, 4), 4)])
    water = _dw(tmp_path / "c.tif", [np.zeros((4, 4))])
    products = [
        DatedProduct(crops, day(1)),
        DatedProduct(crops2, day(10)),
        DatedProduct(water, day(20)),
    ]
    inside = DynamicWorldComposite(products, day(1), day(30)).class_fractions(CHIP)
    assert inside.fractions == {4: 1.0}
    late = DynamicWorldComposite(products, day(15), day(30)).class_fractions(CHIP)
    assert late.fractions == {0: 1.0}
    empty = DynamicWorldComposite(products, day(25), day(30)).class_fractions(CHIP)
    assert empty.nodata_fraction == 1.0
    with pytest.raises(ConfigError, match="reversed"):
        DynamicWorldComposite(products, day(30), day(1))


def test_mean_probabilities(tmp_path):
    probs = [np.full((4, 4), 0.1 * (i + 1) / 4.5) for i in range(9)]
    href = _dw(tmp_path / "p.tif", [*probs, np.full((4, 4), 8)])
    means = mean_probabilities(href, CHIP)
    assert means == pytest.approx({i: 0.1 * (i + 1) / 4.5 for i in range(9)})
    with pytest.raises(ConfigError, match="probabilities"):
        mean_probabilities(_dw(tmp_path / "l.tif", [np.zeros((4, 4))]), CHIP)


def test_probabilities_reach_the_caption_record_block(tmp_path):
    from pipeline.labels.annotate import Annotator
    from pipeline.labels.dynamic_world import DynamicWorldRaster

    probs = [np.full((4, 4), 0.9 if i == 4 else 0.0125) for i in range(9)]
    href = _dw(tmp_path / "p.tif", [*probs, np.full((4, 4), 4)])
    source = DynamicWorldRaster(href, band=10, probabilities=True)
    block = Annotator(corine=[], dynamic_world=[source], events=[]).cell_labels(CHIP)["land_cover"]
    assert block["fractions"] == {"crops": 1.0}
    assert block["probabilities"]["crops"] == pytest.approx(0.9)
    assert block["probabilities"]["water"] == pytest.approx(0.0125)
