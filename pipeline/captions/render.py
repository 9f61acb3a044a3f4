"""Render a caption record as text: the reference string and natural-language sentences."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

SENSOR_PHRASE = {"s2": "Sentinel-2 optical image", "s1": "Sentinel-1 radar image"}
COVER_NOUN = {
    "water": "water",
    "trees": "trees",
    "grass": "grassland",
    "flooded vegetation": "flooded vegetation",
    "crops": "cropland",
    "shrub and scrub": "shrub and scrub",
    "built": "built-up area",
    "bare": "bare ground",
    "snow and ice": "snow and ice",
}
HAZARD_PHRASE = {"flood": "flood", "wildfire": "wildfire", "earthquake": "earthquake"}


def reference_caption(record: Mapping[str, Any]) -> str:
    """The CrisisLandMark reference format: sorted label names joined by '. '."""
    return ". ".join(sorted(record["labels"]))


def sentence_caption(record: Mapping[str, Any]) -> str:
    """One deterministic natural-language description of the chip."""
    parts = [f"{_subject(record)}, {_when(record)}"]
    cover = _cover_phrase(record["land_cover"]["fractions"])
    if cover:
        parts.append(cover)
    land_use = _land_use_phrase(record["land_use"]["classes"])
    if land_use:
        parts.append(land_use)
    parts.extend(_crisis_phrase(c) for c in record["crisis"])
    return ". ".join(p[0].upper() + p[1:] for p in parts) + "."


def _subject(record: Mapping[str, Any]) -> str:
    text = SENSOR_PHRASE[record["sensor"]["sensor"]]
    loc = record["location"]
    if loc.get("place") and loc.get("country"):
        return f"{text} near {loc['place']}, {loc['country']}"
    return f"{text} at {abs(loc['lat']):.2f}°{'N' if loc['lat'] >= 0 else 'S'}, {abs(loc['lon']):.2f}°{'E' if loc['lon'] >= 0 else 'W'}"


def _when(record: Mapping[str, Any]) -> str:
    day = date.fromisoformat(record["acquisition"]["date"])
    return f"taken on {day.day} {day:%B %Y} ({record['acquisition']['season']})"


def proportion_word(fraction: float) -> str:
    if fraction >= 0.9:
        return "almost entirely"
    if fraction >= 0.6:
        return "mostly"
    if fraction >= 0.42:
        return "about half"
    if fraction >= 0.28:
        return "about a third"
    if fraction >= 0.18:
        return "about a fifth"
    if fraction >= 0.08:
        return "some"
    return "a little"


def _cover_phrase(fractions: Mapping[str, float]) -> str:
    ranked = sorted(((f, n) for n, f in fractions.items() if f >= 0.05), reverse=True)[:3]
    if not ranked:
        return ""
    (top_f, top), rest = ranked[0], ranked[1:]
    text = f"{proportion_word(top_f)} {COVER_NOUN.get(top, top)} ({round(top_f * 100)} %)"
    if rest:
        others = [f"{COVER_NOUN.get(n, n)} ({round(f * 100)} %)" for f, n in rest]
        text += " with " + " and ".join(others)
    return text


def _land_use_phrase(classes: list[Mapping[str, Any]]) -> str:
    names = [c["name"].lower() for c in classes if c["fraction"] >= 0.1][:3]
    return "land use: " + ", ".join(names) if names else ""


def _crisis_phrase(crisis: Mapping[str, Any]) -> str:
    hazard = HAZARD_PHRASE[crisis["hazard"]]
    days = crisis["days_since_event"]
    event = f"the {hazard} {crisis['event_id'].split('_')[0]}"
    if crisis["phase"] == "pre":
        return f"{_days(-days)} before {event}"
    when = "on the day of" if days == 0 else f"{_days(days)} after"
    return f"{crisis['label']} {when} {event}, covering {proportion_word(crisis['affected_fraction'])} of the image"


def _days(days: int) -> str:
    if days == 1:
        return "one day"
    if days < 60:
        return f"{days} days"
    return f"{round(days / 30.4)} months"
