"""The corpus datasheet (``clm report``): one self-contained HTML page.

Sections: composition (chips per sensor and split), class and crisis distributions per
sensor and split, label co-occurrence, acquisition (month, season), quality (cloud and
nodata fractions), caption length, maps of chip locations (country basemap; per region the
footprints, crisis event outlines and a scale bar), sample chips with their captions (S2
true colour from B04/B03/B02, S1 VV/VH false colour) and the provenance summary (recipe,
software, sources, label products, events, lock and versions). Figures are inline SVG
and base64 PNG, so the file can be mailed or archived alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import geopandas as gpd
import h5py
import numpy as np
import pandas as pd
import shapely

from pipeline.config import LabelsConfig
from pipeline.corpus.lock import from_plain
from pipeline.corpus.report_maps import Outline, countries, overview_map, region_map
from pipeline.corpus.report_plots import bar_chart, chip_png, heatmap
from pipeline.corpus.report_stats import (
    caption_summary,
    caption_word_bins,
    cooccurrence,
    fraction_bins,
    month_counts,
    season_counts,
)
from pipeline.corpus.versions import versions
from pipeline.errors import CorpusError, PipelineError
from pipeline.labels.annotate import crisis_events
from pipeline.labels.taxonomy import CRISIS_LABELS, LAND_COVER_LABELS
from pipeline.storage import write_text_atomic

REPORT_FILE = "datasheet.html"
SERIES = (("s1", "train"), ("s1", "corpus"), ("s2", "train"), ("s2", "corpus"))
SAMPLES_PER_SENSOR = 6
SEASONS = ("winter", "spring", "summer", "autumn")
STYLE = """
body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;
font-size:.9em;text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}
.chips{display:flex;flex-wrap:wrap;gap:14px}.chip{width:250px;font-size:.8em}
.chip img{display:block;border:1px solid #999}.maps{display:flex;flex-wrap:wrap;gap:10px}
code{font-size:.85em;background:#f6f6f6;padding:0 3px}.muted{color:#666}
.key{word-break:break-all}
"""


def write_report(corpus: Path, out: Path | None = None) -> Path:
    """Render the datasheet of ``corpus`` to ``out`` (default ``corpus/datasheet.html``)."""
    corpus = Path(corpus)
    meta, manifest = _read(corpus)
    lock = _optional_json(corpus / "corpus.lock")
    sections = [
        _header(manifest, meta),
        _composition(meta),
        _distributions(meta),
        _crisis_events(meta),
        _cooccurrence(meta),
        _acquisition(meta),
        _quality(meta),
        _captions(meta),
        _maps(meta, event_outlines(manifest)),
        _samples(corpus, meta),
        _provenance(corpus, manifest, lock),
    ]
    html = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Datasheet: {escape(manifest['name'])}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(sections)}</body></html>\n"
    )
    path = Path(out) if out is not None else corpus / REPORT_FILE
    write_text_atomic(path, html)
    return path


def _read(corpus: Path) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    meta_path, manifest_path = corpus / "metadata.parquet", corpus / "manifest.json"
    if not meta_path.is_file() or not manifest_path.is_file():
        raise CorpusError(
            f"{corpus} is not a corpus (metadata.parquet and manifest.json expected); "
            "build it first with `clm build --config CONFIG`"
        )
    return gpd.read_parquet(meta_path).sort_values("key"), json.loads(manifest_path.read_text())


def _optional_json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text())) if path.is_file() else {}


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], left: int = 1) -> str:
    def cells(values: Sequence[Any], tag: str) -> str:
        return "".join(
            f"<{tag}{' class=l' if i < left else ''}>{escape(str(v))}</{tag}>"
            for i, v in enumerate(values)
        )

    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
    return f"<table><tr>{cells(header, 'th')}</tr>{body}</table>"


def _header(manifest: Mapping[str, Any], meta: pd.DataFrame) -> str:
    software = manifest["software"]
    return (
        f"<h1>Datasheet: CrisisLandMark corpus <code>{escape(manifest['name'])}</code></h1>"
        f"<p>{len(meta)} chips (120 x 120 px at 10 m), each paired with a structured annotation "
        "and captions; optical (Sentinel-2 L2A, 12 bands) and SAR (Sentinel-1 GRD, VV/VH dB) "
        f"chips are unpaired. Built by {escape(software['package'])} {escape(software['version'])} "
        f"from config <code>{escape(manifest['config_digest'])}</code>.</p>"
    )


def _composition(meta: pd.DataFrame) -> str:
    counts = meta.groupby(["sensor", "split"]).size()
    rows = [
        (
            sensor.upper(),
            int(counts.get((sensor, "train"), 0)),
            int(counts.get((sensor, "corpus"), 0)),
        )
        for sensor in ("s1", "s2")
    ]
    rows.append(("all", sum(r[1] for r in rows), sum(r[2] for r in rows)))
    return "<h2>Composition</h2>" + _table(("sensor", "train", "corpus (retrieval)"), rows)


def _series_counts(meta: pd.DataFrame, labels: Sequence[str]) -> dict[str, list[int]]:
    out = {}
    for sensor, split in SERIES:
        group = meta[(meta["sensor"] == sensor) & (meta["split"] == split)]
        have = [set(ls) for ls in group["labels"]]
        out[f"{sensor.upper()} {split}"] = [sum(label in h for h in have) for label in labels]
    return out


def _distributions(meta: pd.DataFrame) -> str:
    crisis = list(CRISIS_LABELS.values())
    cover = _series_counts(meta, LAND_COVER_LABELS)
    disaster = _series_counts(meta, crisis)
    table = _table(
        ("label", *cover),
        [(label, *(cover[s][i] for s in cover)) for i, label in enumerate(LAND_COVER_LABELS)]
        + [(label, *(disaster[s][i] for s in disaster)) for i, label in enumerate(crisis)],
    )
    return (
        "<h2>Class and crisis distributions</h2><p class=muted>Chips carrying each reference "
        "label, per sensor and split (a chip has several labels).</p>"
        f"<h3>Land cover</h3>{bar_chart(LAND_COVER_LABELS, cover)}"
        f"<h3>Crisis</h3>{bar_chart(crisis, disaster)}{table}"
    )


def _crisis_events(meta: pd.DataFrame) -> str:
    rows = []
    events = sorted({e for es in meta["crisis_events"] for e in es})
    for event in events:
        hit = meta[[event in list(es) for es in meta["crisis_events"]]]
        counts = hit.groupby(["sensor", "split"]).size()
        rows.append((event, *(int(counts.get(k, 0)) for k in SERIES)))
    header = ("event (post-event chips)", *(f"{s.upper()} {p}" for s, p in SERIES))
    return "<h3>Crisis events</h3>" + (_table(header, rows) if rows else "<p>none</p>")


def _cooccurrence(meta: pd.DataFrame) -> str:
    present = [*LAND_COVER_LABELS, *CRISIS_LABELS.values()]
    matrix = cooccurrence(meta, present)
    keep = [i for i in range(len(present)) if matrix[i, i]]
    labels = [present[i] for i in keep]
    return (
        "<h3>Label co-occurrence</h3><p class=muted>Chips carrying both labels, both sensors and "
        "splits; the diagonal counts the chips carrying each label.</p>"
        + heatmap(labels, matrix[np.ix_(keep, keep)])
    )


def _acquisition(meta: pd.DataFrame) -> str:
    months, by_month = month_counts(meta)
    return (
        "<h2>Acquisition</h2><p class=muted>Chips per acquisition month and per meteorological "
        "season (flipped south of the equator), per sensor.</p>"
        f"<h3>Month</h3>{bar_chart(months, by_month)}"
        f"<h3>Season</h3>{bar_chart(list(SEASONS), season_counts(meta))}"
    )


def _quality(meta: pd.DataFrame) -> str:
    cloud_bins, cloud = fraction_bins(meta, "cloud_fraction")
    nodata_bins, nodata = fraction_bins(meta, "nodata_fraction")
    return (
        "<h2>Quality</h2><p class=muted>Chips per cloud fraction (S2 scene classification; "
        "0 for S1) and per nodata fraction of the chip, per sensor.</p>"
        f"<h3>Cloud fraction</h3>{bar_chart(cloud_bins, cloud)}"
        f"<h3>Nodata fraction</h3>{bar_chart(nodata_bins, nodata)}"
    )


def _captions(meta: pd.DataFrame) -> str:
    bins, words = caption_word_bins(meta)
    table = _table(
        ("sensor", "caption", "min chars", "median chars", "max chars", "max words"),
        caption_summary(meta),
        left=2,
    )
    return (
        "<h2>Caption length</h2><p class=muted>Natural-language captions per length in words, "
        "per sensor (text encoders truncate long captions: CLIP-style tokenizers at 77 "
        f"tokens).</p>{bar_chart(bins, words)}{table}"
    )


def event_outlines(manifest: Mapping[str, Any]) -> list[Outline]:
    """Crisis event areas of the recipe's event sources; none when they cannot be read
    (moved or deleted since the build): the maps then show the chips alone."""
    try:
        labels = from_plain(LabelsConfig, manifest["config"]["labels"])
        return [Outline(e.event_id, e.geometry) for e in crisis_events(labels)]
    except (PipelineError, OSError, KeyError, TypeError):
        return []


def _maps(meta: gpd.GeoDataFrame, events: Sequence[Outline]) -> str:
    centres = shapely.centroid(np.asarray(meta.geometry))
    points = [(p.x, p.y, s) for p, s in zip(centres, meta["split"], strict=True)]
    regions = []
    panels = []
    for country, group in meta.groupby(meta["country"].fillna("unknown")):
        c = shapely.centroid(group.geometry.union_all())
        regions.append((c.x, c.y, str(country)))
        squares = [(g.bounds, s) for g, s in zip(group.geometry, group["split"], strict=True)]
        panels.append(region_map(squares, f"{country} ({len(group)} chips)", events))
    basemap = (
        "Countries: Natural Earth 1:110m (public domain)."
        if countries()
        else "No country basemap (Natural Earth file not installed)."
    )
    outlines = (
        f"Orange: crisis event areas ({len(events)} events)."
        if events
        else "No crisis event areas (event files not readable)."
    )
    return (
        "<h2>Chip locations</h2><p class=muted>Red: train, blue: retrieval corpus. Regions show "
        f"each chip footprint (1.2 km), all dates and sensors overlaid. {outlines} "
        f"{basemap}</p>{overview_map(points, regions)}<div class=maps>{''.join(panels)}</div>"
    )


def pick_samples(meta: pd.DataFrame, sensor: str, n: int = SAMPLES_PER_SENSOR) -> list[str]:
    """Deterministic, diverse samples: one chip per label, crisis labels first, rarest next."""
    group = meta[meta["sensor"] == sensor]
    frequency = {
        label: sum(label in set(ls) for ls in group["labels"]) for label in LAND_COVER_LABELS
    }
    order = list(CRISIS_LABELS.values()) + sorted(
        (label for label in frequency if frequency[label]), key=lambda k: (frequency[k], k)
    )
    chosen: list[str] = []
    for label in order:
        keys = [k for k, ls in zip(group["key"], group["labels"], strict=True) if label in set(ls)]
        fresh = [k for k in keys if k not in chosen]
        if fresh and len(chosen) < n:
            chosen.append(fresh[0])
    return chosen


def _samples(corpus: Path, meta: pd.DataFrame) -> str:
    cards = []
    indexed = meta.set_index("key")
    for sensor in ("s2", "s1"):
        for key in pick_samples(meta, sensor):
            row = indexed.loc[key]
            with h5py.File(corpus / "shards" / row["shard"], "r") as h5:
                image = h5[key]["image"][()]
            cards.append(
                f"<div class=chip><img src='{chip_png(image, sensor)}' width=240 height=240 "
                f"alt='{escape(key)}'><b>{escape(row['caption_reference'])}</b><br>"
                f"{escape(row['caption'])}<br><span class='muted key'>{escape(key)} "
                f"({escape(row['split'])})</span></div>"
            )
    return (
        "<h2>Sample chips</h2><p class=muted>S2: true colour (B04, B03, B02); "
        "S1: false colour (R = VV, G = VH, B = VV - VH, in dB). Bold: reference caption.</p>"
        f"<div class=chips>{''.join(cards)}</div>"
    )


def _provenance(corpus: Path, manifest: Mapping[str, Any], lock: Mapping[str, Any]) -> str:
    rule = manifest.get("split_rule", {})
    lines = [
        ("software", f"{manifest['software']['package']} {manifest['software']['version']}"),
        ("config digest", manifest["config_digest"]),
        ("split", ", ".join(f"{k} {v}" for k, v in rule.items())),
        ("scenes", ", ".join(f"{k} {v}" for k, v in manifest["scenes"].items())),
        ("rejected chips", _rejections(manifest)),
        ("views", ", ".join(manifest.get("views", []))),
    ]
    if lock:
        lines += _lock_lines(lock)
    html = "<h2>Provenance</h2>" + _table(("what", "value"), lines, left=2)
    return html + _versions_table(corpus)


def _rejections(manifest: Mapping[str, Any]) -> str:
    parts = []
    for sensor, counts in manifest["chips"].items():
        reasons = ", ".join(f"{k} {v}" for k, v in counts["rejected"].items()) or "none"
        parts.append(f"{sensor.upper()}: {counts['kept']} kept of {counts['planned']} ({reasons})")
    return "; ".join(parts)


def _lock_lines(lock: Mapping[str, Any]) -> list[tuple[str, str]]:
    assets = [a for item in lock["items"] for a in item["assets"].values()]
    hashed = sum(bool(a.get("sha256")) for a in assets)
    tagged = sum(bool(a.get("etag")) for a in assets)
    return [
        ("source items", f"{len(lock['items'])} (watermark {lock['watermark']})"),
        (
            "source assets",
            f"{len(assets)}: {hashed} sha256, {tagged} ETag/size, "
            f"{len(assets) - hashed - tagged} unverifiable",
        ),
        ("label products", ", ".join(Path(p["href"]).name for p in lock["labels"]) or "none"),
        (
            "crisis events",
            ", ".join(Path(e["href"]).name for e in lock["events"]) or "none",
        ),
        (
            "corpus.lock",
            f"{len(lock['outputs'])} output files checksummed; regenerate with "
            "`clm rebuild --lock corpus.lock`",
        ),
    ]


def _versions_table(corpus: Path) -> str:
    rows = []
    for path in versions(corpus):
        diff = _optional_json(path / "diff.json")
        added = sum(v["chips"] for v in diff.get("added", {}).values())
        removed = sum(v["chips"] for v in diff.get("removed", {}).values())
        rows.append((path.name, added, removed, len(diff.get("items_added", []))))
    if not rows:
        return ""
    return "<h3>Versions</h3>" + _table(("version", "chips added", "removed", "items added"), rows)
