"""CORINE raster and vector label sources, and the Dynamic World raster source."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer

from pipeline.chips.grid import ChipGeometry
from pipeline.errors import ConfigError, SourceError
from pipeline.labels.base import ClassFractions
from pipeline.labels.corine import CorineRaster, CorineVector
from pipeline.labels.dynamic_world import DynamicWorldRaster

CHIP = ChipGeometry(32632, col=10, row=20)  # bounds (12000, 24000, 13200, 25200)


def write_tif(path: Path, data: np.ndarray, transform: Affine, epsg: int, nodata=None) -> str:
    profile = {"driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1}
    with rasterio.open(
        path, "w", **profile, dtype=data.dtype, crs=f"EPSG:{epsg}", transform=transform,
        nodata=nodata,
    ) as dst:  # fmt: skip
        dst.write(data, 1)
    return str(path)


def test_corine_raster_grid_codes_to_clc_codes(tmp_path: Path) -> None:
    # 100 m pixels aligned with the chip: 12 x 12 pixels, each column 100 m = 1/12 of the chip.
    data = np.full((12, 12), 12, dtype=np.uint8)  # 12 -> 211 Non-irrigated arable land
    data[:, 0:3] = 23  # 311 Broad-leaved forest, 3 columns
    data[:, 3] = 48  # EEA NODATA
    data[:, 4] = 49  # unclassified land surface
    data[0, 5] = 41  # 512 Water bodies, one pixel
    href = write_tif(tmp_path / "clc.tif", data, Affine(100, 0, 12000, 0, -100, 25200), 32632)
    source = CorineRaster(href)
    result = source.class_fractions(CHIP)
    assert result.source == "corine"
    assert result.fractions == {
        211: pytest.approx(7 / 12 - 1 / 144),
        311: pytest.approx(3 / 12),
        512: pytest.approx(1 / 144),
    }
    assert result.nodata_fraction == pytest.approx(2 / 12)


def test_corine_raster_clc_codes_in_laea(tmp_path: Path) -> None:
    chip = ChipGeometry(32632, col=547, row=4191)
    to_laea = Transformer.from_crs(32632, 3035, always_xy=True)
    xs, ys = to_laea.transform([chip.bounds[0], chip.bounds[2]], [chip.bounds[1], chip.bounds[3]])
    data = np.full((30, 30), 211, dtype=np.int16)
    data[:, 15:] = 999  # NODATA in CLC-code rasters
    west, north = np.floor(min(xs) / 100) * 100 - 300, np.ceil(max(ys) / 100) * 100 + 300
    transform = Affine(100, 0, west, 0, -100, north)
    href = write_tif(tmp_path / "clc_codes.tif", data, transform, 3035)
    result = CorineRaster(href, value_type="clc_code").class_fractions(chip)
    # The 211 / 999 edge is the LAEA line x = west + 1500; its share of the chip, by shapely:
    edge_x = west + 1500
    to_utm = Transformer.from_crs(3035, 32632, always_xy=True)
    west_half = shapely.segmentize(shapely.box(west, north - 3000, edge_x, north), 10.0)
    west_utm = shapely.transform(
        west_half, lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1]))
    )
    square = shapely.box(*chip.bounds)
    expected = west_utm.intersection(square).area / square.area
    assert 0.05 < expected < 0.95, "fixture should split the chip"
    assert result.fractions == {211: pytest.approx(expected, abs=0.002)}
    assert result.nodata_fraction == pytest.approx(1 - expected, abs=0.002)


def test_corine_raster_rejects_unknown_value_type() -> None:
    with pytest.raises(ConfigError, match="value_type"):
        CorineRaster("x.tif", value_type="code18")


def test_corine_vector_same_crs_hand_case(tmp_path: Path) -> None:
    minx, miny, maxx, maxy = CHIP.bounds
    frame = gpd.GeoDataFrame(
        {"Code_18": ["211", "312", "999", "523"]},
        geometry=[
            shapely.box(minx - 500, miny, minx + 360, maxy),  # 360 m of the chip: 0.3
            shapely.box(minx + 360, miny, maxx, miny + 600),  # 840 x 600 m: 0.35
            shapely.box(minx + 360, miny + 600, maxx, maxy),  # NODATA: 0.35
            shapely.box(maxx + 10, miny, maxx + 500, maxy),  # outside the chip
        ],
        crs=CHIP.epsg,
    )
    path = tmp_path / "clc.gpkg"
    frame.to_file(path, layer="clc", driver="GPKG")
    result = CorineVector(str(path), layer="clc").class_fractions(CHIP)
    assert result.fractions == {211: pytest.approx(0.3), 312: pytest.approx(0.35)}
    assert result.nodata_fraction == pytest.approx(0.35)


def test_corine_vector_other_crs_matches_shapely(tmp_path: Path) -> None:
    chip = ChipGeometry(32632, col=547, row=4191)
    square = shapely.box(*chip.bounds)
    to_laea = Transformer.from_crs(32632, 3035, always_xy=True)
    cx, cy = to_laea.transform(*square.centroid.coords[0])
    polygon = shapely.Polygon(
        [(cx - 900, cy - 400), (cx + 300, cy - 900), (cx + 700, cy + 800), (cx - 500, cy + 300)]
    )
    frame = gpd.GeoDataFrame({"Code_18": [231]}, geometry=[polygon], crs=3035)
    path = tmp_path / "clc.shp"
    frame.to_file(path)
    result = CorineVector(str(path)).class_fractions(chip)
    expected = frame.to_crs(32632).geometry.iloc[0].intersection(square).area / square.area
    assert 0 < expected < 1
    assert result.fractions == {231: pytest.approx(expected, rel=1e-9)}
    assert result.nodata_fraction == pytest.approx(1 - expected)


def test_corine_vector_missing_field_and_empty_area(tmp_path: Path) -> None:
    frame = gpd.GeoDataFrame({"CODE": ["211"]}, geometry=[shapely.box(*CHIP.bounds)], crs=32632)
    path = tmp_path / "clc.gpkg"
    frame.to_file(path)
    with pytest.raises(SourceError, match="code_field"):
        CorineVector(str(path)).class_fractions(CHIP)
    far = ChipGeometry(32632, col=90, row=90)
    assert CorineVector(str(path), code_field="CODE").class_fractions(far) == ClassFractions(
        "corine", {}, 1.0
    )


def test_dynamic_world_raster(tmp_path: Path) -> None:
    # 10 m label band in the chip CRS, 120 x 120: left half trees, top-right quarter built,
    # bottom-right quarter nodata (255).
    data = np.full((120, 120), 1, dtype=np.uint8)
    data[:60, 60:] = 6
    data[60:, 60:] = 255
    href = write_tif(tmp_path / "dw.tif", data, Affine(10, 0, 12000, 0, -10, 25200), 32632)
    source = DynamicWorldRaster(href)
    result = source.class_fractions(CHIP)
    assert result.source == "dynamic_world"
    assert result.fractions == {1: pytest.approx(0.5), 6: pytest.approx(0.25)}
    assert result.nodata_fraction == pytest.approx(0.25)
