"""Contact sheets of search hits (``clm search --sheet``): one tile per chip, and under it the
rank, score, sensor, relevance mark, date, place, key and the full caption, wrapped.

S2 tiles are true colour (B04, B03, B02); S1 tiles are a false colour with VV as red, VH
as green and VV - VH (dB) as blue, with fixed ranges (`pipeline.corpus.preview`) so tiles
compare. When the query text is one of the corpus's ``queries.jsonl`` queries, each hit is
marked against ``qrels/corpus.qrels``: "relevant (grade 2)", "relevant (grade 1)" or "not
relevant", in green / olive / red, with a frame of that colour around the tile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from pipeline.corpus.preview import caption_font, chip_rgb, line_height, wrap_text
from pipeline.corpus.queries import QUERIES_NAME, qrels_path, read_queries
from pipeline.errors import CorpusError
from pipeline.model.search import Hit
from pipeline.storage import atomic_path

TILE_PX, COLUMNS, PAD, FRAME = 240, 4, 10, 4
DETAIL_COLUMNS = ["key", "shard", "datetime", "place", "country"]
MARKS: dict[int, tuple[str, Colour]] = {
    2: ("relevant (grade 2)", (0, 130, 0)),
    1: ("relevant (grade 1)", (150, 130, 0)),
}
NOT_RELEVANT: tuple[str, Colour] = ("not relevant", (200, 0, 0))
GREY: Colour = (90, 90, 90)
TITLE_SIZE, TEXT_SIZE = 17, 14

Colour = tuple[int, int, int]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
Tile = tuple[Image.Image, list[tuple[str, Colour]], Colour | None]


def render_chip(image: np.ndarray, sensor: str) -> Image.Image:
    """A corpus chip (C, H, W) as an RGB picture (the corpus preview rendering)."""
    return Image.fromarray(chip_rgb(image, sensor), mode="RGB")


def chip_details(corpus_dir: Path, keys: Sequence[str]) -> pd.DataFrame:
    """Shard, acquisition time, place and country of ``keys`` (indexed by key), from the
    corpus metadata; an error naming the fix when the index is of another corpus."""
    path = Path(corpus_dir) / "metadata.parquet"
    meta = pd.read_parquet(path, columns=DETAIL_COLUMNS).set_index("key")
    missing = [k for k in keys if k not in meta.index]
    if missing:
        raise CorpusError(
            f"{corpus_dir} has no chip {missing[0]}; the index was built from another corpus "
            "(re-run `clm embed`)"
        )
    return meta.loc[list(keys)]


def read_chips(corpus_dir: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Images of ``keys`` from the corpus HDF5 shards."""
    shard_of = chip_details(corpus_dir, keys)["shard"].to_dict()
    images: dict[str, np.ndarray] = {}
    for shard in sorted(set(shard_of.values())):
        with h5py.File(Path(corpus_dir) / "shards" / shard, "r") as h5:
            for key in (k for k in keys if shard_of[k] == shard):
                images[key] = h5[key]["image"][()]
    return images


def query_grades(corpus_dir: Path, query: str) -> tuple[str, dict[str, int]] | None:
    """(qid, key -> grade) of the corpus query whose text is exactly ``query``; ``None`` when
    the corpus has no such query (or no queries at all). Keys not listed are not relevant."""
    qrels = qrels_path(corpus_dir, "all")
    if not ((Path(corpus_dir) / QUERIES_NAME).is_file() and qrels.is_file()):
        return None
    match = next((q for q in read_queries(corpus_dir) if q.text == query.strip()), None)
    if match is None:
        return None
    return match.qid, qrels_of(qrels, match.qid)


def qrels_of(path: Path, qid: str) -> dict[str, int]:
    """Key -> grade of one query, streamed from a TREC qrels file (``qid 0 docid grade``
    lines; large corpora have millions, so the others are skipped unparsed)."""
    grades: dict[str, int] = {}
    with open(path) as lines:
        for line in lines:
            if line.startswith(f"{qid} "):
                _, _, key, grade = line.split()
                grades[key] = int(grade)
    return grades


def relevance_mark(grade: int) -> tuple[str, Colour]:
    return MARKS.get(grade, NOT_RELEVANT)


def wrap_key(key: str, font: Font, width: int) -> list[str]:
    """A chip key in lines no wider than ``width`` px, broken after underscores;
    ``"".join`` of the lines gives back the key."""
    return [line.replace("_ ", "_") for line in wrap_text(key.replace("_", "_ "), font, width)]


def tile_lines(
    hit: Hit, details: pd.Series, grades: Mapping[str, int] | None, font: Font
) -> list[tuple[str, Colour]]:
    """The (text, colour) lines under one tile: rank, score, sensor; the relevance mark;
    date and place; the key; the full caption."""
    lines = [(f"#{hit.rank}   score {hit.score:.3f}   {hit.sensor.upper()}", (0, 0, 0))]
    if grades is not None:
        lines.append(relevance_mark(grades.get(hit.key, 0)))
    date = str(details["datetime"])[:10]
    place = ", ".join(str(v) for v in (details["place"], details["country"]) if pd.notna(v) and v)
    lines += [(line, (0, 0, 0)) for line in wrap_text(f"{date}  {place}", font, TILE_PX)]
    lines += [(line, GREY) for line in wrap_key(hit.key, font, TILE_PX)]
    lines += [(line, (0, 0, 0)) for line in wrap_text(hit.caption, font, TILE_PX)]
    return lines


def draw_sheet(tiles: Sequence[Tile], title: str, columns: int = COLUMNS) -> Image.Image:
    """A grid of (picture, coloured lines, frame colour) tiles under the wrapped title; a row
    is as tall as its longest text."""
    font, title_font = caption_font(TEXT_SIZE), caption_font(TITLE_SIZE)
    line_h, title_h = line_height(font), line_height(title_font)
    columns = max(1, min(columns, len(tiles)))
    width = columns * (TILE_PX + PAD) + PAD
    heading = wrap_text(title, title_font, width - 2 * PAD)
    top = 2 * PAD + title_h * len(heading)
    rows = [tiles[i : i + columns] for i in range(0, len(tiles), columns)] or [[]]
    heights = [TILE_PX + 3 * PAD + line_h * max([0, *(len(t[1]) for t in row)]) for row in rows]
    sheet = Image.new("RGB", (width, top + sum(heights)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, line in enumerate(heading):
        draw.text((PAD, PAD + j * title_h), line, fill="black", font=title_font)
    for i, (picture, lines, frame) in enumerate(tiles):
        x, y = PAD + (i % columns) * (TILE_PX + PAD), top + sum(heights[: i // columns])
        if frame is not None:
            edge = (x - FRAME, y - FRAME, x + TILE_PX + FRAME - 1, y + TILE_PX + FRAME - 1)
            draw.rectangle(edge, fill=frame)
        sheet.paste(picture.resize((TILE_PX, TILE_PX), Image.Resampling.NEAREST), (x, y))
        for j, (text, colour) in enumerate(lines):
            draw.text((x, y + TILE_PX + PAD + j * line_h), text, fill=colour, font=font)
    return sheet


def write_contact_sheet(
    hits: Sequence[Hit],
    corpus_dir: Path,
    path: Path,
    title: str,
    grades: Mapping[str, int] | None = None,
) -> list[list[str]]:
    """A PNG grid of the hits (best first), titled with the query, marked against ``grades``
    (key -> qrels grade) when given; returns the text lines drawn under each tile."""
    images = read_chips(corpus_dir, [h.key for h in hits])
    details = chip_details(corpus_dir, [h.key for h in hits])
    font = caption_font(TEXT_SIZE)
    tiles: list[Tile] = []
    for hit in hits:
        lines = tile_lines(hit, details.loc[hit.key], grades, font)
        frame = None if grades is None else relevance_mark(grades.get(hit.key, 0))[1]
        tiles.append((render_chip(images[hit.key], hit.sensor), lines, frame))
    sheet = draw_sheet(tiles, title)
    with atomic_path(Path(path)) as tmp:
        sheet.save(tmp, format="PNG")
    return [[text for text, _ in lines] for _, lines, _ in tiles]
