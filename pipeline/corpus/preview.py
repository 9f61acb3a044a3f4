"""Chip previews for people: S2 true colour, S1 VV/VH false colour, captioned contact sheets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

S2_RGB = (3, 2, 1)  # B04, B03, B02 in the 12-band chip order
S2_MAX_REFLECTANCE = 0.3
S1_RANGES = ((-25.0, 0.0), (-32.0, -8.0), (0.0, 15.0))  # VV dB, VH dB, VV-VH dB
CAPTION_FONTS = ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


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


def caption_font(size: int = 13) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A readable TrueType font: DejaVu Sans where the system has it (Pillow looks in the
    XDG font directories), else Pillow's own scalable default."""
    for name in CAPTION_FONTS:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def line_height(font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> int:
    return int(font.getbbox("Hgjy")[3]) + 3


def wrap_text(
    text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int
) -> list[str]:
    """Whole words in lines no wider than ``width`` px (a longer word gets a line of its own);
    ``" ".join`` of the lines gives back the text."""
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and font.getlength(candidate) <= width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


def contact_sheet(
    tiles: Sequence[tuple[np.ndarray, str]], columns: int = 3, tile_px: int = 240
) -> tuple[Image.Image, list[list[str]]]:
    """A grid of (rgb, caption) tiles, each full caption wrapped under its image; returns
    the sheet and the lines drawn under each tile. A row is as tall as its longest caption."""
    font, pad = caption_font(), 8
    line_h = line_height(font)
    wrapped = [wrap_text(caption, font, tile_px) for _, caption in tiles]
    rows = [wrapped[i : i + columns] for i in range(0, len(tiles), columns)] or [[]]
    heights = [tile_px + pad * 2 + line_h * max([0, *map(len, row)]) for row in rows]
    sheet = Image.new("RGB", (columns * (tile_px + pad) + pad, sum(heights)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (rgb, _) in enumerate(tiles):
        x = pad + (i % columns) * (tile_px + pad)
        y = sum(heights[: i // columns]) + pad
        picture = Image.fromarray(rgb).resize((tile_px, tile_px), Image.Resampling.NEAREST)
        sheet.paste(picture, (x, y))
        for j, line in enumerate(wrapped[i]):
            draw.text((x, y + tile_px + 3 + j * line_h), line, fill="black", font=font)
    return sheet, wrapped
