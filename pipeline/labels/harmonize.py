"""Harmonization of source class fractions into the CrisisLandMark reference label space.

Every output here is normalised over the valid (non-nodata) part of the chip, so
the values of one result sum to 1 (or the result is empty when nothing is valid).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from pipeline.errors import ConfigError, SchemaError, SourceError
from pipeline.labels.base import ClassFractions
from pipeline.labels.taxonomy import REFERENCE_LABELS, clc_by_code, clc_by_name
from pipeline.schemas import schemas_dir, validate

_VERSIONED = re.compile(r"^(?P<stem>[a-z0-9_]+)\.v(?P<major>[0-9]+)$")


@dataclass(frozen=True)
class LabelMapping:
    """A validated mapping file: source class value -> reference label."""

    name: str  # file stem, e.g. "clc_to_reference.v1"
    version: str
    source_taxonomy: str
    target: str
    description: str
    table: Mapping[int, str]

    def label_of(self, value: int) -> str:
        try:
            return self.table[int(value)]
        except KeyError:
            raise SourceError(
                f"class value {value!r} is not in mapping {self.name}: add it to "
                f"schemas/mappings/{self.name}.json or treat it as nodata in the label source"
            ) from None


def _mapping_path(name: str) -> Path:
    folder = schemas_dir() / "mappings"
    if not _VERSIONED.match(name):
        versions = sorted(
            folder.glob(f"{name}.v*.json"), key=lambda p: int(p.stem.rsplit(".v", 1)[1])
        )
        if not versions:
            raise ConfigError(f"no mapping file {name}.v*.json in {folder}; check the name")
        return versions[-1]
    path = folder / f"{name}.json"
    if not path.is_file():
        raise ConfigError(f"mapping file {path} does not exist; check the name and version")
    return path


def _validate(doc: dict, path: Path) -> None:
    validate(doc, "mappings/mapping.schema.json", f"mapping file {path}")
    major = _VERSIONED.match(path.stem)
    if major and doc["version"].split(".")[0] != major["major"]:
        raise SchemaError(
            f"mapping file {path} has version {doc['version']} but its name says "
            f"v{major['major']}; rename the file or fix its version"
        )


@lru_cache(maxsize=16)
def _load_mapping_file(path: Path) -> LabelMapping:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SchemaError(f"mapping file {path} is not valid JSON: {exc}; fix the file") from exc
    _validate(doc, path)
    table = {int(key): label for key, label in doc["mapping"].items()}
    return LabelMapping(
        name=path.stem,
        version=doc["version"],
        source_taxonomy=doc["source_taxonomy"],
        target=doc["target"],
        description=doc["description"],
        table=MappingProxyType(table),
    )


def load_mapping(name: str) -> LabelMapping:
    """Load ``schemas/mappings/<name>.json``, validated against ``mapping.schema.json``.

    ``name`` is a versioned stem (``"clc_to_reference.v1"``, recommended for recipes)
    or an unversioned one (``"clc_to_reference"``), which picks the highest version.
    """
    return _load_mapping_file(_mapping_path(name))


def _valid(fractions: ClassFractions | Mapping[int, float]) -> dict[int, float]:
    """Class fractions rescaled to sum to 1 over the valid area ({} when nothing is valid)."""
    values = fractions.fractions if isinstance(fractions, ClassFractions) else fractions
    total = sum(values.values())
    if total <= 0:
        return {}
    return {int(value): frac / total for value, frac in values.items() if frac > 0}


def _canonical(by_label: Mapping[str, float]) -> dict[str, float]:
    return {label: by_label[label] for label in REFERENCE_LABELS if label in by_label}


def to_reference(fractions: ClassFractions, mapping: LabelMapping) -> dict[str, float]:
    """Reference label -> fraction of the valid chip area, in canonical label order."""
    by_label: dict[str, float] = {}
    for value, frac in _valid(fractions).items():
        label = mapping.label_of(value)
        by_label[label] = by_label.get(label, 0.0) + frac
    return _canonical(by_label)


def labels_above(fractions_by_label: Mapping[str, float], min_fraction: float) -> tuple[str, ...]:
    """Labels covering at least ``min_fraction`` (and more than 0), in canonical order."""
    unknown = set(fractions_by_label) - set(REFERENCE_LABELS)
    if unknown:
        raise SourceError(
            f"labels {sorted(unknown)} are not reference labels; map them with to_reference first"
        )
    if not 0 <= min_fraction <= 1:
        raise ConfigError(f"min_fraction={min_fraction!r} must be between 0 and 1")
    return tuple(
        label
        for label in REFERENCE_LABELS
        if fractions_by_label.get(label, 0.0) > 0
        and fractions_by_label.get(label, 0.0) >= min_fraction
    )


def clc_names_to_reference(names: Iterable[str], mapping: LabelMapping) -> tuple[str, ...]:
    """Reference labels (canonical order) of CORINE class names, e.g. BigEarthNet ``labels``."""
    found = {mapping.label_of(clc_by_name(name).code) for name in names}
    return tuple(label for label in REFERENCE_LABELS if label in found)


def to_bigearthnet19(clc_fractions: ClassFractions | Mapping[int, float]) -> dict[str, float]:
    """BigEarthNet-19 class -> fraction of the valid area.

    Classes BigEarthNet-19 drops (roads, ports, airports, mines, dumps, construction,
    green urban, sport, bare rock, burnt areas, glaciers, intertidal flats) are omitted,
    without renormalising, so the values may sum to less than 1.
    """
    out: dict[str, float] = {}
    for code, frac in _valid(clc_fractions).items():
        name = clc_by_code(code).ben19
        if name:
            out[name] = out.get(name, 0.0) + frac
    return dict(sorted(out.items()))


def aggregate_levels(
    clc_fractions: ClassFractions | Mapping[int, float],
) -> dict[str, dict[int, float]]:
    """CORINE fractions per level: ``{"level1": {2: f}, "level2": {21: f}, "level3": {211: f}}``."""
    levels: dict[str, dict[int, float]] = {"level1": {}, "level2": {}, "level3": {}}
    for code, frac in _valid(clc_fractions).items():
        cls = clc_by_code(code)
        for level, key in (("level1", cls.level1_code), ("level2", cls.level2_code)):
            levels[level][key] = levels[level].get(key, 0.0) + frac
        levels["level3"][cls.code] = frac
    return {level: dict(sorted(values.items())) for level, values in levels.items()}
