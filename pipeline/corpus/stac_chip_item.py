"""One chip item of the STAC view as the plain dict pystac would save for it.

Building a ``pystac.Item`` per chip, linking it into stand-ins of its catalog and collection
and saving it was most of the STAC view's cost per chip (half of it pystac's link and href
machinery), yet the JSON is fixed by the corpus layout. ``chip_item_dict`` makes it directly:
the keys in pystac's order (``Item.to_dict``, ``Link.to_dict``, ``Asset.to_dict``), the
extension URIs in the order pystac appends them, the links sorted as pystac saves items
(``source``, ``root``, ``collection``, ``parent``) with the relative hrefs a self-contained
catalog gets, the datetime by pystac's ``datetime_to_str``. ``tests/corpus/stac_reference.py``
builds the same item with pystac: the reference this is tested against byte for byte
(``tests/corpus/test_stac_view.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pystac
import shapely.geometry
from pystac.extensions.projection import ProjectionExtension
from pystac.utils import datetime_to_str

from pipeline.corpus.stac_chip_assets import (
    COG_ASSET,
    COG_MEDIA_TYPE,
    EO_EXTENSION,
    RASTER_EXTENSION,
    band_fields,
    chip_transform,
)
from pipeline.labels.taxonomy import (
    CRISIS_LABELS,
    REFERENCE_LABELS,
    clc_classes,
    dynamic_world_classes,
)
from pipeline.sources.base import SENSOR_BANDS

PROJECTION_EXTENSION = ProjectionExtension.get_schema_uri()
LABEL_EXTENSION = "https://stac-extensions.github.io/label/v1.0.1/schema.json"
LABEL_PROPERTIES = ("labels", "labels_land_cover", "labels_land_use", "labels_crisis")
LABEL_DESCRIPTION = (
    "Chip-level multi-labels: the 12 CrisisLandMark reference labels "
    "(harmonized), Dynamic World land cover >= 5 %, CORINE level-3 land use, EMS crisis"
)
JSON = str(pystac.MediaType.JSON)


@dataclass(frozen=True)
class Names:
    """Where one chip collection's items are written and what their links carry."""

    root: Path
    catalog_title: str
    collection_id: str
    collection_title: str
    sources_collection: str


def label_classes() -> list[dict[str, Any]]:
    """``label:classes``: the class list of each ``label:properties`` column."""
    return [
        {"name": "labels", "classes": list(REFERENCE_LABELS)},
        {"name": "labels_land_cover", "classes": [c.label for c in dynamic_world_classes()]},
        {"name": "labels_land_use", "classes": [c.code for c in clc_classes()]},
        {"name": "labels_crisis", "classes": list(CRISIS_LABELS.values())},
    ]


def chip_item_dict(
    row: Mapping[str, Any], names: Names, cogs: bool, classes: list[dict[str, Any]]
) -> dict[str, Any]:
    """The item of the chip of ``row`` (a ``metadata.parquet`` row) as saved at
    ``<root>/<collection>/<key>/<key>.json``; ``classes`` is ``label_classes()``, made once
    by the caller (the same for every chip)."""
    geometry = row["geometry"]
    transform = list(chip_transform(row["read_window"]))[:6]
    grid = {} if cogs else {"proj:shape": [120, 120], "proj:transform": transform}
    extensions = [PROJECTION_EXTENSION, LABEL_EXTENSION]
    return {
        "type": "Feature",
        "stac_version": pystac.get_stac_version(),
        "stac_extensions": extensions + ([EO_EXTENSION, RASTER_EXTENSION] if cogs else []),
        "id": row["key"],
        "geometry": shapely.geometry.mapping(geometry),
        "bbox": [round(v, 7) for v in geometry.bounds],
        "properties": {
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
            "proj:code": f"EPSG:{int(row['epsg'])}",
            "proj:bbox": [float(v) for v in row["read_window"]],
            **grid,
            **_label_fields(row, classes),
            "datetime": datetime_to_str(datetime.fromisoformat(row["datetime"])),
        },
        "links": _links(row, names),
        "assets": _assets(row, transform if cogs else None),
        "collection": names.collection_id,
    }


def _label_fields(row: Mapping[str, Any], classes: list[dict[str, Any]]) -> dict[str, Any]:
    """Label extension fields (the pystac reference writes the same)."""
    return {
        "label:description": LABEL_DESCRIPTION,
        "label:type": "vector",
        "label:properties": list(LABEL_PROPERTIES),
        "label:classes": classes,
        "label:tasks": ["classification"],
        "label:methods": ["automated"],
        "label:overviews": [
            {
                "property_key": "labels",
                "counts": [{"name": str(name), "count": 1} for name in row["labels"]],
            }
        ],
    }


def _links(row: Mapping[str, Any], names: Names) -> list[dict[str, Any]]:
    """The links of an item at ``<root>/<collection>/<key>/<key>.json``, hrefs relative to it."""
    source = row["item_id"]
    collection = {"href": "../collection.json", "type": JSON, "title": names.collection_title}
    return [
        {
            "rel": "source",
            "href": f"../../{names.sources_collection}/{source}/{source}.json",
            "type": JSON,
            "title": source,
            "label:assets": list(SENSOR_BANDS[row["sensor"]]),
        },
        {"rel": "root", "href": "../../catalog.json", "type": JSON, "title": names.catalog_title},
        {"rel": "collection", **collection},
        {"rel": "parent", **collection},
    ]


def _assets(row: Mapping[str, Any], cog_transform: list[float] | None = None) -> dict[str, Any]:
    """The ``image`` and ``labels`` assets; with ``cog_transform`` the chip's COG too, which
    carries the grid (``proj:shape``, ``proj:transform``) instead of the item."""
    key = row["key"]
    assets: dict[str, Any] = {
        "image": {
            "href": f"../../../shards/{row['shard']}",
            "type": "application/x-hdf5",
            "title": f"HDF5 group {key} (image, coords)",
            "clm:hdf5_key": key,
            "roles": ["data"],
        },
        "labels": {
            "href": "../../../metadata.parquet",
            "type": "application/vnd.apache.parquet",
            "title": "metadata.parquet row of this chip (columns named by label:properties)",
            "clm:row_key": key,
            "roles": ["labels", "metadata"],
        },
    }
    if cog_transform is not None:
        assets[COG_ASSET] = {
            "href": f"./{key}.tif",
            "type": COG_MEDIA_TYPE,
            "title": "Chip image, all bands (float32, as in the HDF5 shard)",
            "proj:code": f"EPSG:{int(row['epsg'])}",
            "proj:shape": [120, 120],
            "proj:transform": cog_transform,
            **band_fields(row["sensor"]),
            "roles": ["data"],
        }
    return assets
