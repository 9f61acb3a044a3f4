"""Provider profiles: map a provider's STAC item layout onto the normalized ``Scene``.

Planetary Computer layout (also used by the embedded demo archive): S2 band assets
``B01``..``B12``, ``B8A``, ``SCL``; S1 assets ``vv`` and ``vh``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pipeline.errors import SourceError
from pipeline.sources.base import S2_BANDS, BandAsset, Scene

PLANETARY_COMPUTER_ASSETS = {
    "sentinel-2-l2a": {**{b: b for b in S2_BANDS}, "SCL": "SCL"},
    "sentinel-1-grd": {"VV": "vv", "VH": "vh"},
}
SENSOR_OF_COLLECTION = {"sentinel-2-l2a": "s2", "sentinel-1-grd": "s1"}


def scene_from_item(
    item: Mapping[str, Any],
    asset_keys: Mapping[str, Mapping[str, str]] = PLANETARY_COMPUTER_ASSETS,
    resolve_href: Callable[[str], str] = lambda h: h,
) -> Scene:
    """Normalize one STAC item (a dict) into a ``Scene``."""
    collection = str(item.get("collection"))
    if collection not in asset_keys:
        raise SourceError(
            f"item {item.get('id')!r} is in collection {collection!r}, which this profile does "
            f"not know; known: {sorted(asset_keys)}"
        )
    props = {k: v for k, v in item["properties"].items() if v is not None}
    return Scene(
        item_id=item["id"],
        collection=collection,
        sensor=SENSOR_OF_COLLECTION[collection],
        platform=str(props.get("platform", "")).lower(),
        datetime=datetime.fromisoformat(props["datetime"].replace("Z", "+00:00")),
        epsg=_epsg(props, item["id"]),
        bbox=tuple(item["bbox"]),
        geometry=item["geometry"],
        assets=_band_assets(item, asset_keys[collection], resolve_href),
        cloud_cover=props.get("eo:cloud_cover"),
        processing_baseline=props.get("s2:processing_baseline"),
        orbit_state=props.get("sat:orbit_state"),
        relative_orbit=props.get("sat:relative_orbit"),
        polarizations=tuple(props.get("sar:polarizations", ())),
        instrument_mode=props.get("sar:instrument_mode"),
        extra={"updated": props.get("updated"), "created": props.get("created")},
    )


def _epsg(props: Mapping[str, Any], item_id: str) -> int:
    if props.get("proj:epsg"):
        return int(props["proj:epsg"])
    code = str(props.get("proj:code", ""))
    if code.upper().startswith("EPSG:"):
        return int(code.split(":")[1])
    raise SourceError(f"item {item_id!r} has neither proj:epsg nor an EPSG proj:code")


def _band_assets(
    item: Mapping[str, Any], keys: Mapping[str, str], resolve_href: Callable[[str], str]
) -> dict[str, BandAsset]:
    assets = {k: v for k, v in (item.get("assets") or {}).items() if v}
    missing = [key for key in keys.values() if key not in assets]
    if missing:
        raise SourceError(f"item {item['id']!r} lacks asset(s) {missing}")
    out = {}
    for band, key in keys.items():
        asset = assets[key]
        shape = asset.get("proj:shape") or None
        transform = asset.get("proj:transform") or None
        out[band] = BandAsset(
            href=resolve_href(asset["href"]),
            gsd=asset.get("gsd"),
            shape=tuple(shape) if shape else None,
            transform=tuple(transform[:6]) if transform else None,
        )
    return out
