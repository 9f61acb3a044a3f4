"""The numbers behind the datasheet's distributions, per sensor: acquisition month and
season, cloud and nodata fractions, caption length, and label co-occurrence."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd
import shapely

from pipeline.captions.record import season

SENSORS = ("s1", "s2")
SEASONS = ("winter", "spring", "summer", "autumn")
FRACTION_EDGES = (0.0, 0.001, 0.01, 0.02, 0.05, 0.1, 1.0)
WORD_BIN = 10


def _per_sensor(meta: pd.DataFrame, values: pd.Series, categories: Sequence[str]) -> dict:
    """Chips per category for each sensor: series name -> counts in ``categories`` order."""
    out = {}
    for sensor in SENSORS:
        counts = values[meta["sensor"] == sensor].value_counts()
        out[sensor.upper()] = [int(counts.get(c, 0)) for c in categories]
    return out


def month_counts(meta: pd.DataFrame) -> tuple[list[str], dict[str, list[int]]]:
    """Chips per acquisition month (every month from the first to the last) per sensor."""
    when = pd.to_datetime(meta["datetime"], utc=True)
    months = when.dt.strftime("%Y-%m")
    span = pd.period_range(when.min().strftime("%Y-%m"), when.max().strftime("%Y-%m"), freq="M")
    categories = [str(p) for p in span]
    return categories, _per_sensor(meta, months, categories)


def season_counts(meta: pd.DataFrame) -> dict[str, list[int]]:
    """Chips per meteorological season of acquisition (by hemisphere of the chip) per sensor."""
    lats = shapely.get_y(shapely.centroid(np.asarray(meta.geometry)))
    names = [
        season(datetime.fromisoformat(t), float(lat))
        for t, lat in zip(meta["datetime"], lats, strict=True)
    ]
    return _per_sensor(meta, pd.Series(names, index=meta.index), SEASONS)


def fraction_bins(
    meta: pd.DataFrame, column: str, edges: Sequence[float] = FRACTION_EDGES
) -> tuple[list[str], dict[str, list[int]]]:
    """Chips per bin of a fraction column (``cloud_fraction``, ``nodata_fraction``); the first
    bin holds exact zeros, the others are ``(low, high]``."""
    pairs = itertools.pairwise(edges)
    names = ["0"] + [f"{lo * 100:g}-{hi * 100:g} %" for lo, hi in pairs]
    values = meta[column].astype(float)
    index = np.where(values <= 0, 0, np.searchsorted(edges, values, side="left"))
    binned = pd.Series([names[min(i, len(names) - 1)] for i in index], index=meta.index)
    return names, _per_sensor(meta, binned, names)


def caption_word_bins(meta: pd.DataFrame) -> tuple[list[str], dict[str, list[int]]]:
    """Chips per caption length in words (bins of ``WORD_BIN``) per sensor."""
    words = meta["caption"].str.split().str.len()
    top = int(words.max()) // WORD_BIN * WORD_BIN
    names = [f"{lo}-{lo + WORD_BIN - 1}" for lo in range(0, top + 1, WORD_BIN)]
    binned = (words // WORD_BIN).map(lambda i: names[int(i)])
    first = next(i for i, n in enumerate(names) if binned.eq(n).any())
    return names[first:], _per_sensor(meta, binned, names[first:])


def caption_summary(meta: pd.DataFrame) -> list[tuple[str, str, int, int, int, int]]:
    """Per sensor and caption kind: (sensor, kind, min, median, max characters, max words)."""
    rows = []
    for sensor in SENSORS:
        group = meta[meta["sensor"] == sensor]
        for column in ("caption", "caption_reference"):
            chars = group[column].str.len()
            if len(chars):
                words = int(group[column].str.split().str.len().max())
                stats = (int(chars.min()), int(chars.median()), int(chars.max()), words)
                rows.append((sensor.upper(), column, *stats))
    return rows


def cooccurrence(meta: pd.DataFrame, labels: Sequence[str]) -> np.ndarray:
    """Chips carrying both labels i and j; the diagonal counts the chips carrying label i."""
    have = np.array([[label in set(ls) for label in labels] for ls in meta["labels"]], dtype=int)
    have = have.reshape(len(meta), len(labels))
    return have.T @ have
