"""Per-chip Cloud-Optimized GeoTIFFs for the STAC view (``output.stac_chip_assets: cog``).

The HDF5 shards hold many chips per file, which no STAC raster tool can address. With the
option on, every chip item of the STAC view gets a ``cog`` asset: a small COG beside the item
JSON with the chip image exactly as in its shard (float32, all bands, the chip CRS and grid),
described with the projection (``proj:shape``, ``proj:transform``), ``eo:bands`` (names,
Sentinel-2 common names and wavelengths) and ``raster:bands`` (data type, nodata, scale,
unit) fields that ``odc.stac.load``, stackstac and rasterio read. The bytes are deterministic
(fixed creation options, no timestamps), so the lock's output checksums hold across rebuilds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import rasterio
from affine import Affine

from pipeline.errors import ConfigError
from pipeline.sources.base import SENSOR_BANDS

CHIP_ASSET_KINDS = ("none", "cog")
CHIP_PX = 120
COG_ASSET = "cog"
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
EO_EXTENSION = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"
RASTER_EXTENSION = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
COG_OPTIONS = {
    "driver": "COG",
    "compress": "DEFLATE",
    "predictor": 3,  # floating point
    "level": 6,
    "blocksize": 128,
    "overviews": "NONE",
    "num_threads": 1,
}
S2_SPECTRUM = {  # name -> (common name, centre wavelength in micrometres)
    "B01": ("coastal", 0.443), "B02": ("blue", 0.49), "B03": ("green", 0.56),
    "B04": ("red", 0.665), "B05": ("rededge", 0.704), "B06": ("rededge", 0.74),
    "B07": ("rededge", 0.783), "B08": ("nir", 0.842), "B8A": ("nir08", 0.865),
    "B09": ("nir09", 0.945), "B11": ("swir16", 1.61), "B12": ("swir22", 2.19),
}  # fmt: skip
NODATA = {"s2": 0.0, "s1": -50.0}  # S2: all bands 0; S1: the dB floor of pipeline.chips.read


def chip_asset_kind(manifest: Mapping[str, Any], override: str | None = None) -> str:
    """The chip asset kind: ``override`` or the recipe's ``output.stac_chip_assets``."""
    kind = override or manifest.get("config", {}).get("output", {}).get("stac_chip_assets")
    kind = kind or "none"
    if kind not in CHIP_ASSET_KINDS:
        raise ConfigError(
            f"unknown STAC chip asset kind {kind!r}; choose one of {', '.join(CHIP_ASSET_KINDS)}"
        )
    return str(kind)


def chip_transform(read_window: Iterable[float]) -> Affine:
    """The 120 x 120 grid of a chip from its read window ``[minx, miny, maxx, maxy]``."""
    minx, miny, maxx, maxy = (float(v) for v in read_window)
    return Affine((maxx - minx) / CHIP_PX, 0.0, minx, 0.0, -(maxy - miny) / CHIP_PX, maxy)


def band_fields(sensor: str) -> dict[str, list[dict[str, Any]]]:
    """``eo:bands`` and ``raster:bands`` of a chip COG of ``sensor``, in band order."""
    names = SENSOR_BANDS[sensor]
    raster: dict[str, Any] = {"data_type": "float32", "nodata": NODATA[sensor]}
    raster["spatial_resolution"] = 10
    if sensor == "s2":
        eo = [
            {"name": n, "common_name": S2_SPECTRUM[n][0], "center_wavelength": S2_SPECTRUM[n][1]}
            for n in names
        ]
        return {"eo:bands": eo, "raster:bands": [{**raster, "scale": 0.0001} for _ in names]}
    eo = [{"name": n, "description": f"{n} backscatter (dB)"} for n in names]
    return {"eo:bands": eo, "raster:bands": [{**raster, "unit": "dB"} for _ in names]}


def write_chip_cogs(corpus: Path, meta: pd.DataFrame, item_dirs: Mapping[str, Path]) -> int:
    """Write ``<key>.tif`` into each chip's item directory, reading every shard once."""
    written = 0
    for shard, rows in meta.groupby("shard", sort=True):
        with h5py.File(corpus / "shards" / str(shard), "r") as h5:
            for row in rows.itertuples(index=False):
                image = h5[row.key]["image"][()]
                write_cog(item_dirs[row.key] / f"{row.key}.tif", image, row)
                written += 1
    return written


def write_cog(path: Path, image: np.ndarray, row: Any) -> None:
    profile = {
        **COG_OPTIONS,
        "width": CHIP_PX,
        "height": CHIP_PX,
        "count": image.shape[0],
        "dtype": "float32",
        "crs": f"EPSG:{int(row.epsg)}",
        "transform": chip_transform(row.read_window),
        "nodata": NODATA[row.sensor],
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(image.astype(np.float32, copy=False))
        dst.descriptions = SENSOR_BANDS[row.sensor]
