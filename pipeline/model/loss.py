"""CLOSP loss: CLIP-style symmetric InfoNCE within each sensor's batch, averaged.

Optical and SAR images are unpaired, so each sensor's images are contrasted only with
their own captions; text is the bridge. ``ClospLoss`` returns named terms: ``loss`` is
the total to back-propagate, the others are for logging. A sensor with no samples in
the batch contributes no term and is left out of the average.

    loss_s2  = InfoNCE(S2 images, S2 captions)
    loss_s1  = InfoNCE(S1 images, S1 captions)
    loss_geo = mean over sensors of InfoNCE(images, locations)       (GeoCLOSP)
    loss     = mean(loss_s2, loss_s1) + geo_weight * loss_geo
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.model.errors import ModelInputError


def info_nce(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of paired rows: mean of the a->b and b->a cross-entropies."""
    if a.shape != b.shape or a.ndim != 2:
        raise ModelInputError(
            f"paired embeddings must share a (N, D) shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    logits = logit_scale * a.float() @ b.float().T
    labels = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


class LogitScale(nn.Module):
    """exp of a (learnable) log scale, like CLIP's ``logit_scale``: init 1/temperature, max 100."""

    def __init__(
        self, temperature: float = 0.07, learnable: bool = True, max_scale: float = 100.0
    ) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(
            torch.tensor(math.log(1 / temperature)), requires_grad=learnable
        )
        self.max_log_scale = math.log(max_scale)

    def forward(self) -> torch.Tensor:
        return self.log_scale.clamp(max=self.max_log_scale).exp()

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clip the parameter in place after an optimiser step (as open_clip does)."""
        self.log_scale.clamp_(0, self.max_log_scale)


@dataclass(frozen=True)
class SensorEmbeddings:
    """One sensor's batch in the shared space; ``location`` only for GeoCLOSP."""

    image: torch.Tensor
    text: torch.Tensor
    location: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.image.shape[0])


class ClospLoss(nn.Module):
    def __init__(self, geo_weight: float = 1.0) -> None:
        super().__init__()
        self.geo_weight = geo_weight

    def forward(
        self,
        logit_scale: torch.Tensor,
        s2: SensorEmbeddings | None = None,
        s1: SensorEmbeddings | None = None,
    ) -> dict[str, torch.Tensor]:
        present = {
            name: emb for name, emb in (("s2", s2), ("s1", s1)) if emb is not None and len(emb) > 0
        }
        if not present:
            raise ModelInputError(
                "the batch has no S2 and no S1 samples; skip empty batches before the loss"
            )
        terms = {
            f"loss_{name}": info_nce(emb.image, emb.text, logit_scale)
            for name, emb in present.items()
        }
        total = torch.stack(list(terms.values())).mean()
        geo = [
            info_nce(emb.image, emb.location, logit_scale)
            for emb in present.values()
            if emb.location is not None
        ]
        if geo:
            terms["loss_geo"] = torch.stack(geo).mean()
            total = total + self.geo_weight * terms["loss_geo"]
        return {"loss": total, **terms}
