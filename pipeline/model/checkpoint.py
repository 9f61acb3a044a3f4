"""Training checkpoints: everything needed to continue a run bit for bit.

A checkpoint holds the model weights (without the frozen text transformer), the
optimiser, the learning-rate schedule, the loss scaler, the global step, each sensor
stream's data position and the Python, NumPy and torch RNG states. Files are written
atomically; ``last.pt`` always names the newest and older ``step-*.pt`` are pruned.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.model.errors import ConfigError
from pipeline.model.run import load_model_state, model_state
from pipeline.storage import atomic_path

CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"


@dataclass
class TrainingParts:
    """The stateful objects a checkpoint captures (the model unwrapped from DDP)."""

    model: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    run_dir: Path, parts: TrainingParts, step: int, data: dict[str, Any], keep: int = 2
) -> Path:
    """Write ``checkpoints/step-NNNNNNN.pt`` and ``last.pt``; keep the newest ``keep`` steps."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    payload = {
        "step": step,
        "model": model_state(parts.model),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "scaler": parts.scaler.state_dict(),
        "data": data,
        "rng": rng_state(),
    }
    path = folder / f"step-{step:07d}.pt"
    for target in (path, folder / LAST):
        with atomic_path(target) as tmp:
            torch.save(payload, tmp)
    for old in sorted(folder.glob("step-*.pt"))[:-keep] if keep > 0 else []:
        old.unlink()
    return path


def load_checkpoint(path: Path, parts: TrainingParts) -> tuple[int, dict[str, Any]]:
    """Restore ``parts`` and the RNG states from ``path``; returns (step, data positions)."""
    if not Path(path).is_file():
        raise ConfigError(f"checkpoint {path} does not exist; check --resume")
    # RNG states hold NumPy arrays and Python tuples, so this trusted file is not weights-only.
    saved = torch.load(path, map_location="cpu", weights_only=False)
    load_model_state(parts.model, saved["model"])
    parts.optimizer.load_state_dict(saved["optimizer"])
    parts.scheduler.load_state_dict(saved["scheduler"])
    parts.scaler.load_state_dict(saved["scaler"])
    set_rng_state(saved["rng"])
    return int(saved["step"]), dict(saved["data"])


def last_checkpoint(run_dir: Path) -> Path | None:
    path = Path(run_dir) / CHECKPOINT_DIR / LAST
    return path if path.is_file() else None
