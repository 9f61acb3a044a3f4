"""A training run directory: its files, the trained model, and ``metrics.json``.

<run>/model-config.json   copy of the model config (weight paths cleared: model.pt holds them)
<run>/train-config.json   the training options
<run>/checkpoints/        last.pt and step-NNNNNNN.pt (model, optimiser, schedule, RNG, data)
<run>/model.pt            the trained weights
<run>/metrics.json        {"train": ..., "retrieval": ...}
<run>/mlflow.json         tracking URI and MLflow run id
<run>/index/              corpus embeddings and the search index (``clm embed``)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.model.closp import CLOSP, build_model
from pipeline.model.config import ModelConfig, config_path, load_model_config
from pipeline.model.errors import ConfigError
from pipeline.storage import atomic_path, write_json_atomic

MODEL_CONFIG = "model-config.json"
TRAIN_CONFIG = "train-config.json"
MODEL_FILE = "model.pt"
METRICS = "metrics.json"
MLFLOW_FILE = "mlflow.json"
INDEX_DIR = "index"


def write_model_config(run_dir: Path, name_or_path: str | Path) -> ModelConfig:
    """Copy the model config into the run (weight paths cleared) and return it parsed."""
    raw = json.loads(config_path(name_or_path).read_text())
    config = load_model_config(name_or_path)
    for sensor in ("s2", "s1", "location"):
        if isinstance(raw.get(sensor), dict) and "weights" in raw[sensor]:
            raw[sensor]["weights"] = None
    if config.text.path is not None:
        raw.setdefault("text", {})["path"] = str(config.text.path)
    write_json_atomic(Path(run_dir) / MODEL_CONFIG, raw)
    return config


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict without the frozen text transformer (it is the packaged model)."""
    text = getattr(model, "text_encoder", None)
    skip = "text_encoder.transformer." if text is not None and text.frozen else None
    return {
        k: v.detach().cpu()
        for k, v in model.state_dict().items()
        if skip is None or not k.startswith(skip)
    }


def load_model_state(model: CLOSP, state: Mapping[str, torch.Tensor]) -> None:
    result = model.load_state_dict(dict(state), strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("text_encoder.transformer.")]
    if missing or result.unexpected_keys:
        raise ConfigError(
            f"the saved weights do not fit the model config (missing {missing[:3]}, unexpected "
            f"{result.unexpected_keys[:3]}); use the run directory's own model-config.json"
        )


def save_model(run_dir: Path, model: CLOSP, step: int) -> Path:
    path = Path(run_dir) / MODEL_FILE
    with atomic_path(path) as tmp:
        torch.save({"model": model_state(model), "step": step}, tmp)
    return path


def load_trained_model(run_dir: Path, device: torch.device | str = "cpu") -> CLOSP:
    """The trained CLOSP of a run directory, in eval mode on ``device``."""
    run_dir = Path(run_dir)
    weights, config = run_dir / MODEL_FILE, run_dir / MODEL_CONFIG
    if not weights.is_file() or not config.is_file():
        raise ConfigError(
            f"{run_dir} holds no trained model ({MODEL_FILE}, {MODEL_CONFIG}); "
            "train one first with `clm train CORPUS --run-dir DIR`"
        )
    model = build_model(config)
    saved = torch.load(weights, map_location="cpu", weights_only=True)
    load_model_state(model, saved["model"])
    return model.to(device).eval()


def read_metrics(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / METRICS
    return json.loads(path.read_text()) if path.is_file() else {}


def update_metrics(run_dir: Path, section: str, value: Any) -> Path:
    """Replace one section of ``metrics.json`` (``train``, ``retrieval``) atomically."""
    metrics = read_metrics(run_dir)
    metrics[section] = (
        asdict(value) if is_dataclass(value) and not isinstance(value, type) else value
    )
    path = Path(run_dir) / METRICS
    write_json_atomic(path, metrics)
    return path


def run_corpus(run_dir: Path) -> Path:
    """The corpus a run was trained on (from its ``train-config.json``)."""
    saved = Path(run_dir) / TRAIN_CONFIG
    if not saved.is_file():
        raise ConfigError(f"{run_dir} has no {TRAIN_CONFIG}; pass --corpus or train the run first")
    return Path(json.loads(saved.read_text())["options"]["corpus"])
