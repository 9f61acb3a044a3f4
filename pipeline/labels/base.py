"""The contract every label source fulfils: (href, chip geometries) -> class fractions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pipeline.chips.grid import ChipGeometry
from pipeline.labels import warnings as label_warnings


@dataclass(frozen=True)
class ClassFractions:
    """Area fractions of one label product's classes over one chip.

    ``fractions`` maps a class value of the source taxonomy (CLC level-3 code such as
    ``211`` for CORINE, 0-8 for Dynamic World) to the fraction of the chip area it
    covers; classes absent from the chip are omitted. ``fractions`` plus
    ``nodata_fraction`` sum to 1.
    """

    source: str
    fractions: Mapping[int, float]
    nodata_fraction: float = 0.0
    probabilities: Mapping[int, float] | None = None  # mean class probabilities, when known
    warnings: tuple[tuple[str, str], ...] = ()  # counted warnings (kind, detail) it gave


class LabelSource(Protocol):
    """A land-cover / land-use product read over chip footprints."""

    @property
    def name(self) -> str: ...

    def class_fractions(self, chip: ChipGeometry) -> ClassFractions: ...

    def block_fractions(self, chips: Sequence[ChipGeometry]) -> list[ClassFractions]:
        """``class_fractions`` of many chips (in order), computed a block of grid cells at a
        time; warnings are returned in ``ClassFractions.warnings``, not reported."""
        ...


def report_warnings(fractions: ClassFractions) -> ClassFractions:
    """Count the warnings of one result (``pipeline.labels.warnings``) and return it."""
    for kind, detail in fractions.warnings:
        label_warnings.warn(kind, detail)
    return fractions


@dataclass(frozen=True)
class CrisisEvent:
    """One crisis event with its affected area (EPSG:4326 geometry, shapely)."""

    event_id: str  # e.g. "EMSR332_01VERONA" or "EMSR9001_AOI01"
    source: str  # "copernicus-ems", "gdacs", "user"
    hazard: str  # "flood" | "wildfire" | "earthquake"
    event_date: datetime  # timezone-aware UTC
    geometry: Any  # shapely (Multi)Polygon in EPSG:4326
    name: str = ""
    properties: Mapping[str, Any] = field(default_factory=dict)
