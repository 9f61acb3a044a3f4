"""STAC items of the simulated scenes, shaped like real Planetary Computer / Earth Search items.

Sentinel-2 items carry the ``eo``, ``proj``, ``sat`` and ``raster`` extensions, the
``s2:*`` properties (with quality percentages computed from the simulated SCL) and
asset keys ``B01``..``B12``, ``B8A`` and ``SCL``; Sentinel-1 items carry ``sar``,
``sat``, ``proj`` and ``raster`` with ``vv``/``vh`` assets. Asset hrefs are absolute
paths here; the catalog and the geoparquet writers make them relative.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pystac
from rasterio import features
from shapely.geometry import mapping, shape
from shapely.ops import unary_union

from pipeline import numerics
from pipeline.archive.cog import AssetFile, RasterGrid
from pipeline.archive.geometry import reproject
from pipeline.archive.optical import BOA_ADD_OFFSET, block_all
from pipeline.archive.scenes import SceneSpec
from pipeline.archive.sites import AoiSpec

EXTENSIONS = {
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "proj": "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "sat": "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "sar": "https://stac-extensions.github.io/sar/v1.3.0/schema.json",
}
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
# name -> (common name, description, centre wavelength um, FWHM um), as in Planetary Computer.
S2_BANDS = {
    "B01": ("coastal", "Band 1 - Coastal aerosol", 0.443, 0.027),
    "B02": ("blue", "Band 2 - Blue", 0.49, 0.098),
    "B03": ("green", "Band 3 - Green", 0.56, 0.045),
    "B04": ("red", "Band 4 - Red", 0.665, 0.038),
    "B05": ("rededge", "Band 5 - Vegetation red edge 1", 0.704, 0.019),
    "B06": ("rededge", "Band 6 - Vegetation red edge 2", 0.74, 0.018),
    "B07": ("rededge", "Band 7 - Vegetation red edge 3", 0.783, 0.028),
    "B08": ("nir", "Band 8 - NIR", 0.842, 0.145),
    "B8A": ("rededge", "Band 8A - Vegetation red edge 4", 0.865, 0.033),
    "B09": (None, "Band 9 - Water vapor", 0.945, 0.026),
    "B11": ("swir16", "Band 11 - SWIR (1.6)", 1.61, 0.143),
    "B12": ("swir22", "Band 12 - SWIR (2.2)", 2.19, 0.242),
}


def footprint(valid: np.ndarray, grid: RasterGrid, factor: int = 6) -> dict:
    """GeoJSON polygon (EPSG:4326) of the pixels with data, traced on a coarsened grid."""
    coarse = block_all(valid, factor)
    coarse_grid = grid.coarsened(factor)
    shapes = features.shapes(coarse.astype(np.uint8), mask=coarse, transform=coarse_grid.transform)
    outline = unary_union([shape(geom) for geom, _ in shapes]).simplify(grid.resolution * factor)
    lonlat = reproject(outline.segmentize(1000.0), grid.epsg, 4326)
    return _rounded(mapping(lonlat))


def _rounded(geometry: dict) -> dict:
    def walk(value):
        if isinstance(value, float):
            return round(value, 7)
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        return value

    return {"type": geometry["type"], "coordinates": walk(geometry["coordinates"])}


def _bbox(geometry: dict) -> list[float]:
    return [round(v, 7) for v in shape(geometry).bounds]


def _projection_fields(grid: RasterGrid) -> dict:
    t = grid.transform
    return {
        "proj:shape": list(grid.shape),
        "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
        "proj:bbox": list(grid.bounds),
    }


def s2_item(
    scene: SceneSpec, site: AoiSpec, assets: list[AssetFile], stats: dict, geometry: dict
) -> pystac.Item:
    """A ``sentinel-2-l2a`` item with Planetary-Computer-like properties and assets."""
    props = {
        "platform": f"Sentinel-2{scene.platform}",
        "constellation": "Sentinel 2",
        "instruments": ["msi"],
        "proj:epsg": site.epsg,
        **stats,
        "s2:product_type": "S2MSI2A",
        "s2:datatake_type": "INS-NOBS",
        "s2:degraded_msi_data_percentage": 0.0,
        "s2:saturated_defective_pixel_percentage": 0.0,
        "s2:dark_features_percentage": 0.0,
        "s2:unclassified_percentage": 0.0,
        "s2:reflectance_conversion_factor": _earth_sun_factor(scene.when),
        **scene.props,
        "created": scene.props["s2:generation_time"],
    }
    item = _item(scene, geometry, props, ("eo", "proj", "sat", "raster"))
    offset = -BOA_ADD_OFFSET / 10000 if props["s2:processing_baseline"] >= "04.00" else 0.0
    for asset in assets:
        item.add_asset(asset.key, _s2_asset(asset, offset))
    return item


def _earth_sun_factor(when: datetime) -> float:
    day = when.timetuple().tm_yday
    return round(1 / (1 - 0.01673 * float(numerics.cos(0.0172 * (day - 4)))) ** 2, 12)


def _s2_asset(asset: AssetFile, offset: float) -> pystac.Asset:
    gsd = asset.grid.resolution
    extra: dict = {"gsd": gsd, **_projection_fields(asset.grid)}
    band = {"nodata": 0, "data_type": asset.dtype, "spatial_resolution": gsd}
    if asset.key == "SCL":
        extra["raster:bands"] = [band]
        return pystac.Asset(
            _path(asset), "Scene classfication map (SCL)", None, COG_TYPE, ["data"], extra
        )
    common, description, centre, fwhm = S2_BANDS[asset.key]
    eo_band = {"name": asset.key, "description": description, "center_wavelength": centre,
               "full_width_half_max": fwhm}  # fmt: skip
    if common:
        eo_band["common_name"] = common
    extra["eo:bands"] = [eo_band]
    extra["raster:bands"] = [{**band, "scale": 0.0001, "offset": offset}]
    return pystac.Asset(
        _path(asset), f"{description} - {int(gsd)}m", None, COG_TYPE, ["data"], extra
    )


def s1_item(
    scene: SceneSpec, site: AoiSpec, assets: list[AssetFile], geometry: dict
) -> pystac.Item:
    """A ``sentinel-1-grd`` item with Earth-Search/stactools-like properties and assets."""
    props = {
        "platform": f"sentinel-1{scene.platform.lower()}",
        "constellation": "sentinel-1",
        "instruments": ["c-sar"],
        "sar:frequency_band": "C",
        "sar:center_frequency": 5.405,
        "sar:observation_direction": "right",
        "sar:instrument_mode": "IW",
        "sar:polarizations": ["VV", "VH"],
        "sar:product_type": "GRD",
        "sar:resolution_range": 20,
        "sar:resolution_azimuth": 22,
        "sar:pixel_spacing_range": 10,
        "sar:pixel_spacing_azimuth": 10,
        "sar:looks_range": 5,
        "sar:looks_azimuth": 1,
        "sar:looks_equivalent_number": 4.4,
        "sat:platform_international_designator": "2014-016A"
        if scene.platform == "A"
        else "2016-025A",
        "proj:epsg": site.epsg,
        "s1:instrument_configuration_ID": "7",
        "s1:product_timeliness": "Fast-24h",
        "s1:processing_level": "1",
        "s1:resolution": "high",
        "s1:orbit_source": "RESORB",
        "s1:shape": list(assets[0].grid.shape),
        **scene.props,
        "created": scene.props["s1:processing_datetime"],
    }
    item = _item(scene, geometry, props, ("sar", "sat", "proj", "raster"))
    for asset in assets:
        item.add_asset(asset.key, _s1_asset(asset))
    return item


def _s1_asset(asset: AssetFile) -> pystac.Asset:
    pol = asset.key.upper()
    extra = {
        "sar:polarizations": [pol],
        "gsd": asset.grid.resolution,
        **_projection_fields(asset.grid),
        "raster:bands": [{"nodata": 0, "data_type": "float32", "unit": "linear sigma0"}],
    }
    description = "Terrain-corrected sigma0 backscatter, linear power (simulated)"
    return pystac.Asset(_path(asset), f"{pol} Data", description, COG_TYPE, ["data"], extra)


def _item(
    scene: SceneSpec, geometry: dict, props: dict, extensions: tuple[str, ...]
) -> pystac.Item:
    return pystac.Item(
        id=scene.item_id,
        geometry=geometry,
        bbox=_bbox(geometry),
        datetime=scene.when,
        properties=props,
        stac_extensions=[EXTENSIONS[name] for name in extensions],
        collection=scene.collection,
    )


def _path(asset: AssetFile) -> str:
    return asset.path.as_posix()
