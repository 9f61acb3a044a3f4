"""The chip stage for one scene: read its planned chips, judge their quality, keep the good
ones in a per-scene HDF5 file and record every chip (kept or rejected, with the reason).

Kept chips are stored compressed with the default shard recipe (``WORK_COMPRESSION``), one
chunk per chip, so the corpus stage copies each compressed chunk into its shard without
decoding it (``pipeline.corpus.shards``). After a publish the pixels may be released
(``pipeline.corpus.gc``): the file then keeps only ``RELEASED_ATTR`` and the published shards
hold the chips.

The per-scene work files are named by a digest of everything they are cut from (the bytes of
every asset, the scene record, the planned cells, the quality rules, the software version):
a rerun finds them only when none of that changed, and cuts the scene again otherwise."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import pipeline
from pipeline.chips.plan import PlannedChip
from pipeline.chips.read import ChipPixels, read_scene_chips, s1_channels
from pipeline.compression import (
    COMPRESSION_ATTR,
    DEFAULT_SHARD_COMPRESSION,
    shard_compression,
)
from pipeline.h5write import ChipWriter
from pipeline.sources.access import redact
from pipeline.sources.assets import Resolver
from pipeline.sources.base import BandAsset, Scene
from pipeline.sources.settings import RetryPolicy
from pipeline.storage import hdf5_atomic, write_json_atomic

WORK_COMPRESSION = DEFAULT_SHARD_COMPRESSION
RELEASED_ATTR = "released"  # on a work file whose pixels went (the published shards hold them)


@dataclass(frozen=True)
class QualityRules:
    max_nodata_fraction: float = 0.05
    max_cloud_fraction: float = 0.10

    def rejection(self, chip: ChipPixels) -> str | None:
        if chip.nodata_fraction > self.max_nodata_fraction:
            return "nodata"
        if chip.cloud_fraction > self.max_cloud_fraction:
            return "cloudy"
        return None


def pixel_sha256(image: Any) -> str:
    """Checksum of a chip's pixels (float32, C order, little endian). The array's own buffer
    is hashed when it is already that (a chip as read); only other layouts are copied."""
    return hashlib.sha256(np.ascontiguousarray(image, dtype="<f4").data).hexdigest()


def scene_outputs(work: Path, item_id: str, inputs: str) -> tuple[Path, Path]:
    """The work files of a scene cut from ``inputs`` (``inputs_digest``): kept chips, all rows."""
    return work / f"{item_id}.{inputs}.h5", work / f"{item_id}.{inputs}.json"


SCENE_FIELDS = (  # the scene fields the rows copy or the reader uses
    "item_id",
    "collection",
    "sensor",
    "platform",
    "datetime",
    "epsg",
    "processing_baseline",
    "orbit_state",
    "instrument_mode",
    "boa_offset_applied",
)


def inputs_digest(
    scene: Scene,
    chips: Sequence[PlannedChip],
    rules: QualityRules,
    fingerprints: Mapping[str, Mapping[str, Any]],
) -> str:
    """16 hex digits naming what a scene's chips are cut from: ``fingerprints`` (band ->
    fingerprint of the asset bytes), the scene fields the rows copy, the asset grids and
    hrefs (query strings dropped), the planned cells, the quality rules and the software."""
    inputs = {
        "scene": {name: getattr(scene, name) for name in SCENE_FIELDS},
        "assets": {
            band: {**_asset_inputs(a), "href": redact(a.href), **fingerprints[band]}
            for band, a in sorted(scene.assets.items())
        },
        "chips": sorted(c.key for c in chips),
        "rules": dataclasses.asdict(rules),
        "software": pipeline.__version__,
    }
    if scene.extra.get("s1_channels"):  # the polarisation policy's channel mapping
        inputs["s1_channels"] = scene.extra["s1_channels"]
    text = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _asset_inputs(asset: BandAsset) -> dict[str, Any]:
    """An asset's fields; its band contract only when declared (digests of scenes without
    one stay what they were)."""
    fields = dataclasses.asdict(asset)
    if not asset.values.declared:
        fields.pop("values")
    return fields


def extract_scene(
    scene: Scene,
    chips: Sequence[PlannedChip],
    rules: QualityRules,
    work: Path,
    resolve: Resolver,
    inputs: str,
    retry: RetryPolicy | None = None,
) -> list[dict[str, Any]]:
    """Write ``work/<item_id>.<inputs>.h5`` (kept chips) and ``.json`` (all chips); skip the
    scene when both exist (cut from the same inputs by an earlier run)."""
    h5_path, rows_path = scene_outputs(work, scene.item_id, inputs)
    if h5_path.exists() and rows_path.exists():
        return list(json.loads(rows_path.read_text()))
    readable = _with_resolved_hrefs(scene, resolve)
    rows = []
    writer = ChipWriter(shard_compression(WORK_COMPRESSION))
    shared = _scene_fields(scene, inputs)
    with hdf5_atomic(h5_path) as h5:
        h5.attrs[COMPRESSION_ATTR] = writer.recipe.name
        for pixels in read_scene_chips(readable, chips, retry):
            row = _chip_row(shared, pixels, rules.rejection(pixels))
            if row["rejected"] is None:
                writer.array(h5.id, pixels.chip.key, pixels.image.astype("float32", copy=False))
            rows.append(row)
    write_json_atomic(rows_path, rows)
    return rows


def _with_resolved_hrefs(scene: Scene, resolve: Resolver) -> Scene:
    assets = {
        band: dataclasses.replace(a, href=resolve(a.href)) for band, a in scene.assets.items()
    }
    return dataclasses.replace(scene, assets=assets)


CHIP_COLUMNS = pa.schema(  # one row of work/chips.parquet, as ``_chip_row`` makes it
    [
        ("key", pa.string()),
        ("item_id", pa.string()),
        ("collection", pa.string()),
        ("sensor", pa.string()),
        ("platform", pa.string()),
        ("datetime", pa.string()),
        ("epsg", pa.int64()),
        ("col", pa.int64()),
        ("row", pa.int64()),
        ("cell", pa.string()),
        ("nodata_fraction", pa.float64()),
        ("cloud_fraction", pa.float64()),
        ("rejected", pa.string()),
        ("pixel_sha256", pa.string()),
        ("processing_baseline", pa.string()),
        ("orbit_state", pa.string()),
        ("instrument_mode", pa.string()),
        ("assets", pa.string()),  # JSON: band -> href (query strings dropped)
        ("inputs_digest", pa.string()),  # names the scene's work files (``scene_outputs``)
        ("software", pa.string()),
        # S1: the polarisation in each channel, "VV,VH"; "-" for a filled channel ("VV,-")
        ("polarizations", pa.string()),
    ]
)


def _scene_fields(scene: Scene, inputs: str) -> dict[str, Any]:
    """The fields every row of a scene shares (computed once per scene, not per chip)."""
    return {
        "item_id": scene.item_id,
        "collection": scene.collection,
        "sensor": scene.sensor,
        "platform": scene.platform,
        "datetime": scene.datetime.isoformat(),
        "processing_baseline": _text(scene.processing_baseline),
        "orbit_state": _text(scene.orbit_state),
        "instrument_mode": _text(scene.instrument_mode),
        "assets": json.dumps({b: redact(a.href) for b, a in scene.assets.items()}, sort_keys=True),
        "inputs_digest": inputs,
        "software": pipeline.__version__,
        "polarizations": _polarizations(scene),
    }


def _chip_row(
    shared: Mapping[str, Any], pixels: ChipPixels, rejected: str | None
) -> dict[str, Any]:
    cell = pixels.chip.cell
    return {
        **shared,
        "key": pixels.chip.key,
        "epsg": cell.epsg,
        "col": cell.col,
        "row": cell.row,
        "cell": cell.cell_id,
        "nodata_fraction": round(pixels.nodata_fraction, 6),
        "cloud_fraction": round(pixels.cloud_fraction, 6),
        "rejected": rejected,
        "pixel_sha256": pixel_sha256(pixels.image) if rejected is None else None,
    }


def _polarizations(scene: Scene) -> str | None:
    if scene.sensor != "s1":
        return None
    return ",".join(band or "-" for band in s1_channels(scene).values())


def _text(value: Any) -> str | None:
    """A text field of the scene record; missing ones come back from parquet as NaN."""
    return value if isinstance(value, str) else None
