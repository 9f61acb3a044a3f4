"""Dynamic World V1 label source: the 10 m ``label`` band (values 0..8)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.chips.grid import ChipGeometry
from pipeline.labels.base import ClassFractions
from pipeline.labels.dynamic_world_composite import mean_probabilities
from pipeline.labels.raster_fractions import fractions_from_raster
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
        fractions, nodata_fraction = fractions_from_raster(
            self.href,
            chip,
            nodata_values=self.nodata,
            value_map={cls.value: cls.value for cls in dynamic_world_classes()},
            band=self.band,
            subpixel_m=self.subpixel_m,
        )
        probs = mean_probabilities(self.href, chip) if self.probabilities else None
        return ClassFractions(self.name, fractions, nodata_fraction, probs)
