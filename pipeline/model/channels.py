"""Channel layouts: corpus chips -> backbone input, on batches shaped (N, C, H, W).

Sentinel-2 chips hold the 12 L2A bands as reflectance x 10000 in the order of
``S2_CORPUS_BANDS``. SSL4EO-S12 backbones expect the 13 Sentinel-2 bands in
``SSL4EO_S2_BANDS`` order (B8A after B08, B10 after B09), divided by 10000; L2A has no
B10, so a zero channel is inserted at ``B10_INDEX``, as the CLOSP reference does.

Sentinel-1 chips hold VV, VH backscatter in dB and reach the backbone unchanged by
default (the reference); ``"ssl4eo"`` standardises them with the SSL4EO-S12 statistics
that torchgeo applies for its Sentinel-1 weights.
"""

from __future__ import annotations

from typing import Literal

import torch

from pipeline.model.errors import ConfigError, ModelInputError
from pipeline.sources.base import S2_BANDS

Sensor = Literal["s2", "s1"]
S1Normalisation = Literal["none", "ssl4eo"]

SENSORS: tuple[Sensor, ...] = ("s2", "s1")
S2_CORPUS_BANDS = S2_BANDS  # the corpus layout: 12 L2A bands, no B10
SSL4EO_S2_BANDS = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
S1_BANDS = ("VV", "VH")
B10_INDEX = SSL4EO_S2_BANDS.index("B10")
S2_SCALE = 10000.0
S1_SSL4EO_MEAN = (-12.59, -20.26)
S1_SSL4EO_STD = (5.26, 5.91)
S1_NAN_FILL_DB = 1e-6

MODEL_IN_CHANS: dict[Sensor, int] = {"s2": len(SSL4EO_S2_BANDS), "s1": len(S1_BANDS)}
CORPUS_CHANS: dict[Sensor, int] = {"s2": len(S2_CORPUS_BANDS), "s1": len(S1_BANDS)}


def check_sensor(sensor: str) -> Sensor:
    """``sensor`` as a ``Sensor``; a clear error for anything but ``"s2"`` / ``"s1"``."""
    if sensor not in SENSORS:
        raise ModelInputError(
            f"unknown sensor {sensor!r}: use 's2' (Sentinel-2) or 's1' (Sentinel-1)"
        )
    return sensor


def check_chips(x: torch.Tensor, sensor: Sensor) -> None:
    """Raise unless ``x`` is a float batch (N, C, H, W) in the corpus layout of ``sensor``."""
    expected = CORPUS_CHANS[sensor]
    if x.ndim != 4 or x.shape[1] != expected:
        bands = ", ".join(S2_CORPUS_BANDS if sensor == "s2" else S1_BANDS)
        raise ModelInputError(
            f"{sensor} chips must be shaped (N, {expected}, H, W) with bands {bands}; "
            f"got {tuple(x.shape)}. Stack chips into a batch and keep the corpus band order."
        )
    if not x.is_floating_point():
        raise ModelInputError(
            f"{sensor} chips must be floating point, got {x.dtype}; cast with .float()"
        )


def s2_to_ssl4eo(x: torch.Tensor) -> torch.Tensor:
    """(N, 12, H, W) reflectance x 10000 -> (N, 13, H, W) reflectance, zero B10, NaN -> 0."""
    check_chips(x, "s2")
    x = torch.nan_to_num(x, nan=0.0) / S2_SCALE
    zeros = x.new_zeros((x.shape[0], 1, *x.shape[2:]))
    return torch.cat([x[:, :B10_INDEX], zeros, x[:, B10_INDEX:]], dim=1)


def s1_to_model(x: torch.Tensor, normalisation: S1Normalisation = "none") -> torch.Tensor:
    """(N, 2, H, W) VV, VH in dB -> backbone input; NaN -> ``S1_NAN_FILL_DB`` as the reference."""
    check_chips(x, "s1")
    x = torch.nan_to_num(x, nan=S1_NAN_FILL_DB)
    if normalisation == "none":
        return x
    if normalisation == "ssl4eo":
        mean = x.new_tensor(S1_SSL4EO_MEAN).view(1, 2, 1, 1)
        std = x.new_tensor(S1_SSL4EO_STD).view(1, 2, 1, 1)
        return (x - mean) / std
    raise ConfigError(f"unknown s1_normalisation {normalisation!r}: use 'none' or 'ssl4eo'")


def to_model_input(
    x: torch.Tensor, sensor: Sensor, s1_normalisation: S1Normalisation = "none"
) -> torch.Tensor:
    """Corpus chips of ``sensor`` -> the backbone's channel layout and scale."""
    if check_sensor(sensor) == "s2":
        return s2_to_ssl4eo(x)
    return s1_to_model(x, s1_normalisation)
