"""The comparison of ``clm compare`` as a PNG: one panel per index, horizontal bars per query
group, one bar per model/method with its mean and a whisker of ± one standard deviation."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from pipeline.model.compare import SETS, column_label, columns
from pipeline.storage import atomic_path

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#7f7f7f")
BAR, GAP, LEFT, WIDTH, PAD = 9, 10, 210, 1000, 16


def write_comparison_png(comparison: Mapping[str, Any], path: Path) -> Path:
    """Draw the comparison into ``path`` (PNG, written atomically); returns the path."""
    cols = columns(comparison)
    panels = [name for name in SETS if name in comparison["sets"]]
    heights = [_panel_height(comparison["sets"][name], cols) for name in panels]
    legend = 22 * len(cols) + PAD
    image = Image.new("RGB", (WIDTH, sum(heights) + legend + 40), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=13)
    draw.text((PAD, 10), f"{comparison['metric']}: mean ± std over seeds", fill="black", font=font)
    top = 36
    for name, height in zip(panels, heights, strict=True):
        _panel(draw, font, name, comparison["sets"][name], cols, top)
        top += height
    for i, col in enumerate(cols):
        y = top + 6 + 22 * i
        draw.rectangle((LEFT, y, LEFT + 24, y + 12), fill=COLOURS[i % len(COLOURS)])
        draw.text((LEFT + 32, y - 1), column_label(col), fill="black", font=font)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(Path(path)) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)


def _panel_height(table: Mapping[str, Any], cols: list[str]) -> int:
    return sum(_group_height(cells, cols) for cells in table.values()) + 50


def _group_height(cells: Mapping[str, Any], cols: list[str]) -> int:
    return BAR * sum(col in cells for col in cols) + GAP


def _panel(
    draw: ImageDraw.ImageDraw,
    font: Any,
    name: str,
    table: Mapping[str, Any],
    cols: list[str],
    top: int,
) -> None:
    scale = WIDTH - LEFT - 70
    draw.text((PAD, top), f"index {name}", fill="black", font=font)
    y = top + 22
    axis_bottom = top + _panel_height(table, cols) - 24
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        x = LEFT + tick * scale
        draw.line((x, top + 20, x, axis_bottom), fill="#dddddd")
        draw.text((x - 10, axis_bottom + 2), f"{tick:g}", fill="#555555", font=font)
    for group, cells in table.items():
        height = _group_height(cells, cols)
        draw.text((PAD, y + (height - GAP) / 2 - 7), group, fill="black", font=font)
        present = [(i, col) for i, col in enumerate(cols) if col in cells]
        for slot, (i, col) in enumerate(present):
            _bar(draw, cells[col], LEFT, y + slot * BAR, scale, COLOURS[i % len(COLOURS)])
        y += height


def _bar(
    draw: ImageDraw.ImageDraw, stats: Mapping[str, Any], left: int, y: int, scale: int, colour: str
) -> None:
    mean, std = float(stats["mean"]), float(stats["std"])
    draw.rectangle((left, y, left + mean * scale, y + BAR - 2), fill=colour)
    if std > 0:
        low, high = left + max(mean - std, 0) * scale, left + min(mean + std, 1) * scale
        middle = y + (BAR - 2) / 2
        draw.line((low, middle, high, middle), fill="black", width=1)
        draw.line((low, y, low, y + BAR - 2), fill="black")
        draw.line((high, y, high, y + BAR - 2), fill="black")
