"""More natural-language renderings of a caption record, for caption augmentation.

Every template is deterministic for a record; ``sample_caption`` draws one of the
variants with a seeded generator so training runs are reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import date
from typing import Any

from pipeline.captions.render import (
    COVER_NOUN,
    proportion_word,
    reference_caption,
    sentence_caption,
)

NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven"}
SENSOR_SHORT = {"s2": "Optical satellite image", "s1": "Radar satellite image"}


def caption_variants(record: Mapping[str, Any]) -> dict[str, str]:
    """All renderings of a record, keyed by template name (``reference`` first)."""
    variants = {
        "reference": reference_caption(record),
        "sentence": sentence_caption(record),
        "short": short_caption(record),
        "land_use": land_use_caption(record),
    }
    crisis = crisis_caption(record)
    if crisis:
        variants["crisis"] = crisis
    return variants


def sample_caption(captions: Mapping[str, str], rng: random.Random) -> str:
    """One caption drawn uniformly among the non-empty variants (seeded ``rng``)."""
    names = sorted(k for k, v in captions.items() if v)
    return captions[rng.choice(names)]


def _place(record: Mapping[str, Any]) -> str:
    loc = record["location"]
    return (
        f" near {loc['place']}, {loc['country']}" if loc.get("place") and loc.get("country") else ""
    )


def _cover_nouns(
    record: Mapping[str, Any], limit: int = 3, exclude: tuple[str, ...] = ()
) -> list[str]:
    fractions = record["land_cover"]["fractions"]
    ranked = sorted(
        ((f, n) for n, f in fractions.items() if f >= 0.1 and n not in exclude), reverse=True
    )
    ranked = ranked[:limit]
    return [COVER_NOUN.get(n, n) for _, n in ranked]


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def short_caption(record: Mapping[str, Any]) -> str:
    """E.g. 'Radar satellite image of cropland and water near Padova, Italy.'"""
    nouns = _cover_nouns(record) or [lab for lab in record["labels"]][:3] or ["land"]
    return f"{SENSOR_SHORT[record['sensor']['sensor']]} of {_join(nouns)}{_place(record)}."


def land_use_caption(record: Mapping[str, Any]) -> str:
    """E.g. 'Land use: non-irrigated arable land (70 %), water bodies (30 %).'"""
    classes = [c for c in record["land_use"]["classes"] if c["fraction"] >= 0.05][:4]
    if not classes:
        return ""
    listed = ", ".join(f"{c['name'].lower()} ({round(c['fraction'] * 100)} %)" for c in classes)
    return f"Land use: {listed}."


def crisis_caption(record: Mapping[str, Any]) -> str:
    """E.g. 'Sentinel-1 radar image near Padova, Italy, two days after the November 2021
    riverine flood; about a third of the area is flooded cropland.'"""
    post = [c for c in record["crisis"] if c["phase"] == "post"]
    if not post:
        return ""
    event = post[0]
    sensor = (
        "Sentinel-2 optical image"
        if record["sensor"]["sensor"] == "s2"
        else "Sentinel-1 radar image"
    )
    when = date.fromisoformat(event["event_date"][:10])
    kind = event.get("event_subtype") or event["hazard"]
    days = event["days_since_event"]
    delay = (
        "on the day of"
        if days == 0
        else f"{NUMBER_WORDS.get(days, str(days))} day{'s' if days > 1 else ''} after"
    )
    nouns = _cover_nouns(record, limit=1, exclude=("water", "snow and ice"))
    what = {"flood": "flooded", "wildfire": "burned", "earthquake": "damaged"}[event["hazard"]]
    area = f"{what} {nouns[0]}" if nouns else f"{what} land"
    share = proportion_word(event["affected_fraction"])
    return (
        f"{sensor}{_place(record)}, {delay} the {when:%B %Y} {kind}; {share} of the area is {area}."
    )
