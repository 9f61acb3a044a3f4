"""Where things live inside an archive directory (the simulated one, or a user's mirror).

Every path recorded in ``archive.json`` and every asset href in ``items.parquet``
is relative to the archive root, so an archive can be moved or served over HTTP
from any base URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

S2_COLLECTION = "sentinel-2-l2a"
S1_COLLECTION = "sentinel-1-grd"


@dataclass(frozen=True)
class ArchiveLayout:
    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "archive.json"

    @property
    def catalog(self) -> Path:
        return self.root / "stac" / "catalog.json"

    @property
    def items_parquet(self) -> Path:
        return self.root / "items.parquet"

    def scene_dir(self, collection: str, item_id: str) -> Path:
        return self.root / "scenes" / collection / item_id

    def corine(self, aoi: str) -> Path:
        return self.root / "labels" / "corine" / f"{aoi}_clc2018_100m.tif"

    def dynamic_world(self, aoi: str) -> Path:
        return self.root / "labels" / "dynamic_world" / f"{aoi}_dw_10m.tif"

    def truth(self, aoi: str) -> Path:
        return self.root / "labels" / "truth" / f"{aoi}_clc_10m.tif"

    @property
    def events_dir(self) -> Path:
        return self.root / "events"

    def relative(self, path: Path) -> str:
        return Path(path).relative_to(self.root).as_posix()
