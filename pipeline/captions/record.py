"""Assemble and validate the structured caption record of one chip."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pipeline.captions.templates import caption_variants
from pipeline.schemas import validate

SCHEMA = "caption-record.v1.schema.json"
MODALITY = {"s2": "optical", "s1": "sar"}
PRODUCT = {"sentinel-2-l2a": "L2A", "sentinel-1-grd": "GRD"}


def season(when: datetime, lat: float) -> str:
    """Meteorological season, flipped in the southern hemisphere."""
    names = ("winter", "spring", "summer", "autumn")
    index = (when.month % 12) // 3
    return names[(index + 2) % 4] if lat < 0 else names[index]


def sensor_block(chip: Mapping[str, Any], bands: Sequence[str]) -> dict[str, Any]:
    block = {
        "sensor": chip["sensor"],
        "platform": chip["platform"],
        "collection": chip["collection"],
        "product": PRODUCT.get(chip["collection"], chip["collection"]),
        "modality": MODALITY[chip["sensor"]],
        "bands": list(bands),
        "instrument_mode": chip.get("instrument_mode"),
        "orbit_state": chip.get("orbit_state"),
        "processing_baseline": chip.get("processing_baseline"),
    }
    return {**block, **polarization_fields(chip.get("polarizations"), bands)}


def polarization_fields(channels: str | None, bands: Sequence[str]) -> dict[str, Any]:
    """``polarizations`` (what the chip's channels hold, in band order; null for a filled
    channel) and ``filled_bands``, for an S1 chip that is not plain VV + VH (absent: VV, VH)."""
    if not channels or channels.split(",") == list(bands):
        return {}
    held = [None if p == "-" else p for p in channels.split(",")]
    filled = [band for band, p in zip(bands, held, strict=True) if p is None]
    return {"polarizations": held, "filled_bands": filled}


def build_record(
    chip: Mapping[str, Any],
    bands: Sequence[str],
    location: Mapping[str, Any],
    annotation: Mapping[str, Any],
) -> dict[str, Any]:
    """A validated caption record from chip metadata, its location and its annotation."""
    when = datetime.fromisoformat(chip["datetime"])
    record: dict[str, Any] = {
        "schema_version": "1.0",
        "key": chip["key"],
        "sensor": sensor_block(chip, bands),
        "acquisition": {
            "datetime": when.isoformat(),
            "date": when.date().isoformat(),
            "season": season(when, location["lat"]),
        },
        "location": dict(location),
        "land_cover": annotation["land_cover"],
        "land_use": annotation["land_use"],
        "crisis": list(annotation["crisis"]),
        "labels": list(annotation["labels"]),
        "quality": {
            "cloud_fraction": round(float(chip["cloud_fraction"]), 4),
            "nodata_fraction": round(float(chip["nodata_fraction"]), 4),
        },
        "provenance": {
            "item_id": chip["item_id"],
            "cell": chip["cell"],
            "pixel_sha256": chip["pixel_sha256"],
        },
    }
    record["captions"] = caption_variants(record)
    validate(record, SCHEMA, f"caption record {chip['key']}")
    return record
