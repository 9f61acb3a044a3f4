"""Class systems: the reference label space, the CORINE nomenclature and Dynamic World classes.

The tables live in ``schemas/taxonomy/`` (next to the package, or ``$CLM_SCHEMAS_DIR``).
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pipeline.errors import ConfigError, SourceError

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
SCHEMAS_ENV = "CLM_SCHEMAS_DIR"


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


def schemas_dir() -> Path:
    """The ``schemas/`` directory: ``$CLM_SCHEMAS_DIR`` or the one next to the package."""
    override = os.environ.get(SCHEMAS_ENV)
    path = Path(override) if override else Path(__file__).resolve().parents[2] / "schemas"
    if not path.is_dir():
        raise ConfigError(
            f"schemas directory {path} does not exist; set {SCHEMAS_ENV} to the project's "
            "schemas/ folder or reinstall the project from a source checkout"
        )
    return path


def _read_table(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise ConfigError(f"taxonomy table {path} is missing; restore it from the repository")
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@lru_cache(maxsize=4)
def _load_clc(path: Path) -> tuple[ClcClass, ...]:
    return tuple(
        ClcClass(
            grid_code=int(row["grid_code"]),
            code=int(row["clc_code"]),
            level1_code=int(row["level1_code"]),
            level1_name=row["level1"],
            level2_code=int(row["level2_code"]),
            level2_name=row["level2"],
            name=row["level3"],
            hex=row["hex"],
            ben43=row["bigearthnet43_name"],
            ben19=row["bigearthnet19"],
        )
        for row in _read_table(path)
    )


@lru_cache(maxsize=4)
def _load_dw(path: Path) -> tuple[DwClass, ...]:
    return tuple(DwClass(int(row["value"]), row["name"], row["hex"]) for row in _read_table(path))


def clc_classes() -> tuple[ClcClass, ...]:
    """The 44 CORINE level-3 classes in nomenclature order."""
    return _load_clc(schemas_dir() / "taxonomy" / "clc_nomenclature.csv")


def dynamic_world_classes() -> tuple[DwClass, ...]:
    """The 9 Dynamic World classes in label-band order."""
    return _load_dw(schemas_dir() / "taxonomy" / "dynamic_world.csv")


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
            "from schemas/taxonomy/clc_nomenclature.csv"
        )
    return cls
