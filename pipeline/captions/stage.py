"""The caption stage: one validated caption record per kept chip, written as JSON lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pyproj import Transformer

from pipeline.captions.record import build_record
from pipeline.chips.grid import ChipGeometry
from pipeline.config import RunConfig
from pipeline.labels import warnings as label_warnings
from pipeline.labels.annotate import Annotator
from pipeline.labels.gazetteer import nearest_places
from pipeline.progress import progress
from pipeline.sources.base import SENSOR_BANDS
from pipeline.storage import atomic_path, write_json_atomic


def caption_chips(config: RunConfig, chips_index: Path, out: Path) -> Path:
    """Annotate and caption every kept chip of ``chips_index``; write ``out`` (JSON lines)."""
    chips = kept_chips(chips_index)
    label_warnings.reset()
    annotator = Annotator.from_config(config.labels)
    locations = locations_of({chip["cell"]: cell_of(chip) for chip in chips})
    with (
        atomic_path(out) as tmp,
        tmp.open("w") as fh,
        progress(len(chips), "chip", "captions") as bar,
    ):
        for chip in chips:
            cell = cell_of(chip)
            annotation = annotator.annotate(cell, datetime.fromisoformat(chip["datetime"]))
            bands = SENSOR_BANDS[chip["sensor"]]
            record = build_record(chip, bands, locations[chip["cell"]], annotation)
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            bar.update()
    write_json_atomic(out.parent / "label_warnings.json", label_warnings.snapshot())
    return out


def kept_chips(chips_index: Path) -> list[dict[str, Any]]:
    frame = pd.read_parquet(chips_index)
    kept = frame[frame["rejected"].isna()].sort_values("key").astype(object)
    return kept.where(kept.notna(), None).to_dict("records")


def cell_of(chip: dict[str, Any]) -> ChipGeometry:
    return ChipGeometry(int(chip["epsg"]), int(chip["col"]), int(chip["row"]))


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as fh:
        for line in fh:
            yield json.loads(line)


def locations_of(cells: dict[str, ChipGeometry]) -> dict[str, dict[str, Any]]:
    """Location block per cell id: centre, WGS84 bbox, nearest place and country."""
    centres = {cid: _lonlat_box(cell) for cid, cell in sorted(cells.items())}
    places = nearest_places([c[0] for c in centres.values()])
    out = {}
    for (cid, (centre, bbox)), place in zip(centres.items(), places, strict=True):
        out[cid] = {
            "lon": round(centre[0], 6),
            "lat": round(centre[1], 6),
            "epsg": cells[cid].epsg,
            "bbox": [round(v, 6) for v in bbox],
            "place": place.name,
            "region": place.region,
            "country": place.country,
            "country_code": place.country_code,
            "place_distance_km": place.distance_km,
        }
    return out


def _lonlat_box(cell: ChipGeometry) -> tuple[tuple[float, float], tuple[float, ...]]:
    to_ll = Transformer.from_crs(cell.epsg, 4326, always_xy=True)
    minx, miny, maxx, maxy = cell.bounds
    xs, ys = to_ll.transform([minx, maxx, maxx, minx], [miny, miny, maxy, maxy])
    cx, cy = to_ll.transform((minx + maxx) / 2, (miny + maxy) / 2)
    return (cx, cy), (min(xs), min(ys), max(xs), max(ys))
