"""One optimisation step and the per-epoch loss log of the training loop."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from pipeline.model.checkpoint import TrainingParts
from pipeline.model.closp import CLOSP, ClospBatch, autocast_context


def train_step(
    net: torch.nn.Module,
    model: CLOSP,
    parts: TrainingParts,
    batch: ClospBatch,
    device: torch.device,
    amp: bool,
) -> dict[str, float]:
    """Forward (under autocast when ``amp``), backward, AdamW and schedule step, clamp scale.

    ``net`` is the model or its DistributedDataParallel wrapper; ``model`` the bare module.
    """
    parts.optimizer.zero_grad(set_to_none=True)
    with autocast_context(device, amp):
        terms = net(batch)
    parts.scaler.scale(terms["loss"]).backward()
    parts.scaler.step(parts.optimizer)
    parts.scaler.update()
    parts.scheduler.step()
    model.logit_scale.clamp_()
    return {name: float(value.detach()) for name, value in terms.items()}


@dataclass
class EpochLog:
    """Mean loss terms per epoch; its state goes into checkpoints so resumed runs keep it."""

    steps_per_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    sums: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    samples: int = 0

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None, steps_per_epoch: int) -> EpochLog:
        log = cls(steps_per_epoch)
        if state:
            log.history = [dict(h) for h in state["history"]]
            log.sums, log.steps, log.samples = dict(state["sums"]), state["steps"], state["samples"]
        return log

    def state(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "sums": self.sums,
            "steps": self.steps,
            "samples": self.samples,
        }

    def add(self, step: int, terms: Mapping[str, float], samples: int) -> dict[str, float]:
        """Record one step; at an epoch's end returns its means as ``epoch_*`` metrics."""
        for name, value in terms.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.steps += 1
        self.samples += samples
        if step % self.steps_per_epoch:
            return {}
        means = {name: total / self.steps for name, total in self.sums.items()}
        self.history.append({"epoch": step // self.steps_per_epoch, **means})
        self.sums, self.steps = {}, 0
        return {f"epoch_{name}": value for name, value in means.items()}

    def last_loss(self) -> float:
        return float(self.history[-1]["loss"]) if self.history else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "final": self.history[-1] if self.history else {},
            "samples_seen": self.samples,
        }
