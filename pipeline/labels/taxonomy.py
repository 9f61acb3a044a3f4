"""Class systems: the reference label space, the CORINE nomenclature and Dynamic World classes.

The tables live in ``schemas/taxonomy/`` (next to the package, or ``$CLM_SCHEMAS_DIR``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, SourceError
from pipeline.schemas import schemas_dir

REFERENCE_LABELS: tuple[str, ...] = (
    "water",
    "trees",
    "grass",
    "flooded vegetation",
    "crops",
    "shrub and scrub",
    "built",
    "bare",
    "snow and ice",
    "flooded area",
    "earthquake damage",
    "burned area",
)
LAND_COVER_LABELS: tuple[str, ...] = REFERENCE_LABELS[:9]
CRISIS_LABELS: dict[str, str] = {
    "flood": "flooded area",
    "earthquake": "earthquake damage",
    "wildfire": "burned area",
}


@dataclass(frozen=True)
class ClcClass:
    """One CORINE Land Cover level-3 class."""

    grid_code: int  # 1..44, the value in the EEA 100 m raster
    code: int  # CLC level-3 code, 111..523
    level1_code: int
    level1_name: str
    level2_code: int
    level2_name: str
    name: str  # EEA level-3 name
    hex: str  # EEA legend colour
    ben43: str = ""  # BigEarthNet-43 name ("" if BigEarthNet does not use the class)
    ben19: str = ""  # BigEarthNet-19 name ("" if dropped from the 19-class nomenclature)


@dataclass(frozen=True)
class DwClass:
    """One Dynamic World V1 class (label band value)."""

    value: int
    name: str  # e.g. "flooded_vegetation"
    hex: str

    @property
    def label(self) -> str:
        """The reference label spelling, e.g. "flooded vegetation"."""
        return self.name.replace("_", " ")


def taxonomy_classes(name: str) -> list[dict[str, Any]]:
    """The ``classes`` of ``schemas/taxonomy/<name>.json``."""
    return list(_read_taxonomy(schemas_dir() / "taxonomy" / f"{name}.json"))


@lru_cache(maxsize=8)
def _read_taxonomy(path: Path) -> tuple[dict[str, Any], ...]:
    if not path.is_file():
        raise ConfigError(f"taxonomy file {path} is missing; restore it from the repository")
    return tuple(json.loads(path.read_text(encoding="utf-8"))["classes"])


@lru_cache(maxsize=1)
def _load_clc() -> tuple[ClcClass, ...]:
    return tuple(
        ClcClass(
            grid_code=row["grid_code"],
            code=row["code"],
            level1_code=row["level1"]["code"],
            level1_name=row["level1"]["name"],
            level2_code=row["level2"]["code"],
            level2_name=row["level2"]["name"],
            name=row["name"],
            hex=row["colour"],
            ben43=row["bigearthnet43"] or "",
            ben19=row["bigearthnet19"] or "",
        )
        for row in taxonomy_classes("corine_land_cover")
    )


@lru_cache(maxsize=1)
def _load_dw() -> tuple[DwClass, ...]:
    return tuple(
        DwClass(row["value"], row["name"], row["colour"])
        for row in taxonomy_classes("dynamic_world")
    )


def clc_classes() -> tuple[ClcClass, ...]:
    """The 44 CORINE level-3 classes in nomenclature order."""
    return _load_clc()


def dynamic_world_classes() -> tuple[DwClass, ...]:
    """The 9 Dynamic World classes in label-band order."""
    return _load_dw()


def clc_by_code(code: int) -> ClcClass:
    """The class with CLC level-3 code ``code`` (e.g. 211)."""
    for cls in clc_classes():
        if cls.code == int(code):
            return cls
    raise SourceError(f"unknown CORINE level-3 code {code!r}: expected one of 111..523")


def clc_by_grid_code(grid_code: int) -> ClcClass:
    """The class with EEA raster grid code ``grid_code`` (1..44)."""
    for cls in clc_classes():
        if cls.grid_code == int(grid_code):
            return cls
    raise SourceError(
        f"unknown CORINE grid code {grid_code!r}: classes are 1..44 (48-50 and 255 are nodata)"
    )


def _name_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", name.lower()).strip()


@lru_cache(maxsize=4)
def _clc_name_index(classes: tuple[ClcClass, ...]) -> dict[str, ClcClass]:
    index: dict[str, ClcClass] = {}
    for cls in classes:
        for name in (cls.name, cls.ben43):
            if name:
                index[_name_key(name)] = cls
    return index


def clc_by_name(name: str) -> ClcClass:
    """The class named ``name``: EEA level-3 or BigEarthNet-43 spelling, case-insensitive."""
    cls = _clc_name_index(clc_classes()).get(_name_key(name))
    if cls is None:
        raise SourceError(
            f"unknown CORINE class name {name!r}: use an EEA level-3 or BigEarthNet-43 name "
            "from schemas/taxonomy/corine_land_cover.json"
        )
    return cls
