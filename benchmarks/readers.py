"""The readers compared: this project's, a naive per-chip rasterio reader, odc-stac per chip
and odc-stac per scene. Each turns one scene and its planned chips into ``(key, image)``
pairs, ``image`` the chip stage's converted pixels (S2 harmonized digital numbers, S1 dB;
``(bands, 120, 120)`` float32), so the arrays of all readers can be compared bit for bit.

The conversion after the read (``pipeline.chips.read._to_chip_pixels``) is the project's
for every reader: the readers differ only in how pixels travel from the COGs to memory.
odc-stac is imported here only; the product never needs it (``bench`` extra).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from pipeline.chips.plan import PlannedChip
from pipeline.chips.read import _to_chip_pixels, read_bands, read_scene_chips
from pipeline.sources.assets import Resolver
from pipeline.sources.base import Scene

Reader = Callable[[Scene, Sequence[PlannedChip], dict[str, Any]], Iterator[tuple[str, np.ndarray]]]

# What anyone reading COGs over HTTP sets; the project reader sets more (``gdal_env``).
NAIVE_GDAL_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif",
}


def resolved(scene: Scene, base_url: str) -> Scene:
    """``scene`` with its relative hrefs joined to the server's URL."""
    resolve = Resolver(base_url)
    assets = {
        band: dataclasses.replace(a, href=resolve(a.href)) for band, a in scene.assets.items()
    }
    return dataclasses.replace(scene, assets=assets)


def project_reader(
    scene: Scene, chips: Sequence[PlannedChip], item: dict[str, Any]
) -> Iterator[tuple[str, np.ndarray]]:
    """The chip stage's reader: every band streamed once in block-row strips."""
    for pixels in read_scene_chips(scene, chips):
        yield pixels.chip.key, pixels.image


def naive_reader(
    scene: Scene, chips: Sequence[PlannedChip], item: dict[str, Any]
) -> Iterator[tuple[str, np.ndarray]]:
    """Per chip and band: open the COG, read the chip's window, 20/60 m to 10 m by
    nearest-neighbour resampling in GDAL (pixel replication on the nested grids)."""
    bands = read_bands(scene)
    with rasterio.Env(**NAIVE_GDAL_ENV):
        for chip in chips:
            planes = [_naive_plane(scene.assets[band].href, chip) for band in bands]
            yield chip.key, _to_chip_pixels(scene, chip, bands, planes).image


def _naive_plane(href: str, chip: PlannedChip) -> np.ndarray:
    cell = chip.cell
    minx, _, maxx, maxy = cell.bounds
    with rasterio.open(href) as ds:
        t = ds.transform
        size = round((maxx - minx) / t.a)
        window = Window(round((minx - t.c) / t.a), round((t.f - maxy) / -t.e), size, size)
        out = (cell.pixels, cell.pixels)
        return ds.read(1, window=window, out_shape=out, resampling=Resampling.nearest)


def odc_chip_reader(
    scene: Scene, chips: Sequence[PlannedChip], item: dict[str, Any]
) -> Iterator[tuple[str, np.ndarray]]:
    """``odc.stac.load`` of one item on each chip's 10 m grid (nearest resampling)."""
    stac_item, bands = _stac_item(item), asset_keys(scene, item)
    for chip in chips:
        data = _odc_load(stac_item, bands, chip.cell.bounds, chip.cell.epsg)
        planes = [data[band].values[0] for band in bands]
        yield chip.key, _to_chip_pixels(scene, chip, read_bands(scene), planes).image


def odc_scene_reader(
    scene: Scene, chips: Sequence[PlannedChip], item: dict[str, Any]
) -> Iterator[tuple[str, np.ndarray]]:
    """``odc.stac.load`` of the whole scene (the chips' extent) once, then slice the chips."""
    if not chips:
        return
    bands = asset_keys(scene, item)
    bounds = [c.cell.bounds for c in chips]
    minx, maxy = min(b[0] for b in bounds), max(b[3] for b in bounds)
    extent = (minx, min(b[1] for b in bounds), max(b[2] for b in bounds), maxy)
    data = _odc_load(_stac_item(item), bands, extent, chips[0].cell.epsg)
    stack = [data[band].values[0] for band in bands]
    for chip in chips:
        x0, _, _, y1 = chip.cell.bounds
        col, row = (
            round((x0 - minx) / chip.cell.pixel_size),
            round((maxy - y1) / chip.cell.pixel_size),
        )
        n = chip.cell.pixels
        planes = [plane[row : row + n, col : col + n] for plane in stack]
        yield chip.key, _to_chip_pixels(scene, chip, read_bands(scene), planes).image


def asset_keys(scene: Scene, item: dict[str, Any]) -> list[str]:
    """The item's asset keys of ``read_bands(scene)`` (the scene names bands canonically:
    ``VV``, where the item may say ``vv``), matched by href."""
    by_href = {asset["href"]: key for key, asset in item["assets"].items()}
    return [by_href[scene.assets[band].href] for band in read_bands(scene)]


def _stac_item(item: dict[str, Any]) -> Any:
    import pystac

    return pystac.Item.from_dict(item, preserve_dict=False)


def _odc_load(
    item: Any, bands: list[str], bounds: tuple[float, float, float, float], epsg: int
) -> Any:
    import odc.stac
    from odc.geo.geobox import GeoBox

    geobox = GeoBox.from_bbox(bounds, crs=f"EPSG:{epsg}", resolution=10)
    return odc.stac.load([item], bands=bands, geobox=geobox, resampling="nearest")


READERS: dict[str, Reader] = {
    "project_reader": project_reader,
    "naive_rasterio": naive_reader,
    "odc_stac_chip": odc_chip_reader,
    "odc_stac_scene": odc_scene_reader,
}
