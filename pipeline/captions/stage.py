"""The caption stage: one validated caption record per kept chip, written as JSON lines.

``static labels (cached per cell, computed a block of cells per task) -> caption chunks
(crisis labels + records, a chunk of chips per task) -> records.jsonl`` on the build's
executor (``pipeline.engine``). Results are assembled by cell and by chunk index, never by
completion order, and warnings are counted in this process from what the tasks return, so
the bytes do not depend on the number of workers.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pyproj import Transformer

from pipeline.captions.record import build_record
from pipeline.chips.grid import ChipGeometry
from pipeline.config import LabelsConfig, RunConfig
from pipeline.engine import executor
from pipeline.labels import warnings as label_warnings
from pipeline.labels.annotate import Annotator, crisis_events
from pipeline.labels.base import CrisisEvent
from pipeline.labels.cell_cache import cache_file, cell_key, read_cache, write_cache
from pipeline.labels.gazetteer import nearest_places
from pipeline.labels.static import static_block_task, static_blocks
from pipeline.progress import progress
from pipeline.sources.base import SENSOR_BANDS
from pipeline.storage import atomic_path, write_json_atomic

CHUNK_CHIPS = 256  # chips per caption task


def caption_chips(config: RunConfig, chips_index: Path, out: Path) -> Path:
    """Annotate and caption every kept chip of ``chips_index``; write ``out`` (JSON lines),
    ``label_warnings.json`` beside it, and the static label cache under ``labels/``."""
    chips = kept_chips(chips_index)
    label_warnings.reset()
    lines = caption_records(config, chips, out.parent / "labels")
    with atomic_path(out) as tmp, tmp.open("w") as fh:
        fh.writelines(lines)
    write_json_atomic(out.parent / "label_warnings.json", label_warnings.snapshot())
    return out


def caption_records(
    config: RunConfig, chips: Sequence[dict[str, Any]], cache_dir: Path | None
) -> list[str]:
    """The JSON line of every chip, in the order given (a chip's ``geometry``, when present,
    is its ``ChipGeometry``; else its ``epsg``/``col``/``row``)."""
    events = crisis_events(config.labels)
    cells = {chip["cell"]: cell_of(chip) for chip in chips}
    with executor(config) as pool:
        static = cell_static_labels(config.labels, sorted(set(cells.values())), cache_dir, pool)
        locations = locations_of(cells)
        chunks = [list(chips[i : i + CHUNK_CHIPS]) for i in range(0, len(chips), CHUNK_CHIPS)]
        futures = {
            pool.submit(
                caption_chunk,
                config.labels,
                events,
                chunk,
                {cells[c["cell"]]: static[cells[c["cell"]]] for c in chunk},
                {c["cell"]: locations[c["cell"]] for c in chunk},
            ): i
            for i, chunk in enumerate(chunks)
        }
        done: dict[int, list[str]] = {}
        with progress(len(chips), "chip", "captions") as bar:
            for future in cf.as_completed(futures):
                i = futures.pop(future)  # dropped: the cluster forgets the task and its payload
                done[i] = _finished(future)
                bar.update(len(chunks[i]))
    return [line for i in range(len(chunks)) for line in done[i]]


def _finished(future: cf.Future[list[str]]) -> list[str]:
    """A caption chunk's lines, taken in the build process (one call per chunk)."""
    return future.result()


def cell_static_labels(
    labels: LabelsConfig,
    cells: list[ChipGeometry],
    cache_dir: Path | None,
    pool: cf.Executor,
) -> dict[ChipGeometry, dict[str, Any]]:
    """Static labels of ``cells`` (warnings counted once per cell): read from the cache in
    ``cache_dir``, the missing ones computed a block per task and added to the cache."""
    path = cache_file(cache_dir, labels) if cache_dir is not None else None
    cached = read_cache(path)
    todo = [c for c in cells if cell_key(c) not in cached]
    blocks = static_blocks(todo)
    biggest_first = sorted(blocks, key=len, reverse=True)  # no worker left waiting at the end
    futures = [pool.submit(static_block_task, labels, block) for block in biggest_first]
    with progress(len(blocks), "block", "static labels") as bar:
        for future in cf.as_completed(futures):
            future.result()
            bar.update()
    for future in futures:
        cached.update({cell_key(c): entry for c, entry in future.result().items()})
    if todo:
        write_cache(path, cached)
    found = {cell: cached[cell_key(cell)] for cell in cells}
    for entry in found.values():
        for kind, detail in entry["warnings"]:
            label_warnings.warn(kind, detail)
    return {cell: entry["labels"] for cell, entry in found.items()}


def caption_chunk(
    labels: LabelsConfig,
    events: Sequence[CrisisEvent],
    chips: Sequence[dict[str, Any]],
    static: Mapping[ChipGeometry, dict[str, Any]],
    locations: Mapping[str, dict[str, Any]],
) -> list[str]:
    """Crisis labels and the validated record of each chip, as JSON lines (a task)."""
    annotator = Annotator(
        corine=[],
        dynamic_world=[],
        events=events,
        min_fraction=labels.min_fraction,
        window_days=labels.window_days,
        min_affected_fraction=labels.min_affected_fraction,
        _cells=dict(static),
    )
    lines = []
    for chip in chips:
        annotation = annotator.annotate(cell_of(chip), datetime.fromisoformat(chip["datetime"]))
        record = build_record(
            chip, SENSOR_BANDS[chip["sensor"]], locations[chip["cell"]], annotation
        )
        lines.append(json.dumps(record, sort_keys=True) + "\n")
    return lines


def kept_chips(chips_index: Path) -> list[dict[str, Any]]:
    frame = pd.read_parquet(chips_index)
    kept = frame[frame["rejected"].isna()].sort_values("key").astype(object)
    return kept.where(kept.notna(), None).to_dict("records")


def cell_of(chip: Mapping[str, Any]) -> ChipGeometry:
    if isinstance(chip.get("geometry"), ChipGeometry):
        return chip["geometry"]
    return ChipGeometry(int(chip["epsg"]), int(chip["col"]), int(chip["row"]))


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as fh:
        for line in fh:
            yield json.loads(line)


def locations_of(cells: dict[str, ChipGeometry]) -> dict[str, dict[str, Any]]:
    """Location block per cell id: centre, WGS84 bbox, nearest place and country."""
    # one transformer per CRS: making one took ~6 ms, a cell's location ~0.1 ms
    epsgs = {cell.epsg for cell in cells.values()}
    to_ll = {epsg: Transformer.from_crs(epsg, 4326, always_xy=True) for epsg in epsgs}
    centres = {cid: _lonlat_box(cell, to_ll[cell.epsg]) for cid, cell in sorted(cells.items())}
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


def _lonlat_box(
    cell: ChipGeometry, to_ll: Transformer
) -> tuple[tuple[float, float], tuple[float, ...]]:
    minx, miny, maxx, maxy = cell.bounds
    xs, ys = to_ll.transform([minx, maxx, maxx, minx], [miny, miny, maxy, maxy])
    cx, cy = to_ll.transform((minx + maxx) / 2, (miny + maxy) / 2)
    return (cx, cy), (min(xs), min(ys), max(xs), max(ys))
