"""Planning refuses items whose raster does not cover their own footprint."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from pipeline.chips.plan import plan_scene
from pipeline.errors import SourceError
from pipeline.sources.base import Scene, SearchQuery
from pipeline.sources.geoparquet import GeoParquetSource


@pytest.fixture(scope="module")
def s2(tiny_archive) -> Scene:
    query = SearchQuery(
        ("sentinel-2-l2a",), datetime(2020, 1, 1, tzinfo=UTC), datetime(2023, 12, 31, tzinfo=UTC)
    )
    return next(iter(GeoParquetSource(tiny_archive / "items.parquet").search(query)))


def _shifted(scene: Scene, dx: float) -> Scene:
    assets = {}
    for band, asset in scene.assets.items():
        t = list(asset.transform)
        t[2] += dx
        assets[band] = dataclasses.replace(asset, transform=tuple(t))
    return dataclasses.replace(scene, assets=assets)


def test_a_consistent_item_plans_its_chips(s2):
    assert len(plan_scene(s2)) > 0


@pytest.mark.parametrize(
    ("epsg", "where"), [(32633, r"4\d\d km east"), (32631, r"4\d\d km west"), (32732, "south")]
)
def test_a_wrong_proj_epsg_names_distance_and_direction(s2, epsg, where):
    assert s2.epsg == 32632
    with pytest.raises(SourceError, match=rf"proj:epsg {epsg} .*{where} of the item footprint"):
        plan_scene(dataclasses.replace(s2, epsg=epsg))


def test_a_transform_shifted_off_most_of_the_footprint_fails(s2):
    width = s2.assets["B02"].shape[1] * s2.assets["B02"].transform[0]
    plan_scene(_shifted(s2, 0.3 * width))  # 70 % still covered: a sloppy item, still planned
    with pytest.raises(SourceError, match=r"\d+% of the footprint covered"):
        plan_scene(_shifted(s2, 0.7 * width))
