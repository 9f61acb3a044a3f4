"""Maps of the datasheet, inline SVG: chip locations over an offline country basemap, and per
region the chip footprints with the crisis event outlines and a scale bar.

The basemap is Natural Earth 1:110m countries (public domain) as shipped inside the pyogrio
wheel (a dependency of geopandas); where that file is missing the maps fall back to the
lon/lat graticule alone and say so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import box

from pipeline.corpus.report_plots import SPLIT_COLOURS, svg_open, svg_text

XY = Callable[[float, float], tuple[float, float]]
KM_PER_DEGREE = 111.32
LAND, SEA, BORDER, EVENT = "#efeadf", "#d7e6f0", "#9a9a9a", "#ff7f0e"


@dataclass(frozen=True)
class Outline:
    """A named area to draw (a country, a crisis event), EPSG:4326."""

    name: str
    geometry: Any


def basemap_path() -> Path:
    import pyogrio

    return (
        Path(pyogrio.__file__).parent / "tests/fixtures/naturalearth_lowres/naturalearth_lowres.shp"
    )


@lru_cache(maxsize=1)
def countries() -> tuple[Outline, ...]:
    """Natural Earth 1:110m country outlines; empty when the file is not installed."""
    path = basemap_path()
    if not path.is_file():
        return ()
    import pyogrio

    frame = pyogrio.read_dataframe(path, columns=["name"])
    return tuple(Outline(str(n), g) for n, g in zip(frame["name"], frame.geometry, strict=True))


def _path_d(geometry: Any, xy: XY) -> str:
    """SVG path data of the polygon rings of ``geometry``."""
    parts = []
    for polygon in getattr(geometry, "geoms", [geometry]):
        if not isinstance(polygon, shapely.Polygon) or polygon.is_empty:
            continue
        for ring in (polygon.exterior, *polygon.interiors):
            points = [xy(x, y) for x, y in ring.coords]
            parts.append("M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in points) + "Z")
    return "".join(parts)


def _outlines(outlines: Sequence[Outline], frame: Any, xy: XY, layer: str, style: str) -> str:
    paths = []
    for outline in outlines:
        clipped = shapely.clip_by_rect(outline.geometry, *frame.bounds)
        d = _path_d(clipped, xy)
        if d:
            paths.append(f'<path d="{d}" {style}><title>{outline.name}</title></path>')
    return f'<g id="{layer}">{"".join(paths)}</g>'


def overview_map(
    points: Sequence[tuple[float, float, str]], regions: Sequence[tuple[float, float, str]]
) -> str:
    """Chip centres (lon, lat, split) over the country basemap, with region names."""
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    west, east = math.floor(min(lons) / 5) * 5 - 5, math.ceil(max(lons) / 5) * 5 + 5
    south, north = math.floor(min(lats) / 5) * 5 - 5, math.ceil(max(lats) / 5) * 5 + 5
    width = 640
    kx = (width - 40) / (east - west)
    ky = kx / math.cos(math.radians((north + south) / 2))
    height = (north - south) * ky + 40

    def xy(lon: float, lat: float) -> tuple[float, float]:
        return 20 + (lon - west) * kx, 20 + (north - lat) * ky

    parts = [svg_open(width, height), f'<rect width="{width}" height="{height:.0f}" fill="{SEA}"/>']
    land = f'fill="{LAND}" stroke="{BORDER}" stroke-width="0.6"'
    parts.append(_outlines(countries(), box(west, south, east, north), xy, "basemap", land))
    parts += _graticule(west, east, south, north, xy)
    for lon, lat, split in points:
        x, y = xy(lon, lat)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{SPLIT_COLOURS[split]}"/>')
    for lon, lat, name in regions:
        x, y = xy(lon, lat)
        parts.append(svg_text(x + 6, y - 6, name, size=12))
    parts.append("</svg>")
    return "".join(parts)


def _graticule(west: int, east: int, south: int, north: int, xy: XY) -> list[str]:
    lines = []
    for lon in range(west, east + 1, 5):
        (x0, y0), (x1, y1) = xy(lon, south), xy(lon, north)
        lines.append(
            f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" stroke="#aab" '
            'stroke-width="0.4" stroke-dasharray="2,3"/>'
        )
        lines.append(svg_text(x0, y0 + 12, f"{lon}°", anchor="middle", size=9))
    for lat in range(south, north + 1, 5):
        (x0, y0), (x1, y1) = xy(west, lat), xy(east, lat)
        lines.append(
            f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" stroke="#aab" '
            'stroke-width="0.4" stroke-dasharray="2,3"/>'
        )
        lines.append(svg_text(x0 - 2, y0 + 3, f"{lat}°", anchor="end", size=9))
    return lines


def nice_length_km(span_km: float) -> float:
    """A round scale-bar length (1, 2 or 5 x 10^n km) of about a quarter of ``span_km``."""
    target = max(span_km / 4, 1e-3)
    power = 10 ** math.floor(math.log10(target))
    return max(step * power for step in (1, 2, 5) if step * power <= target)


def region_map(
    squares: Sequence[tuple[Sequence[float], str]],
    title: str,
    events: Sequence[Outline] = (),
    size: int = 320,
) -> str:
    """Chip footprints (lon/lat bbox, split) of one region to scale, over the country
    outlines, with the crisis event areas and a scale bar."""
    boxes = np.array([b for b, _ in squares], dtype=float)
    margin = 0.01
    west, south = boxes[:, 0].min() - margin, boxes[:, 1].min() - margin
    east, north = boxes[:, 2].max() + margin, boxes[:, 3].max() + margin
    aspect = math.cos(math.radians((north + south) / 2))
    k = (size - 20) / max((east - west) * aspect, north - south, 1e-9)
    height = (north - south) * k + 58

    def xy(lon: float, lat: float) -> tuple[float, float]:
        return 10 + (lon - west) * aspect * k, 24 + (north - lat) * k

    frame = box(west, south, east, north)
    land = f'fill="{LAND}" stroke="{BORDER}" stroke-width="0.8"'
    parts = [
        svg_open(size, height),
        f'<rect x="10" y="24" width="{(east - west) * aspect * k:.1f}" '
        f'height="{(north - south) * k:.1f}" fill="{SEA}"/>',
        _outlines(countries(), frame, xy, "basemap", land),
        svg_text(size / 2, 14, title, anchor="middle", size=12),
    ]
    for (minx, miny, maxx, maxy), split in squares:
        (x0, y0), (x1, y1) = xy(minx, maxy), xy(maxx, miny)
        parts.append(
            f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" '
            f'fill="{SPLIT_COLOURS[split]}" fill-opacity="0.35" stroke="#333" stroke-width="0.3"/>'
        )
    event_style = f'fill="{EVENT}" fill-opacity="0.25" stroke="{EVENT}" stroke-width="1.2"'
    parts.append(_outlines(events, frame, xy, "crisis-events", event_style))
    parts.append(_scale_bar((east - west) * aspect * KM_PER_DEGREE, k, height - 14))
    parts.append("</svg>")
    return "".join(parts)


def _scale_bar(span_km: float, px_per_degree_lat: float, y: float) -> str:
    length = nice_length_km(span_km)
    px = length / KM_PER_DEGREE * px_per_degree_lat
    label = f"{length:g} km"
    return (
        f'<g id="scale-bar"><rect x="10" y="{y - 4:.1f}" width="{px:.1f}" height="4" fill="#222"/>'
        f"{svg_text(14 + px, y, label, size=10)}</g>"
    )
