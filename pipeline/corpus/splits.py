"""Deterministic train / retrieval-corpus splits, stratified on the multi-labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

from pipeline.labels.taxonomy import REFERENCE_LABELS

TRAIN, CORPUS = "train", "corpus"


def label_matrix(labels: Sequence[Sequence[str]]) -> np.ndarray:
    index = {name: i for i, name in enumerate(REFERENCE_LABELS)}
    matrix = np.zeros((len(labels), len(REFERENCE_LABELS)), dtype=np.int8)
    for row, names in enumerate(labels):
        for name in names:
            matrix[row, index[name]] = 1
    return matrix


def stratified_split(
    keys: Sequence[str], labels: Sequence[Sequence[str]], train_fraction: float, seed: int
) -> dict[str, str]:
    """Key -> "train" | "corpus"; iterative stratification on the multi-labels.

    Input order does not matter: keys are sorted before splitting.
    """
    order = sorted(range(len(keys)), key=lambda i: keys[i])
    if len(order) < 2:
        return {keys[i]: CORPUS for i in order}
    y = label_matrix([labels[i] for i in order])
    splitter = MultilabelStratifiedShuffleSplit(
        n_splits=1, train_size=train_fraction, test_size=1 - train_fraction, random_state=seed
    )
    train_idx, _ = next(splitter.split(np.zeros((len(order), 1)), y))
    train = {keys[order[i]] for i in train_idx}
    return {keys[i]: TRAIN if keys[i] in train else CORPUS for i in order}
