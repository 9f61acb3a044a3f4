"""Annotate chips: land cover, land use and crisis events per chip, harmonized into the
reference label space. Static labels are computed once per grid cell (a block of cells at
a time, ``pipeline.labels.static``) and reused by every scene that covers it; crisis labels
depend on the acquisition date."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.chips.grid import ChipGeometry
from pipeline.config import LabelsConfig
from pipeline.labels import warnings as label_warnings
from pipeline.labels.base import CrisisEvent, LabelSource
from pipeline.labels.crisis_ems import (
    affected_fraction,
    calendar_days,
    crisis_phase,
    read_ems_observed_event,
)
from pipeline.labels.crisis_gdacs import read_gdacs_feed
from pipeline.labels.crisis_user import read_user_events
from pipeline.labels.static import (
    corine_sources,
    cover_sources,
    static_labels,
    worldcover_sources,
)
from pipeline.labels.taxonomy import CRISIS_LABELS, REFERENCE_LABELS


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
    def from_config(
        cls, labels: LabelsConfig, events: Sequence[CrisisEvent] | None = None
    ) -> Annotator:
        """The configured sources; ``events`` when already read (else read here)."""
        return cls(
            corine=corine_sources(labels),
            dynamic_world=cover_sources(labels),
            worldcover=worldcover_sources(labels),
            events=crisis_events(labels) if events is None else events,
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
            self.prefetch([cell])
        return self._cells[cell]

    def prefetch(self, cells: Iterable[ChipGeometry]) -> None:
        """Compute the static labels of the ``cells`` not known yet, a block at a time, and
        count their warnings (once per cell, as each cell is computed once per run)."""
        todo = sorted({c for c in cells if c not in self._cells})
        found = static_labels(
            self.corine, self.dynamic_world, self.worldcover, todo, self.min_fraction
        )
        self.use(found)

    def use(self, found: Mapping[ChipGeometry, Mapping[str, Any]]) -> None:
        """Take static labels computed elsewhere (or cached), counting their warnings."""
        for cell, entry in found.items():
            for kind, detail in entry["warnings"]:
                label_warnings.warn(kind, detail)
            self._cells[cell] = entry["labels"]

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
