"""Model architectures as small JSON files, loaded by name into frozen dataclasses.

``load_model_config("closp-resnet50")`` reads ``pipeline/model/configs/closp-resnet50.json``;
a path to any JSON file of the same form works too (relative weight paths in it are
resolved against that file's directory).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pipeline.model.channels import MODEL_IN_CHANS, SENSORS, S1Normalisation
from pipeline.model.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
BACKBONES = ("tiny_cnn", "resnet50", "vit_small_patch16_224")
POOLINGS = ("mean", "cls")
TEXT_PROJECTIONS = ("auto", "linear")


@dataclass(frozen=True)
class ImageEncoderConfig:
    backbone: str
    in_chans: int
    freeze: bool = True
    input_size: int | None = None
    weights: Path | None = None
    weights_source: str | None = None


@dataclass(frozen=True)
class TextEncoderConfig:
    model: str = "all-MiniLM-L6-v2"
    path: Path | None = None
    pooling: str = "mean"
    max_length: int = 64
    freeze: bool = True
    projection: str = "auto"
    unfreeze_after_steps: int | None = None  # warm-up: frozen for this many steps, then trained
    unfreeze_after_epochs: float | None = None  # the same in epochs (the reference: 1)
    lr: float | None = None  # the transformer's own one-cycle peak learning rate


@dataclass(frozen=True)
class LocationEncoderConfig:
    legendre_polys: int = 10
    hidden_dim: int = 256
    num_layers: int = 2
    out_dim: int = 256
    dropout: bool = False
    freeze: bool = False
    weights: Path | None = None
    convention: str = "satclip"


@dataclass(frozen=True)
class LossConfig:
    temperature: float = 0.07
    learnable_temperature: bool = True
    max_logit_scale: float = 100.0
    geo_weight: float = 1.0


@dataclass(frozen=True)
class ModelConfig:
    name: str
    s2: ImageEncoderConfig
    s1: ImageEncoderConfig
    text: TextEncoderConfig
    embed_dim: int = 384
    s1_normalisation: S1Normalisation = "none"
    loss: LossConfig = LossConfig()
    location: LocationEncoderConfig | None = None

    def encoder(self, sensor: str) -> ImageEncoderConfig:
        return self.s2 if sensor == "s2" else self.s1


def available_model_configs() -> tuple[str, ...]:
    """Names of the configs shipped in ``pipeline/model/configs``."""
    return tuple(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))


def config_path(name_or_path: str | Path) -> Path:
    """The JSON file for a config name or path; a clear error when there is none."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".json" or candidate.exists():
        if not candidate.is_file():
            raise ConfigError(f"model config file {candidate} does not exist; check the path")
        return candidate
    shipped = CONFIG_DIR / f"{name_or_path}.json"
    if not shipped.is_file():
        names = ", ".join(available_model_configs())
        raise ConfigError(
            f"unknown model config {name_or_path!r}: use one of {names} or a path to a JSON file"
        )
    return shipped


def load_model_config(name_or_path: str | Path) -> ModelConfig:
    """Read and validate a model config by shipped name or by path."""
    path = config_path(name_or_path)
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"model config {path} is not valid JSON ({exc}); fix the file") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"model config {path} must hold a JSON object")
    return parse_model_config(raw, source=str(path), base_dir=path.parent)


def parse_model_config(raw: dict[str, Any], source: str, base_dir: Path) -> ModelConfig:
    """Validate a decoded config dict; ``source`` names it in error messages."""
    raw = dict(raw)
    raw.setdefault("name", Path(source).stem)
    for sensor in SENSORS:
        if sensor not in raw:
            raise ConfigError(f"model config {source} has no {sensor!r} encoder block; add one")
        raw[sensor] = _section(ImageEncoderConfig, raw[sensor], f"{source}: {sensor}", base_dir)
    raw["text"] = _section(TextEncoderConfig, raw.get("text", {}), f"{source}: text", base_dir)
    raw["loss"] = _section(LossConfig, raw.get("loss", {}), f"{source}: loss", base_dir)
    if raw.get("location") is not None:
        raw["location"] = _section(
            LocationEncoderConfig, raw["location"], f"{source}: location", base_dir
        )
    config = _build(ModelConfig, raw, source)
    _check_values(config, source)
    return config


def _section(cls: type, raw: Any, where: str, base_dir: Path) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a JSON object, got {type(raw).__name__}")
    raw = dict(raw)
    for key in ("weights", "path"):
        if raw.get(key) is not None:
            raw[key] = _resolve(raw[key], base_dir)
    return _build(cls, raw, where)


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(known)}")
    try:
        return cls(**raw)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}; add the missing key") from exc


def _resolve(value: str, base_dir: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base_dir / path)


def _check_values(config: ModelConfig, source: str) -> None:
    for sensor in SENSORS:
        enc = config.encoder(sensor)
        if enc.backbone not in BACKBONES:
            raise ConfigError(
                f"{source}: {sensor}.backbone {enc.backbone!r} is unknown; use one of {BACKBONES}"
            )
        if enc.in_chans != MODEL_IN_CHANS[sensor]:
            raise ConfigError(
                f"{source}: {sensor}.in_chans is {enc.in_chans} but the {sensor} channel layout has "
                f"{MODEL_IN_CHANS[sensor]} channels; set in_chans to {MODEL_IN_CHANS[sensor]}"
            )
    if config.text.pooling not in POOLINGS:
        raise ConfigError(
            f"{source}: text.pooling {config.text.pooling!r} is unknown; use one of {POOLINGS}"
        )
    if config.text.projection not in TEXT_PROJECTIONS:
        raise ConfigError(
            f"{source}: text.projection {config.text.projection!r} is unknown; "
            f"use one of {TEXT_PROJECTIONS}"
        )
    _check_text_schedule(config.text, source)
    if config.s1_normalisation not in ("none", "ssl4eo"):
        raise ConfigError(f"{source}: s1_normalisation must be 'none' or 'ssl4eo'")
    if config.location is not None and config.location.convention not in ("satclip", "orthonormal"):
        raise ConfigError(f"{source}: location.convention must be 'satclip' or 'orthonormal'")
    if config.embed_dim <= 0 or config.loss.temperature <= 0:
        raise ConfigError(f"{source}: embed_dim and loss.temperature must be positive")


def _check_text_schedule(text: TextEncoderConfig, source: str) -> None:
    after = [v for v in (text.unfreeze_after_steps, text.unfreeze_after_epochs) if v is not None]
    if len(after) > 1:
        raise ConfigError(
            f"{source}: text.unfreeze_after_steps and text.unfreeze_after_epochs both set; keep one"
        )
    if after and not text.freeze:
        raise ConfigError(
            f"{source}: text.unfreeze_after_* needs text.freeze: true (frozen during the warm-up)"
        )
    if after and after[0] < 0:
        raise ConfigError(f"{source}: text.unfreeze_after_* must be >= 0")
    if text.lr is not None and text.lr <= 0:
        raise ConfigError(f"{source}: text.lr must be positive")


def text_unfreeze_step(text: TextEncoderConfig, steps_per_epoch: int) -> int | None:
    """The global step at which a warm-up ends and the text transformer starts training
    (``None``: no warm-up; the transformer keeps its ``freeze`` setting throughout)."""
    if text.unfreeze_after_steps is not None:
        return int(text.unfreeze_after_steps)
    if text.unfreeze_after_epochs is not None:
        return round(text.unfreeze_after_epochs * steps_per_epoch)
    return None
