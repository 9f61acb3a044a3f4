"""Contact sheets of search hits: one tile per chip with its rank, sensor and score.

S2 tiles are true colour (B04, B03, B02); S1 tiles are a false colour with VV as red, VH
as green and VV - VH (dB) as blue, with fixed ranges (`pipeline.corpus.preview`) so tiles compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from pipeline.corpus.preview import chip_rgb
from pipeline.errors import CorpusError
from pipeline.model.search import Hit
from pipeline.storage import atomic_path

TILE, LABEL, COLUMNS, MARGIN = 120, 28, 5, 6


def render_chip(image: np.ndarray, sensor: str) -> Image.Image:
    """A corpus chip (C, H, W) as an RGB picture (the corpus preview rendering)."""
    return Image.fromarray(chip_rgb(image, sensor), mode="RGB")


def read_chips(corpus_dir: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Images of ``keys`` from the corpus HDF5 shards."""
    meta = pd.read_parquet(Path(corpus_dir) / "metadata.parquet", columns=["key", "shard"])
    shard_of = dict(zip(meta["key"], meta["shard"], strict=True))
    missing = [k for k in keys if k not in shard_of]
    if missing:
        raise CorpusError(
            f"{corpus_dir} has no chip {missing[0]}; the index was built from another corpus "
            "(re-run `clm embed`)"
        )
    images: dict[str, np.ndarray] = {}
    for shard in sorted({shard_of[k] for k in keys}):
        with h5py.File(Path(corpus_dir) / "shards" / shard, "r") as h5:
            for key in (k for k in keys if shard_of[k] == shard):
                images[key] = h5[key]["image"][()]
    return images


def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=11)  # scalable when Pillow has FreeType
    except (TypeError, OSError):  # pragma: no cover - older Pillow or no FreeType
        return ImageFont.load_default()


def write_contact_sheet(hits: Sequence[Hit], corpus_dir: Path, path: Path, title: str) -> Path:
    """A PNG grid of the hits (best first), titled with the query."""
    images = read_chips(corpus_dir, [h.key for h in hits])
    columns = max(1, min(COLUMNS, len(hits)))
    rows = max(1, -(-len(hits) // columns))
    cell_w, cell_h = TILE + MARGIN, TILE + LABEL + MARGIN
    sheet = Image.new("RGB", (columns * cell_w + MARGIN, rows * cell_h + 24), "white")
    draw = ImageDraw.Draw(sheet)
    font = _font()
    draw.text((MARGIN, 5), title[:110], fill="black", font=font)
    for n, hit in enumerate(hits):
        x, y = MARGIN + (n % columns) * cell_w, 24 + (n // columns) * cell_h
        sheet.paste(render_chip(images[hit.key], hit.sensor), (x, y))
        label = f"#{hit.rank}  {hit.sensor}  {hit.score:.3f}"
        draw.text((x, y + TILE + 2), label, fill="black", font=font)
        draw.text((x, y + TILE + 14), hit.caption[:22], fill=(90, 90, 90), font=font)
    path = Path(path)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return path
