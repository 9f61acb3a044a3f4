"""Figures of the datasheet, self-contained: inline SVG charts and maps, chips as base64 PNG."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Mapping, Sequence
from html import escape

import numpy as np
from PIL import Image

from pipeline.corpus.preview import chip_rgb

SERIES_COLOURS = ("#1f77b4", "#aec7e8", "#d62728", "#ff9896")  # s1 train/corpus, s2 train/corpus
SPLIT_COLOURS = {"train": "#d62728", "corpus": "#1f77b4"}


def bar_chart(
    categories: Sequence[str], series: Mapping[str, Sequence[int]], width: int = 640
) -> str:
    """Horizontal grouped bars: one group per category, one bar per series."""
    names = list(series)
    bar, gap, left = 9, 8, 150
    height = len(categories) * (bar * len(names) + gap) + 40
    peak = max([1, *(v for values in series.values() for v in values)])
    scale = (width - left - 60) / peak
    parts = [_svg_open(width, height)]
    for i, category in enumerate(categories):
        top = 10 + i * (bar * len(names) + gap)
        parts.append(_text(left - 6, top + bar * len(names) / 2 + 4, category, anchor="end"))
        for j, name in enumerate(names):
            value = series[name][i]
            y = top + j * bar
            colour = SERIES_COLOURS[j % len(SERIES_COLOURS)]
            parts.append(
                f'<rect x="{left}" y="{y}" width="{value * scale:.1f}" height="{bar - 1}" '
                f'fill="{colour}"><title>{escape(name)}: {value}</title></rect>'
            )
            if value:
                parts.append(_text(left + value * scale + 3, y + bar - 1, str(value), size=8))
    parts.append(_legend(names, 10, height - 18))
    parts.append("</svg>")
    return "".join(parts)


def _legend(names: Sequence[str], x: float, y: float) -> str:
    items = []
    for j, name in enumerate(names):
        colour = SERIES_COLOURS[j % len(SERIES_COLOURS)]
        items.append(f'<rect x="{x + j * 130}" y="{y}" width="10" height="10" fill="{colour}"/>')
        items.append(_text(x + j * 130 + 14, y + 9, name))
    return "".join(items)


def _svg_open(width: float, height: float) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0f}" '
        f'viewBox="0 0 {width} {height:.0f}" font-family="sans-serif" font-size="11">'
    )


def _text(x: float, y: float, text: str, anchor: str = "start", size: int = 11) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}">'
        f"{escape(text)}</text>"
    )


def overview_map(
    points: Sequence[tuple[float, float, str]], regions: Sequence[tuple[float, float, str]]
) -> str:
    """Chip centres (lon, lat, split) on a lon/lat graticule, with region names."""
    lons = [p[0] for p in points]
    lats = [p[1] for p in points]
    west, east = math.floor(min(lons) / 5) * 5 - 5, math.ceil(max(lons) / 5) * 5 + 5
    south, north = math.floor(min(lats) / 5) * 5 - 5, math.ceil(max(lats) / 5) * 5 + 5
    width = 640
    kx = (width - 40) / (east - west)
    ky = kx / math.cos(math.radians((north + south) / 2))
    height = (north - south) * ky + 40

    def xy(lon: float, lat: float) -> tuple[float, float]:
        return 20 + (lon - west) * kx, 20 + (north - lat) * ky

    parts = [
        _svg_open(width, height),
        f'<rect width="{width}" height="{height:.0f}" fill="#f4f8fb"/>',
    ]
    parts += _graticule(west, east, south, north, xy)
    for lon, lat, split in points:
        x, y = xy(lon, lat)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{SPLIT_COLOURS[split]}"/>')
    for lon, lat, name in regions:
        x, y = xy(lon, lat)
        parts.append(_text(x + 6, y - 6, name, size=12))
    parts.append("</svg>")
    return "".join(parts)


def _graticule(
    west: int, east: int, south: int, north: int, xy: Callable[[float, float], tuple[float, float]]
) -> list[str]:
    lines = []
    for lon in range(west, east + 1, 5):
        (x0, y0), (x1, y1) = xy(lon, south), xy(lon, north)
        lines.append(
            f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" stroke="#ccd"/>'
        )
        lines.append(_text(x0, y0 + 12, f"{lon}°", anchor="middle", size=9))
    for lat in range(south, north + 1, 5):
        (x0, y0), (x1, y1) = xy(west, lat), xy(east, lat)
        lines.append(
            f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" stroke="#ccd"/>'
        )
        lines.append(_text(x0 - 2, y0 + 3, f"{lat}°", anchor="end", size=9))
    return lines


def region_map(squares: Sequence[tuple[Sequence[float], str]], title: str, size: int = 300) -> str:
    """Chip footprints (lon/lat bbox, split) of one region, to scale."""
    boxes = np.array([b for b, _ in squares], dtype=float)
    west, south = boxes[:, 0].min(), boxes[:, 1].min()
    east, north = boxes[:, 2].max(), boxes[:, 3].max()
    aspect = math.cos(math.radians((north + south) / 2))
    k = (size - 20) / max((east - west) * aspect, north - south, 1e-9)
    height = (north - south) * k + 40
    parts = [_svg_open(size, height), _text(size / 2, 14, title, anchor="middle", size=12)]
    for (minx, miny, maxx, maxy), split in squares:
        x = 10 + (minx - west) * aspect * k
        y = 24 + (north - maxy) * k
        w, h = (maxx - minx) * aspect * k, (maxy - miny) * k
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
            f'fill="{SPLIT_COLOURS[split]}" fill-opacity="0.35" stroke="#333" stroke-width="0.3"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def chip_png(image: np.ndarray, sensor: str, scale: int = 2) -> str:
    """A data URI of a chip rendered for display: S2 true colour, S1 VV/VH false colour."""
    picture = Image.fromarray(chip_rgb(image, sensor), "RGB")
    picture = picture.resize(
        (picture.width * scale, picture.height * scale), Image.Resampling.NEAREST
    )
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
