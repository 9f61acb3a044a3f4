"""The STAC view of a corpus: a self-contained static catalog, validated offline.

``stac/catalog.json`` holds three collections:
- ``clm-s1`` and ``clm-s2``: one item per chip (id = chip key), with the label extension
  (classes of the reference labels, Dynamic World land cover, CORINE land use and crisis
  labels; an overview of the chip's labels), the projection extension (the chip's CRS,
  bounds, 120 x 120 shape), the image asset (its HDF5 shard and key), with
  ``output.stac_chip_assets: cog`` a per-chip COG asset readable by STAC raster tools
  (``pipeline.corpus.stac_chip_assets``), and a ``source`` link to the scene it was cut from;
- ``clm-sources``: one item per source scene (same id as upstream), with its band assets.

The catalog, the collections and up to ``VALIDATE_PER_COLLECTION`` items of each (evenly
spaced; every item comes from the same code) are validated at write time, in parallel on the
executor, against the STAC core schemas pystac ships; extension schemas only when a local
copy is known (``pipeline.corpus.stac_validate``). What was validated is recorded in
``stac/validation.json``. ``validate_catalog(root)`` checks all.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import shutil
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pystac

from pipeline.corpus.lock import source_location
from pipeline.corpus.stac_chip_assets import (
    chip_asset_kind,
    write_chip_cogs,
)
from pipeline.corpus.stac_chip_item import (
    Names,
)
from pipeline.corpus.stac_items import (
    chip_extent,
    chip_rows,
    item_path,
    save_chip_collection,
    write_chip_items,
)
from pipeline.corpus.stac_validate import VALIDATE_PER_COLLECTION, validate_catalog
from pipeline.errors import CorpusError
from pipeline.sources.base import Scene
from pipeline.sources.select import read_scenes

STAC_DIR = "stac"
CHIP_COLLECTIONS = {"s1": "clm-s1", "s2": "clm-s2"}
SOURCES_COLLECTION = "clm-sources"
SENSOR_TEXT = {
    "s1": "Sentinel-1 GRD chips (VV, VH backscatter in dB), 120 x 120 px at 10 m",
    "s2": "Sentinel-2 L2A chips (12 bands, reflectance x 10000), 120 x 120 px at 10 m",
}


def write_stac(
    corpus: Path, chip_assets: str | None = None, pool: cf.Executor | None = None
) -> Path:
    """Write and validate ``corpus/stac/`` (chip items and validation as tasks on ``pool``,
    default here); returns the path of ``catalog.json``. ``chip_assets`` (``none`` | ``cog``)
    overrides the recipe's ``output.stac_chip_assets``."""
    meta, scenes, manifest = _read_inputs(corpus)
    cogs = chip_asset_kind(manifest, chip_assets) == "cog"
    staging = corpus / ".stac-staging"
    if staging.exists():
        shutil.rmtree(staging)
    write_catalog(staging, meta, scenes, manifest, cogs, pool)
    if cogs:
        dirs = {
            key: item_path(staging, CHIP_COLLECTIONS[sensor], key).parent
            for key, sensor in zip(meta["key"], meta["sensor"], strict=True)
        }
        write_chip_cogs(corpus, meta, dirs)
    validate_catalog(staging, VALIDATE_PER_COLLECTION, pool, record=True)
    final = corpus / STAC_DIR
    _swap_directory(staging, final)
    return final / "catalog.json"


def write_catalog(
    root: Path,
    meta: gpd.GeoDataFrame,
    scenes: Sequence[Scene],
    manifest: Mapping[str, Any],
    cogs: bool,
    pool: cf.Executor | None = None,
) -> None:
    """The catalog, collections and source items here; the chip items as tasks on ``pool``
    (``pipeline.corpus.stac_items``): the same files as pystac's ``catalog.save`` of the
    whole catalog (tested against ``tests/corpus/stac_reference.py``)."""
    catalog = _catalog(manifest)
    sources = [_source_item(s, manifest["config"]) for s in scenes]
    sources_collection = _collection(SOURCES_COLLECTION, "Source scenes", sources)
    catalog.add_child(sources_collection)
    chips = {}
    for sensor, collection_id in CHIP_COLLECTIONS.items():
        rows = chip_rows(meta[meta["sensor"] == sensor])
        if rows:
            text = SENSOR_TEXT[sensor]
            collection = pystac.Collection(
                collection_id, text, chip_extent(rows), title=text, license="other"
            )
            catalog.add_child(collection)
            chips[collection_id] = (collection, rows)
    catalog.normalize_hrefs(root.as_posix())
    catalog.catalog_type = pystac.CatalogType.SELF_CONTAINED
    catalog.save_object(include_self_link=False)
    sources_collection.save(pystac.CatalogType.SELF_CONTAINED)
    batches = []
    for collection, rows in chips.values():
        save_chip_collection(collection, rows)
        names = Names(
            root, str(catalog.title), collection.id, str(collection.title), SOURCES_COLLECTION
        )
        batches.append((names, rows))
    write_chip_items(pool, batches, cogs)


def _read_inputs(corpus: Path) -> tuple[gpd.GeoDataFrame, list[Scene], dict[str, Any]]:
    needed = [corpus / n for n in ("metadata.parquet", "sources.parquet", "manifest.json")]
    missing = [p.name for p in needed if not p.is_file()]
    if missing:
        raise CorpusError(
            f"{corpus} lacks {', '.join(missing)}; build the corpus first (`clm build`)"
        )
    meta = gpd.read_parquet(needed[0]).sort_values("key")
    return meta, read_scenes(needed[1]), json.loads(needed[2].read_text())


def _catalog(manifest: Mapping[str, Any]) -> pystac.Catalog:
    return pystac.Catalog(
        f"crisislandmark-{manifest['name']}",
        f"CrisisLandMark-style corpus {manifest['name']!r} (config {manifest['config_digest']}): "
        "Sentinel-1/2 chips with structured land-cover, land-use and crisis annotations.",
        title=f"CrisisLandMark corpus {manifest['name']}",
    )


def _collection(collection_id: str, text: str, items: Iterable[pystac.Item]) -> pystac.Collection:
    members = sorted(items, key=lambda i: (str(i.datetime), i.id))
    boxes = [i.bbox for i in members if i.bbox]
    bbox = [min(b[0] for b in boxes), min(b[1] for b in boxes)]
    bbox += [max(b[2] for b in boxes), max(b[3] for b in boxes)]
    times = sorted(i.datetime for i in members if isinstance(i.datetime, datetime))
    extent = pystac.Extent(
        pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[times[0], times[-1]]])
    )
    collection = pystac.Collection(collection_id, text, extent, title=text, license="other")
    for item in members:
        collection.add_item(item)
    return collection


def _source_item(scene: Scene, recipe: Mapping[str, Any]) -> pystac.Item:
    item = pystac.Item(
        scene.item_id,
        geometry=dict(scene.geometry),
        bbox=list(scene.bbox),
        datetime=scene.datetime,
        properties={
            "platform": scene.platform,
            "clm:source_collection": scene.collection,
            "clm:processing_baseline": scene.processing_baseline,
            "clm:orbit_state": scene.orbit_state,
            "clm:epsg": scene.epsg,
        },
    )
    for band, asset in sorted(scene.assets.items()):
        item.add_asset(
            band,
            pystac.Asset(
                source_location(asset.href, recipe),
                media_type=pystac.MediaType.COG,
                roles=["data"],
                extra_fields={"clm:source_href": asset.href},
            ),
        )
    return item


def _swap_directory(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging`` with renames: never a half-written tree under ``final``."""
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    staging.rename(final)
    if old.exists():
        shutil.rmtree(old)
