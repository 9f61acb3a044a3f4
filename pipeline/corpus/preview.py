"""Chip previews for people: S2 true colour, S1 VV/VH false colour, captioned contact sheets."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

S2_RGB = (3, 2, 1)  # B04, B03, B02 in the 12-band chip order
S2_MAX_REFLECTANCE = 0.3
S1_RANGES = ((-25.0, 0.0), (-32.0, -8.0), (0.0, 15.0))  # VV dB, VH dB, VV-VH dB


def _scale(plane: np.ndarray, low: float, high: float) -> np.ndarray:
    return (np.clip((plane - low) / (high - low), 0, 1) * 255).astype(np.uint8)


def chip_rgb(image: np.ndarray, sensor: str) -> np.ndarray:
    """(H, W, 3) uint8 preview of a chip as stored in the corpus."""
    if sensor == "s2":
        reflectance = image[list(S2_RGB)] / 10000.0
        gamma = np.clip(reflectance / S2_MAX_REFLECTANCE, 0, 1) ** (1 / 1.6)
        return (np.moveaxis(gamma, 0, -1) * 255).astype(np.uint8)
    vv, vh = image[0], image[1]
    planes = (vv, vh, vv - vh)
    return np.stack(
        [_scale(p, lo, hi) for p, (lo, hi) in zip(planes, S1_RANGES, strict=True)], axis=-1
    )


def contact_sheet(
    tiles: Sequence[tuple[np.ndarray, str]],
    columns: int = 4,
    tile_px: int = 240,
    text_lines: int = 5,
) -> Image.Image:
    """A grid of (rgb, caption) tiles with the caption wrapped under each image."""
    font = ImageFont.load_default()
    line_h, pad = 12, 6
    cell_h = tile_px + pad * 2 + line_h * text_lines
    rows = max(1, -(-len(tiles) // columns))
    sheet = Image.new("RGB", (columns * (tile_px + pad) + pad, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (rgb, caption) in enumerate(tiles):
        x = pad + (i % columns) * (tile_px + pad)
        y = (i // columns) * cell_h + pad
        sheet.paste(
            Image.fromarray(rgb).resize((tile_px, tile_px), Image.Resampling.NEAREST), (x, y)
        )
        lines = textwrap.wrap(caption, width=tile_px // 6)[:text_lines]
        for j, line in enumerate(lines):
            draw.text((x, y + tile_px + 2 + j * line_h), line, fill="black", font=font)
    return sheet
