"""Deterministic train / retrieval-corpus splits.

- ``stratified`` (the reference): iterative stratification on the multi-labels, per chip,
  with the sensor as one more stratum (optical and SAR chips are unpaired, and a model
  trains on each sensor's batches: both must be split 20/80 with the same label mix).
- ``geo-block``: whole blocks of ``N x N`` grid cells go to one split, so no two chips of a
  block (same place, any date or sensor) are in different splits; blocks are assigned by
  iterative stratification over groups, weighted by their chips' labels.

Both are pure functions of the chip set (keys, labels, cells) and the seed: input order does
not matter, and a refreshed corpus gets the same split as a full build of the same chips.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.errors import ConfigError
from pipeline.labels.taxonomy import REFERENCE_LABELS

TRAIN, CORPUS = "train", "corpus"
SPLITS = (TRAIN, CORPUS)


@dataclass(frozen=True)
class SplitChip:
    """What a split needs to know about a chip."""

    key: str
    labels: tuple[str, ...]
    epsg: int
    col: int
    row: int
    sensor: str = ""


@dataclass(frozen=True)
class SplitRule:
    method: str = "stratified"  # "stratified" | "geo-block"
    train_fraction: float = 0.2
    seed: int = 0
    block_size: int = 4

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {
            "method": self.method,
            "train_fraction": self.train_fraction,
            "seed": self.seed,
        }
        if self.method == "geo-block":
            out["block_size_cells"] = self.block_size
        return out


def split_chips(chips: Sequence[SplitChip], rule: SplitRule) -> dict[str, str]:
    """Key -> "train" | "corpus" following ``rule``."""
    keys = [c.key for c in chips]
    labels = [c.labels for c in chips]
    strata = [c.sensor for c in chips]
    if rule.method == "stratified":
        return stratified_split(keys, labels, rule.train_fraction, rule.seed, strata)
    if rule.method == "geo-block":
        blocks = {c.key: block_of(c, rule.block_size) for c in chips}
        return geo_block_split(keys, labels, blocks, rule.train_fraction, rule.seed, strata)
    raise ConfigError(
        f"unknown output.split_method {rule.method!r}; supported: stratified, geo-block"
    )


def block_of(chip: SplitChip, block_size: int) -> str:
    """The block holding a chip's grid cell: ``<epsg>_<col // N>_<row // N>``."""
    return f"{chip.epsg}_{chip.col // block_size}_{chip.row // block_size}"


def label_matrix(labels: Sequence[Sequence[str]]) -> np.ndarray:
    index = {name: i for i, name in enumerate(REFERENCE_LABELS)}
    matrix = np.zeros((len(labels), len(REFERENCE_LABELS)), dtype=np.int8)
    for row, names in enumerate(labels):
        for name in names:
            matrix[row, index[name]] = 1
    return matrix


def target_matrix(
    labels: Sequence[Sequence[str]], strata: Sequence[str] | None = None
) -> np.ndarray:
    """The label indicator matrix, plus one indicator column per stratum value (e.g. sensor)."""
    matrix = label_matrix(labels)
    if not strata or len(set(strata)) < 2:
        return matrix
    values = sorted(set(strata))
    extra = np.array([[s == v for v in values] for s in strata], dtype=np.int8)
    return np.hstack([matrix, extra])


def stratified_split(
    keys: Sequence[str],
    labels: Sequence[Sequence[str]],
    train_fraction: float,
    seed: int,
    strata: Sequence[str] | None = None,
) -> dict[str, str]:
    """Key -> "train" | "corpus"; iterative stratification on the multi-labels (and
    ``strata``, one value per key, e.g. the sensor).

    Input order does not matter: keys are sorted before splitting.
    """
    order = sorted(range(len(keys)), key=lambda i: keys[i])
    if len(order) < 2:
        return {keys[i]: CORPUS for i in order}
    y = target_matrix([labels[i] for i in order], [strata[i] for i in order] if strata else None)
    # Imported here: it brings scikit-learn and SciPy (seconds), and every engine worker
    # imports this module through the corpus stages without ever splitting.
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    splitter = MultilabelStratifiedShuffleSplit(
        n_splits=1, train_size=train_fraction, test_size=1 - train_fraction, random_state=seed
    )
    train_idx, _ = next(splitter.split(np.zeros((len(order), 1)), y))
    train = {keys[order[i]] for i in train_idx}
    return {keys[i]: TRAIN if keys[i] in train else CORPUS for i in order}


def geo_block_split(
    keys: Sequence[str],
    labels: Sequence[Sequence[str]],
    blocks: Mapping[str, str],
    train_fraction: float,
    seed: int,
    strata: Sequence[str] | None = None,
) -> dict[str, str]:
    """Key -> split, every block whole in one split (iterative stratification over blocks).

    Sechidis et al.'s iterative stratification applied to groups: labels are visited from the
    rarest; each unassigned block carrying it (largest first, then a seeded order) goes to the
    split that still lacks the most chips of that label, then of any label.
    """
    members: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        members.setdefault(blocks[key], []).append(i)
    y = target_matrix(labels, strata).astype(np.int64)
    counts = {b: y[idx].sum(axis=0) for b, idx in members.items()}
    sizes = {b: len(idx) for b, idx in members.items()}
    fractions = np.array([train_fraction, 1 - train_fraction])
    need = np.outer(fractions, y.sum(axis=0)).astype(float)  # (split, label) chips still wanted
    need_total = fractions * len(keys)
    assigned = _assign_blocks(counts, sizes, need, need_total, seed)
    return {keys[i]: SPLITS[assigned[b]] for b, idx in sorted(members.items()) for i in idx}


def _assign_blocks(
    counts: dict[str, np.ndarray],
    sizes: dict[str, int],
    need: np.ndarray,
    need_total: np.ndarray,
    seed: int,
) -> dict[str, int]:
    remaining = sorted(counts, key=lambda b: (-sizes[b], _seeded(b, seed)))
    assigned: dict[str, int] = {}
    while remaining:
        left = np.sum([counts[b] for b in remaining], axis=0)
        present = np.flatnonzero(left)
        label = int(present[np.argmin(left[present])]) if len(present) else None
        batch = [b for b in remaining if label is None or counts[b][label] > 0]
        for block in batch:
            split = _best_split(need, need_total, label)
            assigned[block] = split
            need[split] -= counts[block]
            need_total[split] -= sizes[block]
        remaining = [b for b in remaining if b not in assigned]
    return assigned


def _best_split(need: np.ndarray, need_total: np.ndarray, label: int | None) -> int:
    """The split wanting the most chips of ``label``, then the most chips overall."""
    if label is not None and need[0, label] != need[1, label]:
        return int(np.argmax(need[:, label]))
    return int(np.argmax(need_total)) if need_total[0] != need_total[1] else 1


def _seeded(name: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()
