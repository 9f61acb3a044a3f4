"""The chip stage for one scene: read its planned chips, judge their quality, keep the good
ones in a per-scene HDF5 file and record every chip (kept or rejected, with the reason)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pipeline
from pipeline.chips.plan import PlannedChip
from pipeline.chips.read import ChipPixels, read_scene_chips
from pipeline.sources.assets import Resolver
from pipeline.sources.base import BandAsset, Scene
from pipeline.storage import hdf5_atomic, write_json_atomic


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
    """Checksum of a chip's pixels (float32, C order, little endian)."""
    return hashlib.sha256(image.astype("<f4", copy=False).tobytes(order="C")).hexdigest()


def scene_outputs(work: Path, item_id: str) -> tuple[Path, Path]:
    return work / f"{item_id}.h5", work / f"{item_id}.json"


def extract_scene(
    scene: Scene,
    chips: Sequence[PlannedChip],
    rules: QualityRules,
    work: Path,
    resolve: Resolver,
) -> list[dict[str, Any]]:
    """Write ``work/<item_id>.h5`` (kept chips) and ``.json`` (all chips); skip if both exist."""
    h5_path, rows_path = scene_outputs(work, scene.item_id)
    if h5_path.exists() and rows_path.exists():
        return list(json.loads(rows_path.read_text()))
    readable = _with_resolved_hrefs(scene, resolve)
    rows = []
    with hdf5_atomic(h5_path) as h5:
        for pixels in read_scene_chips(readable, chips):
            row = _chip_row(scene, pixels, rules.rejection(pixels))
            if row["rejected"] is None:
                h5.create_dataset(pixels.chip.key, data=pixels.image, compression="lzf")
            rows.append(row)
    write_json_atomic(rows_path, rows)
    return rows


def _with_resolved_hrefs(scene: Scene, resolve: Resolver) -> Scene:
    assets = {
        band: BandAsset(resolve(a.href), a.gsd, a.shape, a.transform)
        for band, a in scene.assets.items()
    }
    return dataclasses.replace(scene, assets=assets)


def _chip_row(scene: Scene, pixels: ChipPixels, rejected: str | None) -> dict[str, Any]:
    cell = pixels.chip.cell
    return {
        "key": pixels.chip.key,
        "item_id": scene.item_id,
        "collection": scene.collection,
        "sensor": scene.sensor,
        "platform": scene.platform,
        "datetime": scene.datetime.isoformat(),
        "epsg": cell.epsg,
        "col": cell.col,
        "row": cell.row,
        "cell": cell.cell_id,
        "nodata_fraction": round(pixels.nodata_fraction, 6),
        "cloud_fraction": round(pixels.cloud_fraction, 6),
        "rejected": rejected,
        "pixel_sha256": pixel_sha256(pixels.image) if rejected is None else None,
        "processing_baseline": scene.processing_baseline,
        "orbit_state": scene.orbit_state,
        "instrument_mode": scene.instrument_mode,
        "assets": {band: a.href for band, a in scene.assets.items()},
        "software": pipeline.__version__,
    }
