"""Pretrained weights from LOCAL files (``.pth``/``.pt``/``.ckpt`` or ``.safetensors``).

torchgeo's SSL4EO-S12 weights (e.g. ``ResNet50_Weights.SENTINEL2_ALL_MOCO``) are timm
state dicts; download the file once, keep it next to the run, and name it in the model
config or in ``build_model(weights=...)``. Wrappers (``{"state_dict": ...}``,
``{"model": ...}``) and prefixes shared by every key (``module.``, ``backbone.``,
``encoder.``, ``model.``) are removed. Classifier heads and MAE decoders in the file are
dropped; every other key must match the backbone exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.model.errors import WeightsError

WRAPPER_KEYS = ("state_dict", "model", "teacher")
SHARED_PREFIXES = ("module.", "backbone.", "encoder.", "model.")
NON_BACKBONE_PREFIXES = ("fc.", "head.", "head_drop.", "decoder", "mask_token")
OPTIONAL_SUFFIXES = ("num_batches_tracked",)


@dataclass(frozen=True)
class LoadReport:
    path: Path
    loaded: int
    dropped: tuple[str, ...]


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weight file, unwrapped and with shared prefixes removed."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"weight file {path} does not exist; download it (see docs/model.md, 'Weights') "
            "or set the encoder's weights to null to start from random initialisation"
        )
    raw = _read(path)
    state = strip_shared_prefixes(unwrap(raw, path))
    if not state:
        raise WeightsError(f"weight file {path} holds no tensors; check that it is a state dict")
    return state


def _read(path: Path) -> Any:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(
            f"weight file {path} could not be read ({type(exc).__name__}: {exc}); it must be a "
            "torch state dict (.pth/.pt/.ckpt, loadable with weights_only=True) or a .safetensors file"
        ) from exc


def unwrap(raw: Any, path: Path) -> dict[str, torch.Tensor]:
    """Follow ``state_dict``/``model``/``teacher`` wrappers down to the tensor mapping."""
    while isinstance(raw, Mapping):
        wrapper = next((k for k in WRAPPER_KEYS if isinstance(raw.get(k), Mapping)), None)
        if wrapper is None:
            break
        raw = raw[wrapper]
    if not isinstance(raw, Mapping):
        raise WeightsError(f"weight file {path} holds a {type(raw).__name__}, not a state dict")
    return {str(k): v for k, v in raw.items() if isinstance(v, torch.Tensor)}


def strip_shared_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove ``module.``/``backbone.``/... while every key starts with the same one."""
    changed = True
    while changed and state:
        changed = False
        for prefix in SHARED_PREFIXES:
            if all(key.startswith(prefix) for key in state):
                state = {key[len(prefix) :]: value for key, value in state.items()}
                changed = True
    return state


def load_backbone_weights(backbone: nn.Module, path: str | Path, *, hint: str = "") -> LoadReport:
    """Load ``path`` into ``backbone``; ``WeightsError`` naming missing/unexpected/misshapen keys."""
    state = read_state_dict(path)
    expected = backbone.state_dict()
    dropped = tuple(
        sorted(k for k in state if k not in expected and k.startswith(NON_BACKBONE_PREFIXES))
    )
    state = {k: v for k, v in state.items() if k not in dropped}
    check_keys(expected, state, Path(path), hint)
    for key, value in expected.items():
        if key.endswith(OPTIONAL_SUFFIXES) and key not in state:
            state[key] = value
    backbone.load_state_dict(state, strict=True)
    return LoadReport(Path(path), len(state), dropped)


def check_keys(
    expected: Mapping[str, torch.Tensor],
    state: Mapping[str, torch.Tensor],
    path: Path,
    hint: str = "",
) -> None:
    """Raise ``WeightsError`` unless ``state`` has exactly the keys and shapes of ``expected``."""
    missing = [k for k in expected if k not in state and not k.endswith(OPTIONAL_SUFFIXES)]
    unexpected = [k for k in state if k not in expected]
    misshapen = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if not (missing or unexpected or misshapen):
        return
    parts = [
        f"{label} ({len(keys)}): {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape file vs model", misshapen),
        )
        if keys
    ]
    raise WeightsError(
        f"weight file {path} does not fit the backbone: {'; '.join(parts)}. "
        f"Check that the config's backbone and in_chans match the file{': ' + hint if hint else ''}"
    )
