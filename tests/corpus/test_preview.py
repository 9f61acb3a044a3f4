import numpy as np

from pipeline.corpus.preview import chip_rgb, contact_sheet


def test_s2_true_colour_and_s1_false_colour():
    s2 = np.zeros((12, 120, 120), np.float32)
    s2[3], s2[2], s2[1] = 3000, 1500, 0  # red-ish surface
    rgb = chip_rgb(s2, "s2")
    assert rgb.shape == (120, 120, 3) and rgb.dtype == np.uint8
    assert rgb[..., 0].mean() == 255 and rgb[..., 2].mean() == 0
    water = np.stack([np.full((120, 120), -24.0), np.full((120, 120), -30.0)])
    land = np.stack([np.full((120, 120), -8.0), np.full((120, 120), -14.0)])
    assert chip_rgb(water, "s1").mean() < chip_rgb(land, "s1").mean()


def test_contact_sheet_layout():
    tiles = [(np.zeros((120, 120, 3), np.uint8), "a caption " * 10)] * 5
    sheet = contact_sheet(tiles, columns=2, tile_px=100, text_lines=3)
    assert sheet.size[0] == 2 * 106 + 6
    assert sheet.size[1] == 3 * (100 + 12 + 36)
