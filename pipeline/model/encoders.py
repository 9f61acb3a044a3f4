"""Per-sensor image encoders: backbone -> linear projection -> L2-normalised embedding."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.model.backbones import BACKBONE_FACTORIES, Backbone
from pipeline.model.config import ImageEncoderConfig
from pipeline.model.weights import LoadReport, load_backbone_weights


class ImageEncoder(nn.Module):
    """Encodes model-layout images (see ``channels``) of one sensor into the shared space.

    A frozen backbone gets no gradients and stays in eval mode (its BatchNorm statistics
    do not drift); the projection always trains.
    """

    def __init__(
        self, backbone: Backbone, embed_dim: int, input_size: int | None, freeze: bool
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection = nn.Linear(backbone.num_features, embed_dim)
        self.input_size = input_size
        self.frozen = False
        self.set_frozen(freeze)

    def set_frozen(self, freeze: bool) -> None:
        self.frozen = freeze
        self.backbone.requires_grad_(not freeze)
        if freeze:
            self.backbone.eval()

    def train(self, mode: bool = True) -> ImageEncoder:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size is None or x.shape[-2:] == (self.input_size, self.input_size):
            return x
        return F.interpolate(
            x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(self.resize(x))
        return F.normalize(self.projection(features).float(), dim=-1)


def build_backbone(config: ImageEncoderConfig) -> Backbone:
    return BACKBONE_FACTORIES[config.backbone](config.in_chans)


def build_image_encoder(
    config: ImageEncoderConfig, embed_dim: int, weights: str | Path | None = None
) -> tuple[ImageEncoder, LoadReport | None]:
    """An encoder for ``config``; ``weights`` (or ``config.weights``) loaded into its backbone."""
    backbone = build_backbone(config)
    path = weights if weights is not None else config.weights
    report = None
    if path is not None:
        hint = f"{config.backbone} with in_chans={config.in_chans}"
        if config.weights_source:
            hint += f" (expected source: {config.weights_source})"
        report = load_backbone_weights(backbone, path, hint=hint)
    return ImageEncoder(backbone, embed_dim, config.input_size, config.freeze), report
