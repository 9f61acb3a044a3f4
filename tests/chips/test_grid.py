from pipeline.chips.grid import ChipGeometry, cells_within


def test_chip_bounds_and_transform():
    cell = ChipGeometry(32632, 10, 20)
    assert cell.bounds == (12000.0, 24000.0, 13200.0, 25200.0)
    assert cell.transform == (10.0, 0.0, 12000.0, 0.0, -10.0, 25200.0)
    assert cell.cell_id == "32632_10_20"


def test_cells_within_keeps_only_whole_cells_north_first():
    cells = list(cells_within(32632, (1000.0, 1000.0, 4700.0, 3700.0)))
    assert [(c.col, c.row) for c in cells] == [(1, 2), (2, 2), (1, 1), (2, 1)]
    for c in cells:
        minx, miny, maxx, maxy = c.bounds
        assert minx >= 1000 and miny >= 1000 and maxx <= 4700 and maxy <= 3700
