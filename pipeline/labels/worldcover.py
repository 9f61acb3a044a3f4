"""ESA WorldCover v200 (10 m, 11 classes, global) as an alternative land-cover source."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from pipeline.chips.grid import ChipGeometry
from pipeline.labels.base import ClassFractions, report_warnings
from pipeline.labels.raster_fractions import as_class_fractions, block_fractions
from pipeline.labels.taxonomy import taxonomy_classes


@lru_cache(maxsize=1)
def worldcover_values() -> tuple[int, ...]:
    return tuple(row["value"] for row in taxonomy_classes("esa_worldcover"))


@dataclass(frozen=True)
class WorldCoverRaster:
    """An ESA WorldCover map at ``href`` (values 10..100; 0 is nodata)."""

    href: str
    nodata: tuple[int, ...] = (0,)
    subpixel_m: float = 2.0
    name: str = field(default="worldcover", init=False)

    def class_fractions(self, chip: ChipGeometry) -> ClassFractions:
        return report_warnings(self.block_fractions([chip])[0])

    def block_fractions(self, chips: Sequence[ChipGeometry]) -> list[ClassFractions]:
        found = block_fractions(
            self.href,
            chips,
            nodata_values=self.nodata,
            value_map={v: v for v in worldcover_values()},
            subpixel_m=self.subpixel_m,
        )
        return [as_class_fractions(self.name, self.href, f) for f in found]
