"""Dynamic World V1 label source: the 10 m ``label`` band (values 0..8)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from pipeline.chips.grid import ChipGeometry
from pipeline.labels.base import ClassFractions, report_warnings
from pipeline.labels.dynamic_world_composite import mean_probabilities
from pipeline.labels.raster_fractions import as_class_fractions, block_fractions
from pipeline.labels.taxonomy import dynamic_world_classes


@dataclass(frozen=True)
class DynamicWorldRaster:
    """A Dynamic World label raster at ``href``; values outside 0..8 and ``nodata`` are nodata."""

    href: str
    band: int = 1
    nodata: tuple[int, ...] = (255,)
    subpixel_m: float = 2.0
    probabilities: bool = False  # the product also has the 9 class-probability bands (1..9)
    name: str = field(default="dynamic_world", init=False)

    def class_fractions(self, chip: ChipGeometry) -> ClassFractions:
        return report_warnings(self.block_fractions([chip])[0])

    def block_fractions(self, chips: Sequence[ChipGeometry]) -> list[ClassFractions]:
        found = block_fractions(
            self.href,
            chips,
            nodata_values=self.nodata,
            value_map={cls.value: cls.value for cls in dynamic_world_classes()},
            band=self.band,
            subpixel_m=self.subpixel_m,
        )
        out = [as_class_fractions(self.name, self.href, f) for f in found]
        if not self.probabilities:
            return out
        return [
            replace(f, probabilities=mean_probabilities(self.href, chip))
            for f, chip in zip(out, chips, strict=True)
        ]
