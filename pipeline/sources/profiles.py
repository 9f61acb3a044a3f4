"""Provider profiles: map a provider's STAC item layout onto the normalized ``Scene``.

A profile names, per provider collection, the sensor and the asset key of every
normalized band, plus where the properties the corpus needs live. Built in:

- ``planetary-computer`` (also the embedded demo archive's layout): S2 assets ``B01``..``B12``,
  ``B8A``, ``SCL``; S1 GRD/RTC assets ``vv``/``vh``; hrefs signed at read time.
- ``earth-search`` (Element 84 v1): S2 common-name assets (``coastal``, ``blue``, ``nir08``,
  ``scl``...), ``earthsearch:boa_offset_applied``; S1 GRD in a requester-pays bucket.
- ``clm-archive``: the embedded demo archive (Planetary Computer layout, nothing to sign).
- ``earth-search-v0`` (Element 84 v0, ``sentinel-s2-l2a-cogs``, retired but still in many
  recipes): assets ``B01``..``B12``, ``B8A``, ``SCL``; ``sentinel:*`` properties; the baseline
  and tile from ``sentinel:product_id``; cloud filter through the ``query`` extension.
- ``cdse`` (Copernicus Data Space STAC, STAC 1.1): per-resolution assets ``B02_10m``,
  ``B05_20m``, ``B01_60m``, ``SCL_20m``; ``proj:code``; baseline from ``processing:version``;
  ``eopf:datatake_id``.

Where no property holds the S2 processing baseline or the MGRS tile, both are parsed from the
product name (``..._N0509_R065_T32TQR_...``): the item id or any property mapped under
``product_name``.

Any other STAC API: a YAML/JSON mapping file (``schemas/provider-profile.v1.schema.json``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import ConfigError, SchemaError, SourceError
from pipeline.schemas import validate
from pipeline.sources.band_values import from_stac_asset, lookup, parse_table
from pipeline.sources.base import S2_BANDS, BandAsset, BandValues, Scene

S1_POLARIZATIONS = ("VV", "VH", "HH", "HV")
SENSORS = ("s2", "s1")

# normalized field -> provider property names, the first one present wins
DEFAULT_PROPERTIES: Mapping[str, tuple[str, ...]] = {
    "platform": ("platform",),
    "cloud_cover": ("eo:cloud_cover",),
    "processing_baseline": ("s2:processing_baseline", "processing:version"),
    "orbit_state": ("sat:orbit_state",),
    "relative_orbit": ("sat:relative_orbit",),
    "polarizations": ("sar:polarizations",),
    "instrument_mode": ("sar:instrument_mode",),
    "datatake_id": ("s2:datatake_id", "s1:datatake_id", "eopf:datatake_id"),
    "tile": ("s2:mgrs_tile", "grid:code", "s2:tile_id"),
    "product_name": ("s2:product_uri", "sentinel:product_id", "eopf:product_name"),
    "processed": ("s2:generation_time", "s1:processing_datetime", "processing:datetime"),
    "boa_offset_applied": ("earthsearch:boa_offset_applied",),
    "requester_pays": ("storage:requester_pays",),
}
_BASELINE_IN_NAME = re.compile(r"_N(\d{2})(\d{2})_")
_TILE_IN_NAME = re.compile(r"_T(\d{2}[C-X][A-Z]{2})(?:_|\b)")


@dataclass(frozen=True)
class CollectionMapping:
    """One provider collection: its sensor, product and normalized band -> asset key, and what
    its band values are (``pipeline.sources.band_values``): ``values`` declared by a mapping
    file (over the items' ``raster:bands``), ``defaults`` of a built-in profile (under them)."""

    sensor: str  # "s2" | "s1"
    product: str  # "L2A" | "GRD" | "RTC"
    assets: Mapping[str, str]
    values: Mapping[str, BandValues] = field(default_factory=dict)
    defaults: Mapping[str, BandValues] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderProfile:
    """How one provider lays out its items; selected by ``source.profile`` in the run config."""

    name: str
    collections: Mapping[str, CollectionMapping]
    properties: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: DEFAULT_PROPERTIES)
    url: str | None = None  # default STAC API root
    signing: str | None = None  # "planetary-computer": sign blob hrefs at read time
    cloud_filter: str = "cql2-json"  # how max_cloud_cover reaches the API: cql2-json|query|none

    def mapping(self, collection: str, item_id: str = "?") -> CollectionMapping:
        if collection not in self.collections:
            raise SourceError(
                f"item {item_id!r} is in collection {collection!r}, which profile {self.name!r} "
                f"does not know; known: {sorted(self.collections)} (add it with a mapping file)"
            )
        return self.collections[collection]


def _s2(assets: Mapping[str, str]) -> CollectionMapping:
    return CollectionMapping("s2", "L2A", assets, defaults={"s2": BandValues(unit="dn")})


def _s1(product: str, assets: Mapping[str, str]) -> CollectionMapping:
    """GRD (calibrated, as the demo archive) and RTC backscatter: linear power by default."""
    return CollectionMapping("s1", product, assets, defaults={"s1": BandValues("linear_power")})


_PC_S2 = {**{b: b for b in S2_BANDS}, "SCL": "SCL"}
_PC_S1 = {"VV": "vv", "VH": "vh", "HH": "hh", "HV": "hv"}
_COMMON_NAMES_S2 = {
    "B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1",
    "B06": "rededge2", "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B09": "nir09",
    "B11": "swir16", "B12": "swir22", "SCL": "scl",
}  # fmt: skip
_CDSE_RES = {"B02": 10, "B03": 10, "B04": 10, "B08": 10, "B01": 60, "B09": 60, "SCL": 20}
_CDSE_S2 = {b: f"{b}_{_CDSE_RES.get(b, 20)}m" for b in (*S2_BANDS, "SCL")}

PLANETARY_COMPUTER = ProviderProfile(
    "planetary-computer",
    {
        "sentinel-2-l2a": _s2(_PC_S2),
        "sentinel-1-grd": _s1("GRD", _PC_S1),
        "sentinel-1-rtc": _s1("RTC", _PC_S1),
    },
    url="https://planetarycomputer.microsoft.com/api/stac/v1",
    signing="planetary-computer",
)
EARTH_SEARCH = ProviderProfile(
    "earth-search",
    {
        "sentinel-2-l2a": _s2(_COMMON_NAMES_S2),
        "sentinel-2-c1-l2a": _s2(_COMMON_NAMES_S2),
        "sentinel-1-grd": _s1("GRD", _PC_S1),
    },
    url="https://earth-search.aws.element84.com/v1",
)
EARTH_SEARCH_V0 = ProviderProfile(
    "earth-search-v0",
    {"sentinel-s2-l2a-cogs": _s2(_PC_S2)},
    url="https://earth-search.aws.element84.com/v0",
    cloud_filter="query",
)
CDSE = ProviderProfile(
    "cdse",
    {
        "sentinel-2-l2a": _s2(_CDSE_S2),
        "sentinel-1-grd": _s1("GRD", _PC_S1),
    },
    url="https://stac.dataspace.copernicus.eu/v1",
)
# The embedded demo archive (and `clm archive serve`): Planetary Computer layout, no signing.
CLM_ARCHIVE = ProviderProfile(
    "clm-archive",
    {k: v for k, v in PLANETARY_COMPUTER.collections.items() if k != "sentinel-1-rtc"},
)
BUILTIN_PROFILES = {
    p.name: p for p in (PLANETARY_COMPUTER, EARTH_SEARCH, EARTH_SEARCH_V0, CDSE, CLM_ARCHIVE)
}
# Backwards-compatible names (the embedded archive uses the Planetary Computer layout).
PLANETARY_COMPUTER_ASSETS = {k: dict(v.assets) for k, v in PLANETARY_COMPUTER.collections.items()}
SENSOR_OF_COLLECTION = {k: v.sensor for k, v in PLANETARY_COMPUTER.collections.items()}


def load_profile(name_or_path: str | Path) -> ProviderProfile:
    """A built-in profile by name, or one read from a YAML/JSON mapping file."""
    if str(name_or_path) in BUILTIN_PROFILES:
        return BUILTIN_PROFILES[str(name_or_path)]
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(
            f"source.profile {str(name_or_path)!r} is neither a built-in profile "
            f"({sorted(BUILTIN_PROFILES)}) nor an existing mapping file"
        )
    return profile_from_mapping(_read_mapping(path), where=str(path))


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        raw = (
            yaml.safe_load(path.read_text())
            if path.suffix != ".json"
            else json.loads(path.read_text())
        )
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"mapping file {path} is not valid YAML/JSON: {exc}") from exc
    return raw if isinstance(raw, dict) else {}


def profile_from_mapping(raw: Mapping[str, Any], where: str) -> ProviderProfile:
    """Build a profile from a mapping document (validated against its JSON Schema)."""
    try:
        validate(dict(raw), "provider-profile.v1.schema.json", f"mapping file {where}")
    except SchemaError as exc:
        raise ConfigError(str(exc)) from exc
    collections = {
        name: CollectionMapping(
            c["sensor"],
            c.get("product", "L2A" if c["sensor"] == "s2" else "GRD"),
            dict(c["assets"]),
            values=_declared(c, f"mapping file {where}: collections.{name}.band_values"),
        )
        for name, c in raw["collections"].items()
    }
    properties = {
        **DEFAULT_PROPERTIES,
        **{k: tuple(v) for k, v in raw.get("properties", {}).items()},
    }
    return ProviderProfile(
        name=raw["name"],
        collections=collections,
        properties=properties,
        url=raw.get("url"),
        signing=raw.get("signing"),
        cloud_filter=raw.get("cloud_filter", "cql2-json"),
    )


def _declared(collection: Mapping[str, Any], where: str) -> dict[str, BandValues]:
    try:
        return parse_table(collection.get("band_values", {}), where)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; see schemas/provider-profile.v1.schema.json") from None


def scene_from_item(
    item: Mapping[str, Any],
    asset_keys: Mapping[str, Mapping[str, str]] | ProviderProfile = CLM_ARCHIVE,
    resolve_href: Callable[[str], str] = lambda h: h,
) -> Scene:
    """Normalize one STAC item (a dict) into a ``Scene`` with a provider profile."""
    profile = _as_profile(asset_keys)
    collection = str(item.get("collection"))
    mapping = profile.mapping(collection, str(item.get("id")))
    props = {k: v for k, v in item["properties"].items() if v is not None}
    pick = _picker(props, profile.properties)
    assets = _band_assets(item, mapping, resolve_href)
    return Scene(
        item_id=item["id"],
        collection=collection,
        sensor=mapping.sensor,
        platform=str(pick("platform") or "").lower(),
        datetime=_instant(props, item["id"]),
        epsg=_epsg(props, item, mapping),
        bbox=tuple(item["bbox"]),
        geometry=item["geometry"],
        assets=assets,
        cloud_cover=pick("cloud_cover"),
        processing_baseline=_baseline(pick, item, mapping),
        orbit_state=_lower(pick("orbit_state")),
        relative_orbit=pick("relative_orbit"),
        polarizations=_polarizations(pick("polarizations"), mapping, assets),
        instrument_mode=pick("instrument_mode"),
        extra=_extra(item, pick, profile, mapping),
        boa_offset_applied=bool(pick("boa_offset_applied") or False),
    )


def _as_profile(value: Mapping[str, Mapping[str, str]] | ProviderProfile) -> ProviderProfile:
    if isinstance(value, ProviderProfile):
        return value
    sensors = {
        k: SENSOR_OF_COLLECTION.get(k, "s1" if "VV" in v else "s2") for k, v in value.items()
    }
    return ProviderProfile(
        "custom",
        {
            k: CollectionMapping(sensors[k], "L2A" if sensors[k] == "s2" else "GRD", v)
            for k, v in value.items()
        },
    )


def _picker(props: Mapping[str, Any], names: Mapping[str, tuple[str, ...]]) -> Callable[[str], Any]:
    def pick(field_name: str) -> Any:
        return next((props[n] for n in names.get(field_name, ()) if n in props), None)

    return pick


def _instant(props: Mapping[str, Any], item_id: str) -> datetime:
    when = props.get("datetime") or props.get("start_datetime")
    if not when:
        raise SourceError(f"item {item_id!r} has no datetime nor start_datetime")
    return datetime.fromisoformat(str(when).replace("Z", "+00:00"))


def _epsg(props: Mapping[str, Any], item: Mapping[str, Any], mapping: CollectionMapping) -> int:
    if props.get("proj:epsg"):
        return int(props["proj:epsg"])
    code = str(props.get("proj:code", ""))
    if code.upper().startswith("EPSG:"):
        return int(code.split(":")[1])
    for key in mapping.assets.values():  # STAC 1.1 items may carry proj:code per asset only
        asset = (item.get("assets") or {}).get(key) or {}
        code = str(asset.get("proj:code") or asset.get("proj:epsg") or "")
        if code:
            return int(code.split(":")[-1])
    raise SourceError(
        f"item {item['id']!r} has neither proj:epsg nor an EPSG proj:code (item or asset level); "
        "un-geocoded products cannot be chipped: use a terrain-corrected collection (e.g. RTC)"
    )


def _baseline(
    pick: Callable[[str], Any], item: Mapping[str, Any], mapping: CollectionMapping
) -> str | None:
    """The S2 processing baseline as ``NN.NN``, from properties or the product name (``_N0509_``)."""
    value = pick("processing_baseline")
    if value:
        return str(value)
    if mapping.sensor != "s2":
        return None
    match = _in_names(_BASELINE_IN_NAME, pick, item)
    if match:
        return f"{match.group(1)}.{match.group(2)}"
    raise SourceError(
        f"S2 item {item['id']!r} has no processing baseline (s2:processing_baseline, "
        "processing:version or _Nxxxx_ in its id or product name); the BOA offset cannot be "
        "harmonized without it: map the property holding it under `properties.processing_baseline` "
        "or the product name under `properties.product_name` in the profile"
    )


def _in_names(
    pattern: re.Pattern[str], pick: Callable[[str], Any], item: Mapping[str, Any]
) -> re.Match[str] | None:
    """The first match of ``pattern`` in the item id or its product name property."""
    for name in (str(item["id"]), str(pick("product_name") or "")):
        match = pattern.search(name)
        if match:
            return match
    return None


def _lower(value: Any) -> str | None:
    return str(value).lower() if value is not None else None


def _polarizations(
    value: Any, mapping: CollectionMapping, assets: Mapping[str, BandAsset]
) -> tuple[str, ...]:
    if mapping.sensor != "s1":
        return ()
    if value:
        return tuple(str(p).upper() for p in value)
    return tuple(p for p in S1_POLARIZATIONS if p in assets)


def _extra(
    item: Mapping[str, Any],
    pick: Callable[[str], Any],
    profile: ProviderProfile,
    mapping: CollectionMapping,
) -> dict[str, Any]:
    props = item["properties"]
    tile = pick("tile")
    if not tile and mapping.sensor == "s2" and (match := _in_names(_TILE_IN_NAME, pick, item)):
        tile = match.group(1)
    extra = {
        "updated": props.get("updated"),
        "created": props.get("created"),
        "product": mapping.product,
        "datatake_id": pick("datatake_id"),
        "tile": str(tile).removeprefix("MGRS-") if tile else None,
        "processed": pick("processed") or props.get("created"),
        "provider": profile.name,
    }
    if pick("requester_pays"):
        extra["requester_pays"] = True
    if profile.signing:
        extra["signing"] = profile.signing
    return extra


def _band_assets(
    item: Mapping[str, Any], mapping: CollectionMapping, resolve_href: Callable[[str], str]
) -> dict[str, BandAsset]:
    assets = {k: v for k, v in (item.get("assets") or {}).items() if v}
    if mapping.sensor == "s2":
        missing = [key for key in mapping.assets.values() if key not in assets]
        missing = [k for k in missing if k != mapping.assets.get("SCL")]
        if missing:
            raise SourceError(f"item {item['id']!r} lacks asset(s) {missing}")
    present = {band: key for band, key in mapping.assets.items() if key in assets}
    if not present:
        raise SourceError(
            f"item {item['id']!r} has none of the band assets {sorted(mapping.assets.values())}"
        )
    return {
        band: _band_asset(assets[key], resolve_href, _values(assets[key], mapping, band))
        for band, key in present.items()
    }


def _values(asset: Mapping[str, Any], mapping: CollectionMapping, band: str) -> BandValues:
    """A mapping file's declarations over the item's ``raster:bands`` over the defaults."""
    if band == "SCL":  # a classification: nothing to convert
        return BandValues()
    declared = lookup(mapping.values, mapping.sensor, band)
    default = lookup(mapping.defaults, mapping.sensor, band)
    return declared.over(from_stac_asset(asset, mapping.sensor, band)).over(default)


def _band_asset(
    asset: Mapping[str, Any], resolve_href: Callable[[str], str], values: BandValues
) -> BandAsset:
    shape = asset.get("proj:shape") or None
    transform = asset.get("proj:transform") or None
    return BandAsset(
        href=resolve_href(asset["href"]),
        gsd=asset.get("gsd"),
        shape=tuple(shape) if shape else None,
        transform=tuple(transform[:6]) if transform else None,
        values=values,
    )
