"""ESA WorldCover as the land-cover source when no Dynamic World product covers a chip."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine

from pipeline.chips.grid import ChipGeometry
from pipeline.labels.annotate import Annotator
from pipeline.labels.harmonize import load_mapping
from pipeline.labels.worldcover import WorldCoverRaster

CHIP = ChipGeometry(32632, 600, 4190)


def _worldcover(path, values):
    minx, _, _, maxy = CHIP.bounds
    data = np.asarray(values, dtype=np.uint8)
    res = CHIP.size_m / data.shape[0]
    profile = {
        "driver": "GTiff",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:32632",
        "transform": Affine(res, 0, minx, 0, -res, maxy),
        "nodata": 0,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return str(path)


def test_worldcover_fractions_and_mapping(tmp_path):
    href = _worldcover(
        tmp_path / "wc.tif", [[10, 10, 80, 80], [10, 10, 80, 80], [40, 40, 95, 0], [40, 40, 100, 0]]
    )
    fractions = WorldCoverRaster(href).class_fractions(CHIP)
    assert fractions.fractions == pytest.approx(
        {10: 0.25, 80: 0.25, 40: 0.25, 95: 0.0625, 100: 0.0625}
    )
    assert fractions.nodata_fraction == pytest.approx(0.125)
    mapping = load_mapping("worldcover_to_reference.v1")
    assert [mapping.label_of(v) for v in (10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100)] == [
        "trees",
        "shrub and scrub",
        "grass",
        "crops",
        "built",
        "bare",
        "snow and ice",
        "water",
        "flooded vegetation",
        "flooded vegetation",
        "grass",
    ]


def test_annotator_falls_back_to_worldcover(tmp_path):
    href = _worldcover(tmp_path / "wc.tif", [[10, 80], [40, 40]])
    annotator = Annotator(
        corine=[], dynamic_world=[], events=[], worldcover=[WorldCoverRaster(href)]
    )
    labels = annotator.cell_labels(CHIP)
    assert labels["land_cover"]["source"] == "worldcover"
    assert labels["land_cover"]["fractions"] == {"water": 0.25, "trees": 0.25, "crops": 0.5}
    assert labels["labels"] == ["water", "trees", "crops"]


def test_unknown_class_codes_are_counted_or_raised(tmp_path):
    from pipeline.errors import SourceError
    from pipeline.labels import warnings as label_warnings
    from pipeline.labels.raster_fractions import fractions_from_raster

    href = _worldcover(tmp_path / "odd.tif", [[10, 77], [10, 10]])
    label_warnings.reset()
    fractions = WorldCoverRaster(href).class_fractions(CHIP)
    assert fractions.fractions == {10: 0.75} and fractions.nodata_fraction == pytest.approx(0.25)
    assert any("unknown class code" in k and "[77]" in k for k in label_warnings.snapshot())
    with pytest.raises(SourceError, match="outside its taxonomy"):
        fractions_from_raster(
            href, CHIP, nodata_values=(0,), value_map={10: 10}, on_unknown="error"
        )
