"""Static labels of grid cells (land cover, land use, harmonized labels), a block of cells at a
time, from the first product covering each cell best.

The block results are plain JSON-able dicts per cell, so they can be computed by any worker,
cached on disk (``pipeline.labels.cell_cache``) and reused by every scene and every rerun.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pipeline.chips.grid import ChipGeometry
from pipeline.config import LabelsConfig
from pipeline.labels.base import ClassFractions, LabelSource
from pipeline.labels.corine import CorineRaster
from pipeline.labels.dynamic_world import DynamicWorldRaster
from pipeline.labels.dynamic_world_composite import DatedProduct, DynamicWorldComposite
from pipeline.labels.harmonize import (
    aggregate_levels,
    labels_above,
    load_mapping,
    to_bigearthnet19,
    to_reference,
)
from pipeline.labels.raster_blocks import blocks_of
from pipeline.labels.taxonomy import clc_by_code
from pipeline.labels.worldcover import WorldCoverRaster

CLC_MAPPING = "clc_to_reference.v1"
DW_MAPPING = "dynamic_world_to_reference.v1"
WORLDCOVER_MAPPING = "worldcover_to_reference.v1"
MAPPING_OF = {"corine": CLC_MAPPING, "dynamic_world": DW_MAPPING, "worldcover": WORLDCOVER_MAPPING}


def corine_sources(labels: LabelsConfig) -> list[LabelSource]:
    return [CorineRaster(p.href, p.value_type) for p in labels.corine]


def cover_sources(labels: LabelsConfig) -> list[LabelSource]:
    """Dynamic World products (and their composite, when per-scene products are configured)."""
    found: list[LabelSource] = [
        DynamicWorldRaster(p.href, band=p.label_band, probabilities=p.probabilities)
        for p in labels.dynamic_world
    ]
    if labels.dynamic_world_scenes:
        products = [DatedProduct(href, when) for href, when in labels.dynamic_world_scenes]
        start, end = labels.dynamic_world_window or (
            min(p.acquired for p in products),
            max(p.acquired for p in products),
        )
        found.append(DynamicWorldComposite(products, start, end))
    return found


def worldcover_sources(labels: LabelsConfig) -> list[LabelSource]:
    return [WorldCoverRaster(p.href) for p in labels.worldcover]


def static_block_task(labels: LabelsConfig, cells: list[ChipGeometry]) -> dict[ChipGeometry, Any]:
    """Static labels of ``cells`` (a top-level function with plain arguments, for executors)."""
    return static_labels(
        corine_sources(labels),
        cover_sources(labels),
        worldcover_sources(labels),
        cells,
        labels.min_fraction,
    )


def static_labels(
    corine: Sequence[LabelSource],
    cover: Sequence[LabelSource],
    worldcover: Sequence[LabelSource],
    cells: Sequence[ChipGeometry],
    min_fraction: float,
) -> dict[ChipGeometry, dict[str, Any]]:
    """``{cell: {"labels": static label block, "warnings": [[kind, detail], ...]}}``, the
    labels passed through JSON once so that computed and cached ones are the same values."""
    clc, clc_warnings = _best(corine, cells)
    dw, dw_warnings = _best(cover, cells)
    todo = [i for i, found in enumerate(dw) if found is None]  # WorldCover where no DW covers
    wc, wc_warnings = _best(worldcover, [cells[i] for i in todo])
    fallback = dict(zip(todo, zip(wc, wc_warnings, strict=True), strict=True))
    out = {}
    for i, cell in enumerate(cells):
        land_cover, warned = fallback.get(i, (dw[i], []))
        labels = _static_block(clc[i], land_cover, min_fraction)
        warnings = [list(w) for w in (*clc_warnings[i], *dw_warnings[i], *warned)]
        out[cell] = json.loads(json.dumps({"labels": labels, "warnings": warnings}))
    return out


def _static_block(
    clc: ClassFractions | None, cover: ClassFractions | None, min_fraction: float
) -> dict[str, Any]:
    primary = clc if clc is not None else cover
    by_label = to_reference(primary, load_mapping(MAPPING_OF[primary.source])) if primary else {}
    return {
        "land_cover": _land_cover(cover),
        "land_use": _land_use(clc),
        "labels": list(labels_above(by_label, min_fraction)),
    }


def _best(
    sources: Sequence[LabelSource], cells: Sequence[ChipGeometry]
) -> tuple[list[Any], list[list[tuple[str, str]]]]:
    """Per cell, the product covering it best (least nodata, ties by href, so the result does
    not depend on the order products are listed; None if none covers it at all), and the
    warnings every product gave for it."""
    results = [(str(getattr(s, "href", "")), s.block_fractions(list(cells))) for s in sources]
    best: list[ClassFractions | None] = []
    warnings: list[list[tuple[str, str]]] = []
    for i in range(len(cells)):
        candidates = [(r[i].nodata_fraction, href, r[i]) for href, r in results]
        covering = [c for c in candidates if c[0] < 1.0]
        best.append(min(covering, key=lambda c: (c[0], c[1]))[2] if covering else None)
        warnings.append([w for _, _, found in candidates for w in found.warnings])
    return best, warnings


def static_blocks(cells: Sequence[ChipGeometry]) -> list[list[ChipGeometry]]:
    """``cells`` in blocks of grid cells, the unit of work of the static labels."""
    ordered = sorted(cells)
    return [[ordered[i] for i in block] for block in blocks_of(ordered)]


def _land_cover(cover: ClassFractions | None) -> dict[str, Any]:
    """Land-cover fractions in reference label names (Dynamic World, else WorldCover)."""
    if cover is None:
        return {"source": None, "fractions": {}, "nodata_fraction": 1.0}
    by_label = to_reference(cover, load_mapping(MAPPING_OF[cover.source]))
    return {
        "source": cover.source,
        "fractions": {k: round(v, 4) for k, v in by_label.items()},
        "nodata_fraction": round(cover.nodata_fraction, 4),
        **({"probabilities": _probabilities(cover)} if cover.probabilities else {}),
    }


def _probabilities(cover: ClassFractions) -> dict[str, float]:
    mapping = load_mapping(MAPPING_OF[cover.source])
    return {
        mapping.label_of(v): round(p, 4) for v, p in sorted((cover.probabilities or {}).items())
    }


def _land_use(clc: ClassFractions | None) -> dict[str, Any]:
    if clc is None:
        return {"source": None, "classes": [], "nodata_fraction": 1.0}
    levels = aggregate_levels(clc)
    classes = sorted(levels["level3"].items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "source": "corine_land_cover_2018",
        "classes": [
            {"code": code, "name": clc_by_code(code).name, "fraction": round(frac, 4)}
            for code, frac in classes
        ],
        "level1": {str(k): round(v, 4) for k, v in levels["level1"].items()},
        "level2": {str(k): round(v, 4) for k, v in levels["level2"].items()},
        "bigearthnet19": {k: round(v, 4) for k, v in to_bigearthnet19(clc).items()},
        "nodata_fraction": round(clc.nodata_fraction, 4),
    }
