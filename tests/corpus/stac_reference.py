"""The STAC view built the way pystac builds and saves a catalog: one ``pystac.Item`` per chip
with pystac's projection extension, links and assets, the whole catalog saved by
``catalog.save``. The product writes plain dicts (``pipeline.corpus.stac_chip_item``) for
speed; ``tests/corpus/test_stac_view.py`` checks they are these files, byte for byte."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import geopandas as gpd
import pystac
import shapely.geometry
from pystac.extensions.projection import ProjectionExtension

from pipeline.corpus.stac_chip_assets import (
    COG_ASSET,
    COG_MEDIA_TYPE,
    EO_EXTENSION,
    RASTER_EXTENSION,
    band_fields,
    chip_transform,
)
from pipeline.corpus.stac_chip_item import (
    LABEL_DESCRIPTION,
    LABEL_EXTENSION,
    LABEL_PROPERTIES,
    label_classes,
)
from pipeline.corpus.stac_view import (
    CHIP_COLLECTIONS,
    SENSOR_TEXT,
    SOURCES_COLLECTION,
    _catalog,
    _collection,
    _source_item,
)
from pipeline.sources.base import SENSOR_BANDS, Scene


def build_catalog(
    meta: gpd.GeoDataFrame,
    scenes: Sequence[Scene],
    manifest: Mapping[str, Any],
    cogs: bool = False,
) -> pystac.Catalog:
    """The whole catalog as pystac objects in memory, saved by pystac's own ``catalog.save``:
    the reference ``write_catalog`` is tested against."""
    catalog = _catalog(manifest)
    sources = {s.item_id: _source_item(s, manifest["config"]) for s in scenes}
    catalog.add_child(_collection(SOURCES_COLLECTION, "Source scenes", sources.values()))
    for sensor, collection_id in CHIP_COLLECTIONS.items():
        rows = meta[meta["sensor"] == sensor]
        if len(rows):
            items = [_chip_item(row, sources[row["item_id"]], cogs) for _, row in rows.iterrows()]
            catalog.add_child(_collection(collection_id, SENSOR_TEXT[sensor], items))
    return catalog


def _chip_item(row: Mapping[str, Any], source: pystac.Item, cogs: bool) -> pystac.Item:
    """The chip item of ``row`` built with pystac's own objects and extension helpers."""
    geometry = row["geometry"]
    item = pystac.Item(
        row["key"],
        geometry=shapely.geometry.mapping(geometry),
        bbox=[round(v, 7) for v in geometry.bounds],
        datetime=datetime.fromisoformat(row["datetime"]),
        properties={
            "clm:sensor": row["sensor"],
            "clm:split": row["split"],
            "clm:labels": list(row["labels"]),
            "clm:caption": row["caption"],
            "clm:caption_reference": row["caption_reference"],
            "clm:cell": row["cell"],
            "clm:pixel_sha256": row["pixel_sha256"],
            "clm:processing_baseline": row.get("processing_baseline"),
            "clm:software_version": row.get("software_version"),
            "clm:config_digest": row.get("config_digest"),
        },
    )
    _add_projection(item, row)
    _add_labels(item, row, source)
    _add_assets(item, row)
    if cogs:
        _add_cog(item, row)
    return item


def _add_projection(item: pystac.Item, row: Mapping[str, Any]) -> None:
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.apply(
        code=f"EPSG:{int(row['epsg'])}",
        bbox=[float(v) for v in row["read_window"]],
        shape=[120, 120],
        transform=list(chip_transform(row["read_window"]))[:6],
    )


def _add_labels(item: pystac.Item, row: Mapping[str, Any], source: pystac.Item) -> None:
    """Label extension fields (written directly: pystac's helper for it is deprecated)."""
    item.stac_extensions.append(LABEL_EXTENSION)
    item.properties.update(
        {
            "label:description": LABEL_DESCRIPTION,
            "label:type": "vector",
            "label:properties": list(LABEL_PROPERTIES),
            "label:classes": label_classes(),
            "label:tasks": ["classification"],
            "label:methods": ["automated"],
            "label:overviews": [
                {
                    "property_key": "labels",
                    "counts": [{"name": str(name), "count": 1} for name in row["labels"]],
                }
            ],
        }
    )
    link = pystac.Link("source", source, media_type=pystac.MediaType.JSON, title=source.id)
    link.extra_fields["label:assets"] = list(SENSOR_BANDS[row["sensor"]])
    item.add_link(link)


def _add_assets(item: pystac.Item, row: Mapping[str, Any]) -> None:
    item.add_asset(
        "image",
        pystac.Asset(
            f"../../../shards/{row['shard']}",
            title=f"HDF5 group {row['key']} (image, coords)",
            media_type="application/x-hdf5",
            roles=["data"],
            extra_fields={"clm:hdf5_key": row["key"]},
        ),
    )
    item.add_asset(
        "labels",
        pystac.Asset(
            "../../../metadata.parquet",
            title="metadata.parquet row of this chip (columns named by label:properties)",
            media_type="application/vnd.apache.parquet",
            roles=["labels", "metadata"],
            extra_fields={"clm:row_key": row["key"]},
        ),
    )


def _add_cog(item: pystac.Item, row: Mapping[str, Any]) -> None:
    """The chip as a COG beside the item JSON, with its grid and band description. The grid
    moves from the item onto this asset, so STAC raster tools (which read every asset with a
    grid as a raster) load the COG bands and leave the HDF5 shard asset alone."""
    item.stac_extensions += [EO_EXTENSION, RASTER_EXTENSION]
    for name in ("proj:shape", "proj:transform"):
        item.properties.pop(name)
    item.add_asset(
        COG_ASSET,
        pystac.Asset(
            f"./{row['key']}.tif",
            title="Chip image, all bands (float32, as in the HDF5 shard)",
            media_type=COG_MEDIA_TYPE,
            roles=["data"],
            extra_fields={
                "proj:code": f"EPSG:{int(row['epsg'])}",
                "proj:shape": [120, 120],
                "proj:transform": list(chip_transform(row["read_window"]))[:6],
                **band_fields(row["sensor"]),
            },
        ),
    )
