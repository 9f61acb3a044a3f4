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
