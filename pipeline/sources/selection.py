"""Scene selection rules: which of the scenes a search found a build uses, and why not the rest.

Rules (``selection:`` in the run config, recorded in the manifest with the recipe):
cloud cover from metadata (the chip stage then checks SCL per chip), S1 instrument mode
and polarizations (the polarisation policy: ``s1_channels``), orbit direction, temporal windows around crisis events (pre/post),
and de-duplication of reprocessed products (same acquisition, newer processing wins).
The S2 processing-baseline offset is harmonized at read time from each scene's
``processing_baseline`` (every profile fills it), see ``pipeline.chips.read``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.errors import ConfigError
from pipeline.sources.base import S1_BANDS, Scene, SearchQuery

ORBIT_STATES = ("ascending", "descending")
MISSING_POLARIZATION = ("reject", "fill")
HH_HV = ("reject", "as_vv_vh")
CO_CROSS = {"VV": "HH", "VH": "HV"}  # corpus channel -> its HH/HV counterpart
_BASELINE_SUFFIX = re.compile(r"_N\d{2}\.?\d{2}$")


@dataclass(frozen=True)
class EventWindow:
    """Scenes from ``pre_days`` before to ``post_days`` after ``date``, optionally in ``bbox``."""

    name: str
    date: datetime
    pre_days: int = 30
    post_days: int = 30
    bbox: tuple[float, float, float, float] | None = None

    def phase(self, when: datetime) -> str | None:
        if self.date - timedelta(days=self.pre_days) <= when < self.date:
            return "pre"
        if self.date <= when <= self.date + timedelta(days=self.post_days):
            return "post"
        return None


@dataclass(frozen=True)
class SelectionRules:
    s1_instrument_modes: tuple[str, ...] = ("IW",)
    s1_polarizations: tuple[str, ...] = ("VV", "VH")  # all required
    s1_missing_polarization: str = "reject"  # a channel the scene lacks: "reject" | "fill"
    s1_hh_hv: str = "reject"  # HH/HV scenes: "reject" | "as_vv_vh" (HH -> VV, HV -> VH)
    orbit_states: tuple[str, ...] = ()  # empty: any direction
    windows: tuple[EventWindow, ...] = ()  # empty: the whole search.datetime range
    dedupe_reprocessed: bool = True


@dataclass(frozen=True)
class Rejection:
    item_id: str
    collection: str
    reason: str


@dataclass(frozen=True)
class Selection:
    kept: tuple[Scene, ...]
    rejected: tuple[Rejection, ...]


def parse_selection(
    raw: Mapping[str, Any], archive_meta: Mapping[str, Any] | None, where: str
) -> SelectionRules:
    """``selection:`` of a run config -> ``SelectionRules`` (``crisis_windows`` uses the
    archive's events: one window per event over its AOI)."""
    states = tuple(str(s).lower() for s in raw.get("orbit_states", ()))
    if any(s not in ORBIT_STATES for s in states):
        raise ConfigError(f"{where}: selection.orbit_states {list(states)}: use {ORBIT_STATES}")
    missing = str(raw.get("s1_missing_polarization", "reject"))
    hh_hv = str(raw.get("s1_hh_hv", "reject"))
    if missing not in MISSING_POLARIZATION or hh_hv not in HH_HV:
        raise ConfigError(
            f"{where}: selection.s1_missing_polarization {missing!r} / s1_hh_hv {hh_hv!r}: "
            f"use {MISSING_POLARIZATION} / {HH_HV}"
        )
    windows = [_window(w, where) for w in raw.get("windows", [])]
    if raw.get("crisis_windows") and archive_meta:
        windows += _archive_windows(raw["crisis_windows"], archive_meta)
    return SelectionRules(
        s1_instrument_modes=tuple(str(m).upper() for m in raw.get("s1_instrument_modes", ("IW",))),
        s1_polarizations=tuple(str(p).upper() for p in raw.get("s1_polarizations", ("VV", "VH"))),
        s1_missing_polarization=missing,
        s1_hh_hv=hh_hv,
        orbit_states=states,
        windows=tuple(windows),
        dedupe_reprocessed=bool(raw.get("dedupe_reprocessed", True)),
    )


def _window(raw: Mapping[str, Any], where: str) -> EventWindow:
    try:
        date = datetime.fromisoformat(str(raw["date"]).replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"{where}: selection.windows date {raw['date']!r} is not ISO") from exc
    bbox: tuple[float, float, float, float] | None = None
    if raw.get("bbox"):
        minx, miny, maxx, maxy = (float(v) for v in raw["bbox"])
        bbox = (minx, miny, maxx, maxy)
    return EventWindow(
        name=str(raw.get("name", raw["date"])),
        date=date if date.tzinfo else date.replace(tzinfo=UTC),
        pre_days=int(raw.get("pre_days", 30)),
        post_days=int(raw.get("post_days", 30)),
        bbox=bbox,
    )


def _archive_windows(raw: Mapping[str, Any], meta: Mapping[str, Any]) -> list[EventWindow]:
    aois = {a["name"]: a for a in meta.get("aois", [])}
    out = []
    for event in meta.get("events", []):
        aoi = aois.get(event.get("aoi"), {})
        out.append(
            _window(
                {
                    "name": event["code"],
                    "date": event["event_date"],
                    "pre_days": raw.get("pre_days", 30),
                    "post_days": raw.get("post_days", 30),
                    "bbox": aoi.get("bbox_wgs84"),
                },
                "archive events",
            )
        )
    return out


def window_queries(query: SearchQuery, rules: SelectionRules) -> list[SearchQuery]:
    """One search per event window (clipped to the search range), or the query itself."""
    if not rules.windows:
        return [query]
    out = []
    for w in rules.windows:
        start = max(query.start, w.date - timedelta(days=w.pre_days))
        end = min(query.end, w.date + timedelta(days=w.post_days))
        if start <= end:
            out.append(replace(query, start=start, end=end, bbox=w.bbox or query.bbox))
    return out


def select_scenes(
    scenes: Iterable[Scene], rules: SelectionRules, max_cloud_cover: float
) -> Selection:
    """Apply the rules; every scene left out is recorded with its reason."""
    kept: list[Scene] = []
    rejected: list[Rejection] = []
    for scene in _unique(scenes):
        reason = _rejection(scene, rules, max_cloud_cover)
        if reason:
            rejected.append(Rejection(scene.item_id, scene.collection, reason))
        else:
            kept.append(_with_channels(_with_phases(scene, rules.windows), rules))
    if rules.dedupe_reprocessed:
        kept, superseded = dedupe_reprocessed(kept)
        rejected += superseded
    kept.sort(key=lambda s: (s.datetime, s.item_id))
    rejected.sort(key=lambda r: r.item_id)
    return Selection(tuple(kept), tuple(rejected))


def _unique(scenes: Iterable[Scene]) -> list[Scene]:
    """Scenes found by several window searches count once."""
    return list({s.item_id: s for s in scenes}.values())


def _rejection(scene: Scene, rules: SelectionRules, max_cloud_cover: float) -> str | None:
    if scene.cloud_cover is not None and scene.cloud_cover > max_cloud_cover:
        return f"cloud cover {scene.cloud_cover:.1f} > {max_cloud_cover:g}"
    if rules.orbit_states and (scene.orbit_state or "") not in rules.orbit_states:
        return f"orbit {scene.orbit_state} not in {list(rules.orbit_states)}"
    if rules.windows and not _phases(scene, rules.windows):
        return "outside every event window"
    return _s1_rejection(scene, rules) if scene.sensor == "s1" else None


def _s1_rejection(scene: Scene, rules: SelectionRules) -> str | None:
    mode = (scene.instrument_mode or "").upper()
    if rules.s1_instrument_modes and mode not in rules.s1_instrument_modes:
        return f"instrument mode {mode or '?'} not in {list(rules.s1_instrument_modes)}"
    channels = s1_channels(scene, rules)
    pols = list(scene.polarizations)
    if not any(channels.values()):
        if rules.s1_hh_hv == "reject" and any(p in CO_CROSS.values() for p in _available(scene)):
            return (
                f"HH/HV scene (polarizations {pols}); to use HH as VV and HV as VH set "
                "selection.s1_hh_hv: as_vv_vh"
            )
        return f"no usable polarization (polarizations {pols}, assets {sorted(scene.assets)})"
    have = {p for p in channels.values() if p} | {c for c, p in channels.items() if p}
    missing = [p for p in rules.s1_polarizations if p not in have]
    if missing:
        return (
            f"polarizations {pols} lack {missing} (required by selection.s1_polarizations; "
            "with selection.s1_missing_polarization: fill, list only the ones a scene must have)"
        )
    lacking = [c for c, p in channels.items() if p is None]
    if lacking and rules.s1_missing_polarization == "reject":
        return (
            f"polarizations {pols} give no {'/'.join(lacking)} channel; to keep the scene with "
            f"{'/'.join(lacking)} filled (-50 dB, flagged) set selection.s1_missing_polarization: fill"
        )
    return None


def _available(scene: Scene) -> list[str]:
    """The polarisations the scene both declares and has an asset for."""
    return [p for p in scene.polarizations if p in scene.assets]


def s1_channels(scene: Scene, rules: SelectionRules) -> dict[str, str | None]:
    """Corpus channel (VV, VH) -> the scene's polarisation read into it, or None (missing):
    VV/VH themselves, else under ``s1_hh_hv: as_vv_vh`` co-pol HH and cross-pol HV."""
    available = _available(scene)
    out: dict[str, str | None] = {}
    for channel in S1_BANDS:
        if channel in available:
            out[channel] = channel
        elif rules.s1_hh_hv == "as_vv_vh" and CO_CROSS[channel] in available:
            out[channel] = CO_CROSS[channel]
        else:
            out[channel] = None
    return out


def _with_channels(scene: Scene, rules: SelectionRules) -> Scene:
    """Record the channel mapping of an S1 scene that is not plain VV + VH (the reader and the
    records use it: ``extra["s1_channels"]``)."""
    if scene.sensor != "s1":
        return scene
    channels = s1_channels(scene, rules)
    if channels == {c: c for c in S1_BANDS}:
        return scene
    return replace(scene, extra={**scene.extra, "s1_channels": channels})


def _phases(scene: Scene, windows: Sequence[EventWindow]) -> list[dict[str, str]]:
    out = []
    for w in windows:
        phase = w.phase(scene.datetime)
        if phase and (w.bbox is None or _overlaps(scene.bbox, w.bbox)):
            out.append({"event": w.name, "phase": phase})
    return out


def _overlaps(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _with_phases(scene: Scene, windows: Sequence[EventWindow]) -> Scene:
    if not windows:
        return scene
    return replace(scene, extra={**scene.extra, "event_windows": _phases(scene, windows)})


def acquisition_key(scene: Scene) -> tuple[str, ...]:
    """Scenes with the same key are the same acquisition (products differ in processing only)."""
    take = _BASELINE_SUFFIX.sub("", str(scene.extra.get("datatake_id") or ""))
    when = scene.datetime.strftime("%Y%m%dT%H%M%S")
    if scene.sensor == "s2":
        return (
            scene.collection,
            scene.platform,
            take or when,
            str(scene.extra.get("tile") or scene.epsg),
        )
    return (scene.collection, scene.platform, take, when, str(scene.relative_orbit))


def processing_rank(scene: Scene) -> tuple[str, str, str]:
    """Newer processing sorts later: baseline, then processing time, then id."""
    return (scene.processing_baseline or "", str(scene.extra.get("processed") or ""), scene.item_id)


def dedupe_reprocessed(scenes: Sequence[Scene]) -> tuple[list[Scene], list[Rejection]]:
    """Keep the newest processing of every acquisition; the others are recorded as superseded."""
    groups: dict[tuple[str, ...], list[Scene]] = {}
    for scene in scenes:
        groups.setdefault(acquisition_key(scene), []).append(scene)
    kept, superseded = [], []
    for group in groups.values():
        group.sort(key=processing_rank)
        kept.append(group[-1])
        superseded += [
            Rejection(s.item_id, s.collection, f"superseded by reprocessed {group[-1].item_id}")
            for s in group[:-1]
        ]
    return kept, superseded
