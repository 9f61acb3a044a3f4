"""Charts of the datasheet, self-contained: inline SVG bar charts and heat maps, chips as
base64 PNG (maps: ``report_maps``)."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
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
    parts = [svg_open(width, height)]
    for i, category in enumerate(categories):
        top = 10 + i * (bar * len(names) + gap)
        parts.append(svg_text(left - 6, top + bar * len(names) / 2 + 4, category, anchor="end"))
        for j, name in enumerate(names):
            value = series[name][i]
            y = top + j * bar
            colour = SERIES_COLOURS[j % len(SERIES_COLOURS)]
            parts.append(
                f'<rect x="{left}" y="{y}" width="{value * scale:.1f}" height="{bar - 1}" '
                f'fill="{colour}"><title>{escape(name)}: {value}</title></rect>'
            )
            if value:
                parts.append(svg_text(left + value * scale + 3, y + bar - 1, str(value), size=8))
    parts.append(_legend(names, 10, height - 18))
    parts.append("</svg>")
    return "".join(parts)


def _legend(names: Sequence[str], x: float, y: float) -> str:
    items = []
    for j, name in enumerate(names):
        colour = SERIES_COLOURS[j % len(SERIES_COLOURS)]
        items.append(f'<rect x="{x + j * 130}" y="{y}" width="10" height="10" fill="{colour}"/>')
        items.append(svg_text(x + j * 130 + 14, y + 9, name))
    return "".join(items)


def svg_open(width: float, height: float) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0f}" '
        f'viewBox="0 0 {width} {height:.0f}" font-family="sans-serif" font-size="11">'
    )


def svg_text(x: float, y: float, text: str, anchor: str = "start", size: int = 11) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}">'
        f"{escape(text)}</text>"
    )


def heatmap(labels: Sequence[str], matrix: np.ndarray, cell: int = 36) -> str:
    """A labelled square matrix of counts, shaded by count, the count written in each cell."""
    left, top = 130, 120
    size = left + cell * len(labels) + 70  # room for the last slanted label
    peak = max(1, int(matrix.max()))
    parts = [svg_open(size, top + cell * len(labels) + 10)]
    for i, label in enumerate(labels):
        y = top + i * cell
        parts.append(svg_text(left - 6, y + cell / 2 + 4, label, anchor="end", size=11))
        x = left + i * cell + cell / 2
        parts.append(
            f'<text transform="translate({x + 3:.1f},{top - 6}) rotate(-55)" '
            f'font-size="10">{escape(label)}</text>'
        )
        for j in range(len(labels)):
            value = int(matrix[i, j])
            shade = 1 - value / peak
            fill = f"rgb({int(255 * shade)},{int(255 - 120 * (1 - shade))},255)"
            parts.append(
                f'<rect x="{left + j * cell}" y="{y}" width="{cell - 1}" height="{cell - 1}" '
                f'fill="{fill}"><title>{escape(label)} + {escape(labels[j])}: {value}</title></rect>'
            )
            if value:
                colour = "#fff" if shade < 0.5 else "#222"
                parts.append(
                    f'<text x="{left + j * cell + cell / 2:.1f}" y="{y + cell / 2 + 3:.1f}" '
                    f'text-anchor="middle" font-size="10" fill="{colour}">{value}</text>'
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
