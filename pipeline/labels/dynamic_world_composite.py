"""Dynamic World over several scenes: a per-pixel mode composite of the label band over a
date window, and the mean per-class probabilities when the products carry them.

Dynamic World is produced per Sentinel-2 scene, so a chip is usually covered by several
DW images; the composite keeps, per 10 m pixel, the most frequent valid label among the
scenes dated inside ``[start, end]`` (ties go to the lower class value).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject

from pipeline.chips.grid import ChipGeometry
from pipeline.errors import ConfigError
from pipeline.labels.base import ClassFractions
from pipeline.labels.raster_fractions import open_dataset

DW_CLASSES = 9
DW_NODATA = 255
# band order of Dynamic World exports with probabilities: the 9 class bands, then label
PROBABILITY_BANDS = tuple(range(1, 10))


@dataclass(frozen=True)
class DatedProduct:
    href: str
    acquired: datetime


@dataclass(frozen=True)
class DynamicWorldComposite:
    """Mode composite of the DW label band of ``products`` dated within ``[start, end]``."""

    products: Sequence[DatedProduct]
    start: datetime
    end: datetime
    label_band: int = 1
    name: str = field(default="dynamic_world", init=False)

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ConfigError(
                f"Dynamic World composite window {self.start}..{self.end} is reversed"
            )

    def block_fractions(self, chips: Sequence[ChipGeometry]) -> list[ClassFractions]:
        """Per chip: the composite is a per-pixel mode over the scenes (not vectorised)."""
        return [self.class_fractions(chip) for chip in chips]

    def class_fractions(self, chip: ChipGeometry) -> ClassFractions:
        stack = [
            warp_band(p.href, chip, self.label_band)
            for p in self.products
            if self.start <= p.acquired <= self.end
        ]
        if not stack:
            return ClassFractions(self.name, {}, 1.0)
        labels = mode_composite(np.stack(stack))
        counts = np.bincount(labels[labels < DW_CLASSES].ravel(), minlength=DW_CLASSES)
        fractions = {v: float(n) / labels.size for v, n in enumerate(counts) if n}
        return ClassFractions(self.name, fractions, float((labels >= DW_CLASSES).mean()))


def warp_band(href: str, chip: ChipGeometry, band: int, nodata: float = DW_NODATA) -> np.ndarray:
    """One band of ``href`` on the chip's 10 m grid (nearest), nodata outside the product."""
    ds = open_dataset(href)
    out = np.full((chip.pixels, chip.pixels), nodata, dtype=np.float32)
    reproject(
        source=ds.read(band, out_dtype=np.float32),
        destination=out,
        src_transform=ds.transform,
        src_crs=ds.crs,
        src_nodata=ds.nodata if ds.nodata is not None else nodata,
        dst_transform=Affine(*chip.transform),
        dst_crs=f"EPSG:{chip.epsg}",
        dst_nodata=nodata,
        resampling=Resampling.nearest,
    )
    return out


def mode_composite(stack: np.ndarray) -> np.ndarray:
    """Per-pixel most frequent valid class of a (scenes, H, W) label stack; 255 if none."""
    valid = stack < DW_CLASSES
    counts = np.stack([((stack == c) & valid).sum(axis=0) for c in range(DW_CLASSES)])
    mode = counts.argmax(axis=0).astype(np.uint8)
    mode[counts.max(axis=0) == 0] = DW_NODATA
    return mode


def mean_probabilities(href: str, chip: ChipGeometry) -> dict[int, float]:
    """Mean DW class probability over the chip from a product with the 9 probability bands."""
    ds = open_dataset(href)
    if ds.count < len(PROBABILITY_BANDS):
        raise ConfigError(
            f"Dynamic World product {href} has {ds.count} band(s); probabilities need the 9 class "
            "bands (water..snow_and_ice) before the label band"
        )
    means = {}
    for value, band in enumerate(PROBABILITY_BANDS):
        plane = warp_band(href, chip, band, nodata=np.nan)
        means[value] = float(np.nanmean(plane)) if np.isfinite(plane).any() else 0.0
    return means
