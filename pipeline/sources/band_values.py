"""The band contract: what a band asset's pixel values are, and where that is declared.

Every ``BandAsset`` carries ``BandValues`` (unit, scale, offset, nodata). They are filled, the
first declaration of each field winning, from:

1. the run config, ``source.bands`` (applied to the selected scenes, ``apply_overrides``);
2. a mapping file, ``collections.<name>.band_values`` (``profiles.profile_from_mapping``);
3. the item's STAC ``raster:bands`` (or STAC 1.1 ``bands``): ``unit``, ``scale``, ``offset``,
   ``nodata`` (``from_stac_asset``);
4. a built-in profile's defaults, then the sensor's (``SENSOR_DEFAULTS``).

Tables of declarations are keyed by sensor (``s1``, ``s2``: every band of it) or by band
(``VV``, ``B04``...); a band's own entry wins over its sensor's.

S2 offsets from ``raster:bands`` are not used: real catalogues declare ``offset: -0.1`` on
items whose pixels already had the BOA offset removed (Earth Search ``sentinel-2-l2a``), so
the per-item harmonisation rule (``processing_baseline`` and ``boa_offset_applied``) decides,
unless a mapping file or the run config declares the offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from pipeline.errors import ConfigError
from pipeline.sources.base import S1_BANDS, S2_BANDS, BandValues, Scene

S1_UNITS = ("linear_power", "linear_amplitude", "db")
S2_UNITS = ("dn",)
SENSOR_UNITS = {"s1": S1_UNITS, "s2": S2_UNITS}
SENSOR_DEFAULTS = {"s1": BandValues(unit="linear_power"), "s2": BandValues(unit="dn")}
S1_SOURCE_BANDS = (*S1_BANDS, "HH", "HV")
_UNIT_SPELLINGS = {
    "db": "db",
    "decibel": "db",
    "decibels": "db",
    "linear power": "linear_power",
    "linear": "linear_power",
    "power": "linear_power",
    "linear sigma0": "linear_power",
    "linear gamma0": "linear_power",
    "linear beta0": "linear_power",
    "linear amplitude": "linear_amplitude",
    "amplitude": "linear_amplitude",
    "dn": "dn",
}
FIELDS = ("unit", "scale", "offset", "nodata")


def normalize_unit(text: Any) -> str | None:
    """The canonical unit of a spelling (``dB``, ``linear sigma0``...); unknown ones as given."""
    if text is None:
        return None
    key = " ".join(str(text).strip().lower().replace("_", " ").split())
    return _UNIT_SPELLINGS.get(key, str(text))


def sensor_of_key(key: str) -> str | None:
    """``s1``/``s2`` for a sensor key or a band name of that sensor; None otherwise."""
    if key in SENSOR_UNITS:
        return key
    if key in S1_SOURCE_BANDS:
        return "s1"
    return "s2" if key in S2_BANDS else None


def parse_table(raw: Mapping[str, Any], where: str) -> dict[str, BandValues]:
    """``{s1|s2|BAND: {unit, scale, offset, nodata}}`` -> ``BandValues`` per key, checked."""
    table = {}
    for key, entry in raw.items():
        sensor = sensor_of_key(str(key))
        if sensor is None:
            raise ConfigError(
                f"{where}: {key!r} is neither a sensor (s1, s2) nor a band "
                f"({', '.join((*S1_SOURCE_BANDS, *S2_BANDS))})"
            )
        table[str(key)] = parse_values(entry, sensor, f"{where}.{key}")
    return table


def parse_values(raw: Mapping[str, Any], sensor: str, where: str) -> BandValues:
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; use {list(FIELDS)}")
    values = BandValues(
        unit=normalize_unit(raw.get("unit")),
        scale=_number(raw, "scale"),
        offset=_number(raw, "offset"),
        nodata=_number(raw, "nodata"),
    )
    check_unit(values.unit, sensor, where)
    if values.scale is not None and values.scale <= 0:
        raise ConfigError(f"{where}.scale {values.scale:g} must be positive")
    return values


def check_unit(unit: str | None, sensor: str, where: str) -> None:
    if unit is not None and unit not in SENSOR_UNITS[sensor]:
        raise ConfigError(
            f"{where}.unit {unit!r} is not a {sensor} unit; use one of {list(SENSOR_UNITS[sensor])}"
        )


def _number(raw: Mapping[str, Any], name: str) -> float | None:
    value = raw.get(name)
    return None if value is None else float(value)


def lookup(table: Mapping[str, BandValues], sensor: str, band: str) -> BandValues:
    """The declaration for ``band``: its own entry over its sensor's."""
    return table.get(band, BandValues()).over(table.get(sensor, BandValues()))


def from_stac_asset(asset: Mapping[str, Any], sensor: str, band: str) -> BandValues:
    """``unit``/``scale``/``offset``/``nodata`` of an asset's first ``raster:bands`` entry
    (STAC 1.1: ``bands`` with ``raster:scale``/``raster:offset``, or the asset itself)."""
    if band == "SCL":
        return BandValues()
    entries = asset.get("raster:bands") or asset.get("bands") or [{}]
    first = entries[0] if isinstance(entries[0], Mapping) else {}

    def pick(*names: str) -> Any:
        for where in (first, asset):
            for name in names:
                if where.get(name) is not None:
                    return where[name]
        return None

    nodata = pick("nodata")
    return BandValues(
        unit=normalize_unit(pick("unit")) if sensor == "s1" else None,
        scale=_float(pick("scale", "raster:scale")),
        offset=_float(pick("offset", "raster:offset")) if sensor == "s1" else None,
        nodata=_float(nodata),
    )


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def apply_overrides(scenes: Iterable[Scene], table: Mapping[str, BandValues]) -> list[Scene]:
    """Scenes whose band contracts carry the run config's declarations (``source.bands``)."""
    if not table:
        return list(scenes)
    out = []
    for scene in scenes:
        assets = {
            band: replace(a, values=lookup(table, scene.sensor, band).over(a.values))
            for band, a in scene.assets.items()
        }
        out.append(replace(scene, assets=assets))
    return out


def resolved(scene: Scene, band: str) -> BandValues:
    """What the reader uses: the asset's declarations over the sensor's defaults."""
    return scene.assets[band].values.over(SENSOR_DEFAULTS[scene.sensor])


def fix_hint(sensor: str, band: str, unit: str) -> str:
    return (
        f"set `source.bands.{band}.unit: {unit}` (or `source.bands.{sensor}.unit: {unit}` for "
        f"every {sensor} band) in the run config, or `band_values` in the provider mapping file"
    )
