"""Seeded random streams and smooth noise fields for the simulated archive.

Every random draw of the simulation comes from :func:`derive_rng`, keyed by the run
seed and a few labels (AOI name, purpose, scene id), so any one product can be
regenerated alone and two runs with the same seed are byte-identical.
"""

from __future__ import annotations

import zlib

import numpy as np
from scipy import ndimage

from pipeline import numerics


def derive_rng(seed: int, *labels: str | int) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``labels`` (stable across runs)."""
    keys = [int(seed) & 0xFFFFFFFF]
    for label in labels:
        keys.append(zlib.crc32(str(label).encode("utf-8")))
    return np.random.default_rng(keys)


def smooth_field(
    rng: np.random.Generator,
    shape: tuple[int, int],
    scale_px: float,
    octaves: int = 3,
    persistence: float = 0.5,
) -> np.ndarray:
    """Fractal noise with features of about ``scale_px`` pixels, zero mean and unit std."""
    height, width = shape
    total = np.zeros(shape, dtype=np.float32)
    amplitude = 1.0
    for octave in range(octaves):
        cell = max(scale_px / (2**octave), 2.0)
        coarse = (int(np.ceil(height / cell)) + 4, int(np.ceil(width / cell)) + 4)
        grid = rng.standard_normal(coarse).astype(np.float32)
        zoomed = ndimage.zoom(grid, cell, order=3 if octave == 0 else 1, mode="nearest")
        total += amplitude * zoomed[2 : 2 + height, 2 : 2 + width]
        amplitude *= persistence
    return _standardize(total)


def _standardize(field: np.ndarray) -> np.ndarray:
    std = float(field.std())
    return ((field - field.mean()) / (std if std > 0 else 1.0)).astype(np.float32)


def uniform_field(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Smooth noise mapped to [0, 1] through the normal CDF (about uniform marginals)."""
    return numerics.ndtr(smooth_field(rng, shape, scale_px, octaves=2)).astype(np.float32)
