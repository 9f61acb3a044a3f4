"""Writing the STAC view's chip items in parallel, without the whole catalog in memory.

``stac_view.build_catalog`` builds every item as a pystac object in one process (about
1.8 ms and a few KB of memory per chip). Here the main process writes only the catalog, the
collections (their extents and ``item`` links computed from ``metadata.parquet`` rows) and
the source scenes; the chip items are written by tasks on the executor, ``ITEMS_PER_TASK``
rows each, each item made by the same ``_chip_item`` and linked to stand-ins of its catalog,
collection and source scene at their final paths. The files are byte for byte those of
pystac's own ``catalog.save`` of the whole catalog (``tests/corpus/test_stac_view.py``).
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pystac

ITEMS_PER_TASK = 256
LINK_ORDER = {"source": 0, "root": 1, "collection": 2, "parent": 3}  # as pystac saves them
ItemMaker = Callable[[Mapping[str, Any], pystac.Item, bool], pystac.Item]


@dataclass(frozen=True)
class Names:
    """Ids and titles of the catalog and one chip collection (what item links carry)."""

    root: Path
    catalog_id: str
    catalog_title: str
    collection_id: str
    collection_title: str


def item_path(root: Path, collection_id: str, key: str) -> Path:
    return root / collection_id / key / f"{key}.json"


def source_path(root: Path, collection_id: str, item_id: str) -> Path:
    return root / collection_id / item_id / f"{item_id}.json"


def chip_rows(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of one collection as plain dicts, in the collection's item order."""
    records = rows.to_dict("records")
    return sorted(records, key=lambda r: (str(datetime.fromisoformat(r["datetime"])), r["key"]))


def add_item_links(collection: pystac.Collection, root: Path, rows: Sequence[Mapping]) -> None:
    """The ``item`` links of a chip collection, in item order, to the files tasks write;
    before its ``parent`` link, where pystac puts items added to a collection."""
    parents = [link for link in collection.links if link.rel == "parent"]
    collection.links = [link for link in collection.links if link.rel != "parent"]
    for row in rows:
        href = str(item_path(root, collection.id, row["key"]))
        collection.add_link(pystac.Link("item", href, media_type=pystac.MediaType.GEOJSON))
    collection.links += parents


def chip_extent(rows: Sequence[Mapping[str, Any]]) -> pystac.Extent:
    boxes = [[round(v, 7) for v in row["geometry"].bounds] for row in rows]
    bbox = [min(b[0] for b in boxes), min(b[1] for b in boxes)]
    bbox += [max(b[2] for b in boxes), max(b[3] for b in boxes)]
    times = sorted(datetime.fromisoformat(row["datetime"]) for row in rows)
    return pystac.Extent(
        pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[times[0], times[-1]]])
    )


def write_chip_items(
    pool: cf.Executor | None,
    names: Names,
    rows: Sequence[dict[str, Any]],
    sources_collection: str,
    make: ItemMaker,
    cogs: bool,
) -> int:
    """Write the items of one chip collection, ``ITEMS_PER_TASK`` per task on ``pool``."""
    chunks = [rows[i : i + ITEMS_PER_TASK] for i in range(0, len(rows), ITEMS_PER_TASK)]
    args = [(names, chunk, sources_collection, make, cogs) for chunk in chunks]
    if pool is None:
        return sum(write_items(*a) for a in args)
    return sum(f.result() for f in [pool.submit(write_items, *a) for a in args])


def write_items(
    names: Names,
    rows: Sequence[Mapping[str, Any]],
    sources_collection: str,
    make: ItemMaker,
    cogs: bool,
) -> int:
    """One task: the item JSON of each row, linked as the whole catalog would link it."""
    collection = _stand_ins(names)
    for row in rows:
        source = pystac.Item(row["item_id"], None, None, datetime(2000, 1, 1), {})
        source.set_self_href(str(source_path(names.root, sources_collection, row["item_id"])))
        item = make(row, source, cogs)
        collection.add_item(item)
        item.set_self_href(str(item_path(names.root, names.collection_id, row["key"])))
        item.links.sort(key=lambda link: LINK_ORDER.get(link.rel, len(LINK_ORDER)))
        item.save_object(include_self_link=False)
        collection.links = [link for link in collection.links if link.rel != "item"]
    return len(rows)


def _stand_ins(names: Names) -> pystac.Collection:
    """The catalog and collection an item links to (ids, titles and paths only)."""
    catalog = pystac.Catalog(
        names.catalog_id,
        "-",
        title=names.catalog_title,
        catalog_type=pystac.CatalogType.SELF_CONTAINED,
    )
    catalog.set_self_href(str(names.root / "catalog.json"))
    extent = pystac.Extent(
        pystac.SpatialExtent([[0.0, 0.0, 0.0, 0.0]]),
        pystac.TemporalExtent([[datetime(2000, 1, 1), None]]),
    )
    collection = pystac.Collection(
        names.collection_id, "-", extent, title=names.collection_title, license="other"
    )
    catalog.add_child(collection)
    collection.set_self_href(str(names.root / names.collection_id / "collection.json"))
    return collection
