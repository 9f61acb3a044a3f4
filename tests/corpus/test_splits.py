import random

import numpy as np

from pipeline.corpus.splits import TRAIN, label_matrix, stratified_split

LABELS = ["water", "trees", "crops", "built", "flooded area", "burned area"]


def _corpus(n=600, seed=0):
    rng = random.Random(seed)
    keys = [f"chip-{i:04d}" for i in range(n)]
    labels = [rng.sample(LABELS, rng.randint(1, 3)) for _ in keys]
    return keys, labels


def test_split_is_deterministic_and_order_free():
    keys, labels = _corpus()
    a = stratified_split(keys, labels, 0.2, seed=0)
    b = stratified_split(keys[::-1], labels[::-1], 0.2, seed=0)
    c = stratified_split(keys, labels, 0.2, seed=1)
    assert a == b
    assert a != c


def test_split_keeps_label_proportions_within_two_points():
    keys, labels = _corpus()
    split = stratified_split(keys, labels, 0.2, seed=0)
    train = np.array([split[k] == TRAIN for k in keys])
    assert abs(train.mean() - 0.2) < 0.01
    y = label_matrix(labels)
    overall = y.mean(axis=0)
    in_train = y[train].mean(axis=0)
    assert np.all(np.abs(in_train - overall) < 0.02), (in_train, overall)


# ---- sensor strata and the geographic-block split ------------------------------------------

from pipeline.corpus.splits import (  # noqa: E402
    CORPUS,
    SplitChip,
    SplitRule,
    block_of,
    split_chips,
)


def _grid_chips(size=40, dates=2, seed=0):
    """Chips on a size x size cell grid, ``dates`` acquisitions per cell, both sensors."""
    rng = random.Random(seed)
    chips = []
    for col in range(size):
        for row in range(size):
            labels = tuple(rng.sample(LABELS, rng.randint(1, 3)))
            for d in range(dates):
                sensor = "s1" if d % 2 else "s2"
                chips.append(
                    SplitChip(f"k{col}_{row}_{d}", labels, 32632, 600 + col, 4100 + row, sensor)
                )
    return chips


def test_stratified_split_balances_each_sensor():
    chips = _grid_chips(size=20)
    split = split_chips(chips, SplitRule("stratified", 0.2, 0))
    for sensor in ("s1", "s2"):
        mine = [c for c in chips if c.sensor == sensor]
        assert abs(np.mean([split[c.key] == TRAIN for c in mine]) - 0.2) < 0.01


def test_geo_block_split_shares_no_block_across_splits():
    chips = _grid_chips()
    rule = SplitRule("geo-block", 0.2, seed=0, block_size=4)
    split = split_chips(chips, rule)
    by_block: dict[str, set[str]] = {}
    for chip in chips:
        by_block.setdefault(block_of(chip, 4), set()).add(split[chip.key])
    assert len(by_block) == 100
    assert all(len(splits) == 1 for splits in by_block.values())
    assert {s.pop() for s in by_block.values()} == {TRAIN, CORPUS}


def test_geo_block_split_keeps_fraction_and_label_proportions_within_five_points():
    chips = _grid_chips()
    split = split_chips(chips, SplitRule("geo-block", 0.2, seed=0, block_size=4))
    train = np.array([split[c.key] == TRAIN for c in chips])
    assert abs(train.mean() - 0.2) < 0.02
    y = label_matrix([c.labels for c in chips])
    assert np.all(np.abs(y[train].mean(axis=0) - y.mean(axis=0)) < 0.05)


def test_geo_block_split_is_deterministic_order_free_and_seeded():
    chips = _grid_chips(size=24)
    rule = SplitRule("geo-block", 0.2, seed=0, block_size=3)
    a = split_chips(chips, rule)
    assert a == split_chips(chips[::-1], rule)
    assert a != split_chips(chips, SplitRule("geo-block", 0.2, seed=1, block_size=3))


def test_blocks_follow_the_grid_including_negative_cells():
    chip = SplitChip("k", (), 32629, -1, 4095)
    assert block_of(chip, 4) == "32629_-1_1023"
