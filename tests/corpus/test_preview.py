import numpy as np
from PIL import Image

from pipeline.corpus.examples import write_label_examples
from pipeline.corpus.preview import (
    caption_font,
    chip_rgb,
    contact_sheet,
    line_height,
    wrap_text,
)


def test_s2_true_colour_and_s1_false_colour():
    s2 = np.zeros((12, 120, 120), np.float32)
    s2[3], s2[2], s2[1] = 3000, 1500, 0  # red-ish surface
    rgb = chip_rgb(s2, "s2")
    assert rgb.shape == (120, 120, 3) and rgb.dtype == np.uint8
    assert rgb[..., 0].mean() == 255 and rgb[..., 2].mean() == 0
    water = np.stack([np.full((120, 120), -24.0), np.full((120, 120), -30.0)])
    land = np.stack([np.full((120, 120), -8.0), np.full((120, 120), -14.0)])
    assert chip_rgb(water, "s1").mean() < chip_rgb(land, "s1").mean()


def test_captions_are_wrapped_whole_in_a_truetype_font():
    font = caption_font()
    assert font.path.endswith(".ttf")  # a real TrueType font, not the bitmap default
    caption = "Sentinel-2 optical image near Padova, Italy, taken on 23 November 2021. " * 4
    lines = wrap_text(caption, font, 240)
    assert " ".join(lines) == " ".join(caption.split())
    assert all(font.getlength(line) <= 240 for line in lines) and len(lines) > 4
    # words keep their spaces: the rendered width grows with each space
    assert font.getlength("a b") > font.getlength("ab")


def test_contact_sheet_draws_every_line_of_every_caption():
    tiles = [
        (np.zeros((120, 120, 3), np.uint8), f"caption {i} " + "word " * 12 * i) for i in range(5)
    ]
    sheet, lines = contact_sheet(tiles, columns=2, tile_px=100)
    assert [" ".join(drawn) for drawn in lines] == [" ".join(c.split()) for _, c in tiles]
    assert sheet.size[0] == 2 * 108 + 8
    line_h = line_height(caption_font())
    rows = [max(len(lines[0]), len(lines[1])), max(len(lines[2]), len(lines[3])), len(lines[4])]
    assert sheet.size[1] == sum(100 + 16 + line_h * n for n in rows)
    # the caption area under the last tile holds ink: the text was drawn
    below = np.asarray(sheet.crop((8, sheet.size[1] - line_h * rows[2], 108, sheet.size[1])))
    assert below.min() < 128


def test_label_examples_figure_has_full_captions(tiny_corpus, tmp_path):
    import pandas as pd

    lines = write_label_examples(tiny_corpus, tmp_path / "examples.png")
    meta = pd.read_parquet(tiny_corpus / "metadata.parquet")
    captions = set(meta["caption"])
    assert len(lines) == 6 and all(" ".join(drawn) in captions for drawn in lines)
    assert Image.open(tmp_path / "examples.png").size[0] == 3 * 248 + 8
