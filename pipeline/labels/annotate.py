"""Annotate chips: land cover, land use and crisis events per chip, harmonized into the
reference label space. Static labels are computed once per grid cell and reused by
every scene that covers it; crisis labels depend on the acquisition date."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.chips.grid import ChipGeometry
from pipeline.config import LabelsConfig
from pipeline.labels.base import ClassFractions, CrisisEvent, LabelSource
from pipeline.labels.corine import CorineRaster
from pipeline.labels.crisis_ems import (
    affected_fraction,
    calendar_days,
    crisis_phase,
    read_ems_observed_event,
)
from pipeline.labels.crisis_gdacs import read_gdacs_feed
from pipeline.labels.crisis_user import read_user_events
from pipeline.labels.dynamic_world import DynamicWorldRaster
from pipeline.labels.dynamic_world_composite import DatedProduct, DynamicWorldComposite
from pipeline.labels.harmonize import (
    aggregate_levels,
    labels_above,
    load_mapping,
    to_bigearthnet19,
    to_reference,
)
from pipeline.labels.taxonomy import CRISIS_LABELS, REFERENCE_LABELS, clc_by_code
from pipeline.labels.worldcover import WorldCoverRaster

CLC_MAPPING = "clc_to_reference.v1"
DW_MAPPING = "dynamic_world_to_reference.v1"
WORLDCOVER_MAPPING = "worldcover_to_reference.v1"
MAPPING_OF = {"corine": CLC_MAPPING, "dynamic_world": DW_MAPPING, "worldcover": WORLDCOVER_MAPPING}


@dataclass
class Annotator:
    corine: Sequence[LabelSource]
    dynamic_world: Sequence[LabelSource]
    events: Sequence[CrisisEvent]
    worldcover: Sequence[LabelSource] = ()
    min_fraction: float = 0.05
    window_days: Mapping[str, int] = field(default_factory=dict)
    min_affected_fraction: float = 0.02
    _cells: dict[ChipGeometry, dict[str, Any]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, labels: LabelsConfig) -> Annotator:
        return cls(
            corine=[CorineRaster(p.href, p.value_type) for p in labels.corine],
            dynamic_world=[
                DynamicWorldRaster(p.href, band=p.label_band, probabilities=p.probabilities)
                for p in labels.dynamic_world
            ]
            + _composites(labels),
            worldcover=[WorldCoverRaster(p.href) for p in labels.worldcover],
            events=crisis_events(labels),
            min_fraction=labels.min_fraction,
            window_days=labels.window_days,
            min_affected_fraction=labels.min_affected_fraction,
        )

    def annotate(self, cell: ChipGeometry, acquired: datetime) -> dict[str, Any]:
        """The annotation block of a caption record for one chip."""
        static = self.cell_labels(cell)
        crisis = self.crisis_labels(cell, acquired)
        post = {c["label"] for c in crisis if c["phase"] == "post"}
        labels = [lab for lab in REFERENCE_LABELS if lab in static["labels"] or lab in post]
        return {
            "land_cover": static["land_cover"],
            "land_use": static["land_use"],
            "crisis": crisis,
            "labels": labels,
        }

    def cell_labels(self, cell: ChipGeometry) -> dict[str, Any]:
        if cell not in self._cells:
            self._cells[cell] = self._static_labels(cell)
        return self._cells[cell]

    def _static_labels(self, cell: ChipGeometry) -> dict[str, Any]:
        clc = _best(self.corine, cell)
        cover = _best(self.dynamic_world, cell) or _best(self.worldcover, cell)
        primary = clc if clc is not None else cover
        by_label = (
            to_reference(primary, load_mapping(MAPPING_OF[primary.source])) if primary else {}
        )
        return {
            "land_cover": _land_cover(cover),
            "land_use": _land_use(clc),
            "labels": labels_above(by_label, self.min_fraction),
        }

    def crisis_labels(self, cell: ChipGeometry, acquired: datetime) -> list[dict[str, Any]]:
        out = []
        for event in self.events:
            window = self.window_days.get(event.hazard, 0)
            phase = crisis_phase(event, acquired, window)
            if phase is None:
                continue
            fraction = affected_fraction(event, cell)
            if fraction < self.min_affected_fraction:
                continue
            out.append(_crisis_entry(event, acquired, phase, fraction))
        return sorted(out, key=lambda c: (c["event_date"], c["event_id"]))


def _composites(labels: LabelsConfig) -> list[LabelSource]:
    """A Dynamic World mode composite when per-scene DW products and a window are configured."""
    if not labels.dynamic_world_scenes:
        return []
    products = [DatedProduct(href, when) for href, when in labels.dynamic_world_scenes]
    start, end = labels.dynamic_world_window or (
        min(p.acquired for p in products),
        max(p.acquired for p in products),
    )
    return [DynamicWorldComposite(products, start, end)]


def crisis_events(labels: LabelsConfig) -> list[CrisisEvent]:
    """Every configured crisis event: EMS products, GDACS feeds and user event files."""
    events = [
        read_ems_observed_event(
            e.observed_event,
            event_date=e.event_date,
            metadata=e.metadata,
            source_table=e.source_table,
        )
        for e in labels.ems
    ]
    for feed in labels.gdacs:
        events += read_gdacs_feed(feed.href, feed.radius_km).events
    for user in labels.user_events:
        events += read_user_events(user.path, user.on_invalid)
    return events


def _best(sources: Sequence[LabelSource], cell: ChipGeometry) -> ClassFractions | None:
    """The product covering the chip best (least nodata, ties by href, so the result does
    not depend on the order products are listed); None if none covers it at all."""
    candidates = []
    for source in sources:
        fractions = source.class_fractions(cell)
        if fractions.nodata_fraction < 1.0:
            candidates.append(
                (fractions.nodata_fraction, str(getattr(source, "href", "")), fractions)
            )
    return min(candidates, key=lambda c: (c[0], c[1]))[2] if candidates else None


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


def _subtype(event: CrisisEvent) -> str:
    """A lower-case event subtype such as 'riverine flood' (EMS obj_desc), else the hazard."""
    subtypes = event.properties.get("obj_desc") or []
    return str(subtypes[0]).lower() if subtypes else event.hazard


def _crisis_entry(
    event: CrisisEvent, acquired: datetime, phase: str, fraction: float
) -> dict[str, Any]:
    days = calendar_days(event.event_date, acquired)
    return {
        "hazard": event.hazard,
        "label": CRISIS_LABELS[event.hazard],
        "source": event.source,
        "event_id": event.event_id,
        "event_name": event.name,
        "event_subtype": _subtype(event),
        "event_date": event.event_date.isoformat(),
        "phase": phase,
        "days_since_event": days,
        "affected_fraction": round(fraction, 4),
    }
