"""The chip grid: 120 x 120 pixels at 10 m (1.2 km squares), aligned to a fixed grid per CRS.

A chip is addressed by ``(epsg, col, row)`` with ``minx = origin_x + col * 1200`` and
``miny = origin_y + row * 1200`` in the projected CRS, so the same ground square gets
the same address in every scene and every run. The origin defaults to (0, 0); other
origins reproduce grids anchored elsewhere (BigEarthNet patches follow their
Sentinel-2 tile's origin, e.g. offset by 840 m in y).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

CHIP_PIXELS = 120
PIXEL_SIZE_M = 10.0
CHIP_SIZE_M = CHIP_PIXELS * PIXEL_SIZE_M


@dataclass(frozen=True, order=True)
class ChipGeometry:
    """One chip's ground square in a projected CRS (metres)."""

    epsg: int
    col: int
    row: int
    pixels: int = CHIP_PIXELS
    pixel_size: float = PIXEL_SIZE_M
    origin_x: float = 0.0
    origin_y: float = 0.0

    @property
    def size_m(self) -> float:
        return self.pixels * self.pixel_size

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in the chip CRS."""
        minx = self.origin_x + self.col * self.size_m
        miny = self.origin_y + self.row * self.size_m
        return (minx, miny, minx + self.size_m, miny + self.size_m)

    @property
    def cell_id(self) -> str:
        """Stable id of the ground square, independent of the scene."""
        if self.origin_x or self.origin_y:
            return f"{self.epsg}@{self.origin_x:g},{self.origin_y:g}_{self.col}_{self.row}"
        return f"{self.epsg}_{self.col}_{self.row}"

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        """Affine coefficients (a, b, c, d, e, f) of the chip's 10 m pixel grid."""
        minx, _, _, maxy = self.bounds
        return (self.pixel_size, 0.0, minx, 0.0, -self.pixel_size, maxy)


def cells_within(
    epsg: int, bounds: tuple[float, float, float, float], size_m: float = CHIP_SIZE_M
) -> Iterator[ChipGeometry]:
    """Grid cells lying entirely inside ``bounds`` (minx, miny, maxx, maxy), row-major from north."""
    minx, miny, maxx, maxy = bounds
    col0, col1 = math.ceil(minx / size_m), math.floor(maxx / size_m)
    row0, row1 = math.ceil(miny / size_m), math.floor(maxy / size_m)
    pixels = round(size_m / PIXEL_SIZE_M)
    for row in range(row1 - 1, row0 - 1, -1):
        for col in range(col0, col1):
            yield ChipGeometry(epsg, col, row, pixels=pixels)
