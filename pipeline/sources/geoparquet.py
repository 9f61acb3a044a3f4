"""The embedded source: scenes searched in a stac-geoparquet file of STAC items.

Asset hrefs are kept as the file has them (absolute URLs, or paths relative to the
archive root); the chip stage resolves relative ones at read time
(``pipeline.sources.assets``), so the scene records do not depend on where or how
the archive is served.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely.geometry
import stac_geoparquet.arrow

from pipeline.errors import SourceError
from pipeline.sources.base import Scene, SearchQuery
from pipeline.sources.profiles import scene_from_item


@dataclass(frozen=True)
class GeoParquetSource:
    items: Path
    name: str = "geoparquet"

    def search(self, query: SearchQuery) -> Iterator[Scene]:
        """Scenes matching ``query``, sorted by (datetime, item id) for determinism."""
        matches = [item for item in self._items(query) if _matches(item, query)]
        matches.sort(key=lambda i: (_when(i), i["id"]))
        for item in matches:
            yield scene_from_item(item)

    def _items(self, query: SearchQuery) -> Iterator[dict[str, Any]]:
        if not self.items.is_file():
            raise SourceError(f"stac-geoparquet file {self.items} does not exist")
        try:
            table = pq.read_table(self.items)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError(
                f"{self.items} is not a readable stac-geoparquet file: {exc}"
            ) from exc
        wanted = pa.array(list(query.collections), pa.string())
        yield from stac_geoparquet.arrow.stac_table_to_items(
            table.filter(pc.is_in(table["collection"], value_set=wanted))
        )


def _when(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(item["properties"]["datetime"]).replace("Z", "+00:00"))


def _matches(item: dict[str, Any], query: SearchQuery) -> bool:
    if not query.start <= _when(item) <= query.end:
        return False
    cloud = item["properties"].get("eo:cloud_cover")
    if cloud is not None and cloud > query.max_cloud_cover:
        return False
    if query.bbox is None:
        return True
    footprint = shapely.geometry.shape(item["geometry"])
    return bool(footprint.intersects(shapely.geometry.box(*query.bbox)))
