"""The embedded source: scenes searched in a stac-geoparquet file of STAC items.

Asset hrefs in the file may be absolute URLs or relative to the archive root; relative
ones are resolved against ``asset_base`` (a URL, e.g. the loopback server of
``pipeline.archive.serve``, or a local directory).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    asset_base: str
    name: str = "geoparquet"

    def search(self, query: SearchQuery) -> Iterator[Scene]:
        """Scenes matching ``query``, sorted by (datetime, item id) for determinism."""
        matches = [item for item in self._items(query) if _matches(item, query)]
        matches.sort(key=lambda i: (i["properties"]["datetime"], i["id"]))
        for item in matches:
            yield scene_from_item(item, resolve_href=self._resolve)

    def _items(self, query: SearchQuery) -> Iterator[dict[str, Any]]:
        if not self.items.is_file():
            raise SourceError(f"stac-geoparquet file {self.items} does not exist")
        table = pq.read_table(self.items)
        mask = pc.is_in(table["collection"], value_set=_array(query.collections))
        table = table.filter(mask)
        yield from stac_geoparquet.arrow.stac_table_to_items(table)

    def _resolve(self, href: str) -> str:
        if "://" in href or href.startswith("/"):
            return href
        if "://" in self.asset_base:
            return self.asset_base.rstrip("/") + "/" + href
        return str(Path(self.asset_base) / href)


def _array(values: tuple[str, ...]) -> Any:
    import pyarrow as pa

    return pa.array(list(values), pa.string())


def _matches(item: dict[str, Any], query: SearchQuery) -> bool:
    scene_time = item["properties"]["datetime"]
    from datetime import datetime

    when = datetime.fromisoformat(str(scene_time).replace("Z", "+00:00"))
    if not query.start <= when <= query.end:
        return False
    cloud = item["properties"].get("eo:cloud_cover")
    if cloud is not None and cloud > query.max_cloud_cover:
        return False
    if query.bbox is None:
        return True
    return bool(
        shapely.geometry.shape(item["geometry"]).intersects(shapely.geometry.box(*query.bbox))
    )
