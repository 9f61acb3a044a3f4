"""CLOSP and GeoCLOSP: the encoders, the logit scale and the loss, built from a config."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from torch import nn

from pipeline.model.channels import SENSORS, Sensor, check_sensor, to_model_input
from pipeline.model.config import ModelConfig, load_model_config
from pipeline.model.encoders import ImageEncoder, build_image_encoder
from pipeline.model.errors import ConfigError, ModelInputError
from pipeline.model.location import LocationEncoder, load_location_weights
from pipeline.model.loss import ClospLoss, LogitScale, SensorEmbeddings
from pipeline.model.text import TextEncoder

WEIGHT_KEYS = ("s2", "s1", "location")


@dataclass(frozen=True)
class SensorBatch:
    """Corpus chips of one sensor with their captions (and (lon, lat) for GeoCLOSP)."""

    images: torch.Tensor
    captions: Sequence[str]
    lonlat: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if len(self.captions) != self.images.shape[0]:
            raise ModelInputError(
                f"{self.images.shape[0]} images but {len(self.captions)} captions; give one caption per image"
            )
        if self.lonlat is not None and self.lonlat.shape[0] != self.images.shape[0]:
            raise ModelInputError("lonlat must have one (lon, lat) row per image")


@dataclass(frozen=True)
class ClospBatch:
    s2: SensorBatch | None = None
    s1: SensorBatch | None = None

    def sensor(self, sensor: Sensor) -> SensorBatch | None:
        return self.s2 if sensor == "s2" else self.s1


class CLOSP(nn.Module):
    """Per-sensor image encoders, a text encoder and, for GeoCLOSP, a location encoder."""

    def __init__(
        self,
        config: ModelConfig,
        image_encoders: Mapping[Sensor, ImageEncoder],
        text_encoder: TextEncoder,
        location_encoder: LocationEncoder | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.image_encoders = nn.ModuleDict({str(k): v for k, v in image_encoders.items()})
        self.text_encoder: TextEncoder = text_encoder
        self.location_encoder: LocationEncoder | None = location_encoder
        loss = config.loss
        self.logit_scale = LogitScale(
            loss.temperature, loss.learnable_temperature, loss.max_logit_scale
        )
        self.loss_fn = ClospLoss(loss.geo_weight)

    @property
    def device(self) -> torch.device:
        return self.logit_scale.log_scale.device

    def image_encoder(self, sensor: Sensor) -> ImageEncoder:
        return cast(ImageEncoder, self.image_encoders[sensor])

    def encode_image(self, images: torch.Tensor, sensor: str) -> torch.Tensor:
        """Corpus chips (S2: N,12,H,W reflectance x 10000; S1: N,2,H,W dB) -> (N, D)."""
        sensor = check_sensor(sensor)
        x = to_model_input(images.to(self.device), sensor, self.config.s1_normalisation)
        return self.image_encoder(sensor)(x)

    def encode_text(self, captions: Sequence[str]) -> torch.Tensor:
        return self.text_encoder(captions)

    def encode_location(self, lonlat: torch.Tensor) -> torch.Tensor:
        if self.location_encoder is None:
            raise ConfigError(
                f"model config {self.config.name!r} has no location block; use a geoclosp-* config "
                "to encode locations"
            )
        return self.location_encoder(lonlat.to(self.device))

    def embed(self, batch: SensorBatch, sensor: Sensor) -> SensorEmbeddings:
        location = None
        if self.location_encoder is not None:
            if batch.lonlat is None:
                raise ModelInputError(
                    f"GeoCLOSP needs lonlat for the {sensor} batch; add (lon, lat) rows"
                )
            location = self.encode_location(batch.lonlat)
        return SensorEmbeddings(
            self.encode_image(batch.images, sensor), self.encode_text(batch.captions), location
        )

    def forward(self, batch: ClospBatch) -> dict[str, torch.Tensor]:
        """Loss terms for a batch (see ``pipeline.model.loss``)."""
        embeddings = {
            sensor: self.embed(part, sensor)
            for sensor in SENSORS
            if (part := batch.sensor(sensor)) is not None and len(part.captions) > 0
        }
        return self.loss_fn(self.logit_scale(), **embeddings)

    def set_frozen(self, freeze: bool) -> None:
        """Freeze (or release) every pretrained part: backbones, text transformer, SIREN."""
        for sensor in SENSORS:
            self.image_encoder(sensor).set_frozen(freeze)
        self.text_encoder.set_frozen(freeze)
        if self.location_encoder is not None:
            self.location_encoder.set_frozen(freeze)


def build_model(
    config: str | Path | ModelConfig, weights: Mapping[str, str | Path | None] | None = None
) -> CLOSP:
    """A CLOSP (GeoCLOSP when the config has a location block) from a config name, path or object.

    ``weights`` overrides the config's weight files: keys ``s2``, ``s1``, ``location``.
    """
    if not isinstance(config, ModelConfig):
        config = load_model_config(config)
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(WEIGHT_KEYS))
    if unknown:
        raise ConfigError(f"unknown weights key(s) {unknown}; use {WEIGHT_KEYS}")
    encoders = {
        sensor: build_image_encoder(config.encoder(sensor), config.embed_dim, weights.get(sensor))[
            0
        ]
        for sensor in SENSORS
    }
    location = None
    if config.location is not None:
        location = LocationEncoder(config.location, config.embed_dim)
        location_weights = weights.get("location") or config.location.weights
        if location_weights is not None:
            load_location_weights(location, location_weights)
    return CLOSP(config, encoders, TextEncoder(config.text, config.embed_dim), location)


def device_for(preference: str = "auto") -> torch.device:
    """``auto``: cuda > mps > cpu; an explicit device that is not available is a ``ConfigError``."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preference)
    except RuntimeError as exc:
        raise ConfigError(
            f"unknown device {preference!r}; use auto, cpu, cuda, cuda:N or mps"
        ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {preference!r} requested but CUDA is not available; use auto or cpu"
        )
    if device.type == "mps" and not _mps_available():
        raise ConfigError(
            f"device {preference!r} requested but MPS is not available; use auto or cpu"
        )
    return device


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


AMP_DTYPES = {"cuda": torch.float16, "cpu": torch.bfloat16, "mps": torch.float16}


def amp_dtype(device: torch.device) -> torch.dtype:
    return AMP_DTYPES.get(device.type, torch.bfloat16)


def autocast_context(
    device: torch.device | str, enabled: bool = True
) -> contextlib.AbstractContextManager[None]:
    """Mixed precision for ``device``: fp16 on CUDA and MPS, bf16 on CPU; a no-op when disabled."""
    device = torch.device(device)
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype(device))


def grad_scaler(device: torch.device | str, enabled: bool = True) -> torch.amp.GradScaler:
    """Loss scaler for fp16 training; disabled (a pass-through) off CUDA or without AMP."""
    device = torch.device(device)
    return torch.amp.GradScaler(device.type, enabled=enabled and device.type == "cuda")


def trainable_parameters(model: nn.Module) -> Iterator[nn.Parameter]:
    return (p for p in model.parameters() if p.requires_grad)
