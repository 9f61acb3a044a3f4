"""The archive's STAC outputs: a static self-contained catalog, a stac-geoparquet file,
and offline validation of every item against locally available JSON schemas.

pystac ships the STAC core schemas; extension schemas are validated only when
their JSON schema file is given (no network): the others are recorded as skipped.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import pystac
import stac_geoparquet.arrow
from pystac.validation import JsonSchemaSTACValidator, validate_dict
from pystac.validation.stac_validator import GetSchemaError

from pipeline.archive.layout import S1_COLLECTION, S2_COLLECTION, ArchiveLayout
from pipeline.errors import SchemaError
from pipeline.storage import atomic_path

COLLECTION_TEXT = {
    S2_COLLECTION: ("Sentinel-2 Level-2A (simulated)", "Simulated Sentinel-2 L2A scenes of the CrisisLandMark demo archive."),
    S1_COLLECTION: ("Sentinel-1 GRD (simulated)", "Simulated Sentinel-1 IW GRD VV/VH scenes, terrain-corrected on the AOI UTM grid."),
}  # fmt: skip


class OfflineValidator(JsonSchemaSTACValidator):
    """A pystac validator that never fetches schemas: unknown extension schemas are skipped."""

    def __init__(self, schema_files: Iterable[Path] = ()) -> None:
        super().__init__()
        self.skipped: set[str] = set()
        for path in schema_files:
            schema = json.loads(Path(path).read_text(encoding="utf-8"))
            self.schema_cache[schema.get("$id", schema.get("id"))] = schema

    def _get_schema(self, schema_uri: str) -> dict[str, Any]:
        if schema_uri not in self.schema_cache:
            raise GetSchemaError(schema_uri, FileNotFoundError(f"no local copy of {schema_uri}"))
        return self.schema_cache[schema_uri]

    def validate_extension(
        self,
        stac_dict: dict[str, Any],
        stac_object_type: pystac.STACObjectType,
        stac_version: str,
        extension_id: str,
        href: str | None = None,
    ) -> str | None:
        if extension_id not in self.schema_cache:
            self.skipped.add(extension_id)
            return None
        return super().validate_extension(
            stac_dict, stac_object_type, stac_version, extension_id, href
        )


def validate_items(items: Iterable[dict], validator: OfflineValidator) -> None:
    """Validate item dicts (core schema and locally known extensions); raise SchemaError."""
    for item in items:
        try:
            validate_dict(item, validator=validator)
        except pystac.STACValidationError as error:
            raise SchemaError(
                f"simulated STAC item {item.get('id')} is invalid: {error}"
            ) from error


def write_catalog(layout: ArchiveLayout, items: list[pystac.Item]) -> None:
    """A static self-contained catalog (relative hrefs) at ``layout.catalog``."""
    catalog = pystac.Catalog(
        "crisislandmark-demo",
        "Simulated Sentinel-1/2 archive of the CrisisLandMark demo (synthetic data).",
        title="CrisisLandMark demo archive",
    )
    for collection_id in (S2_COLLECTION, S1_COLLECTION):
        members = [copy.deepcopy(i) for i in items if i.collection_id == collection_id]
        if members:
            catalog.add_child(_collection(collection_id, members))
    staging = layout.catalog.parent.with_name("_stac_staging")
    if staging.exists():
        shutil.rmtree(staging)
    catalog.normalize_hrefs(staging.as_posix())
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    if layout.catalog.parent.exists():
        shutil.rmtree(layout.catalog.parent)
    staging.rename(layout.catalog.parent)


def _collection(collection_id: str, items: list[pystac.Item]) -> pystac.Collection:
    title, description = COLLECTION_TEXT[collection_id]
    boxes = [item.bbox for item in items if item.bbox]
    bbox = [
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    ]
    times = sorted(item.datetime for item in items if isinstance(item.datetime, datetime))
    extent = pystac.Extent(
        pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[times[0], times[-1]]])
    )
    collection = pystac.Collection(
        collection_id, description, extent, title=title, license="proprietary"
    )
    collection.providers = [
        pystac.Provider("ESA", roles=[pystac.ProviderRole.PRODUCER, pystac.ProviderRole.LICENSOR])
    ]
    for item in sorted(items, key=lambda i: (i.datetime, i.id)):
        collection.add_item(item)
    return collection


def parquet_records(layout: ArchiveLayout, items: list[pystac.Item]) -> list[dict]:
    """Item dicts whose hrefs (assets, collection link) are relative to the archive root."""
    records = []
    for item in items:
        record = item.to_dict(include_self_link=False, transform_hrefs=False)
        collection = layout.catalog.parent / str(item.collection_id) / "collection.json"
        record["links"] = [
            {"rel": "collection", "href": layout.relative(collection), "type": "application/json"}
        ]
        for asset in record["assets"].values():
            asset["href"] = layout.relative(Path(asset["href"]))
        records.append(record)
    return records


def write_items_parquet(layout: ArchiveLayout, records: list[dict]) -> None:
    table = stac_geoparquet.arrow.parse_stac_items_to_arrow(records)
    with atomic_path(layout.items_parquet) as tmp:
        stac_geoparquet.arrow.to_parquet(table, tmp)
    layout.items_parquet.chmod(0o644)
