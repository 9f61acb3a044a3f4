"""The reference's text warm-up: frozen transformer for N steps, then trained; resumable."""

from __future__ import annotations

import json

import pytest
import torch

from pipeline.model.checkpoint import CHECKPOINT_DIR
from pipeline.model.config import CONFIG_DIR, load_model_config, text_unfreeze_step
from pipeline.model.errors import ConfigError
from pipeline.model.run import METRICS, MODEL_FILE
from pipeline.model.train import main

TRANSFORMER = "text_encoder.transformer."
EXTRA = ("--epochs", "2", "--seed", "5", "--batch-size", "2")  # 3 steps per epoch, 6 in all


@pytest.fixture(scope="module")
def warmup_config(tmp_path_factory):
    """closp-tiny-cnn with the text transformer frozen for 3 steps, then trained at 1e-4."""
    raw = json.loads((CONFIG_DIR / "closp-tiny-cnn.json").read_text())
    raw["name"] = "closp-tiny-cnn-warmup"
    raw["text"] |= {"unfreeze_after_steps": 3, "lr": 1e-4}
    path = tmp_path_factory.mktemp("config") / "warmup.json"
    path.write_text(json.dumps(raw))
    return str(path)


def saved(path):
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def transformer_keys(state):
    return sorted(k for k in state if k.startswith(TRANSFORMER))


def test_frozen_before_the_step_trained_after_and_resume_across_the_switch(
    tiny_corpus, tmp_path, train_argv, warmup_config
):
    """One run in three sessions (stopped at the switch, one step after it, then to the end)
    against an uninterrupted one: the transformer is saved (trainable) only after step 3,
    trains from step 4, and the final weights are bit-identical."""
    from pipeline.model.closp import build_model

    pretrained = build_model(warmup_config).state_dict()
    config = ("--model-config", warmup_config, *EXTRA)
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main(train_argv(tiny_corpus, full, *config)) == 0
    assert main(train_argv(tiny_corpus, cut, *config, "--stop-after", "3")) == 0
    assert transformer_keys(saved(cut / CHECKPOINT_DIR / "last.pt")) == []  # frozen so far
    assert main(train_argv(tiny_corpus, cut, *config, "--stop-after", "4")) == 0
    after = saved(cut / CHECKPOINT_DIR / "last.pt")
    keys = transformer_keys(after)
    assert keys and len(keys) == len(transformer_keys(pretrained))
    changed = [k for k in keys if not torch.equal(after[k], pretrained[k])]
    assert len(changed) > len(keys) // 2  # one AdamW step moves (almost) every tensor
    assert main(train_argv(tiny_corpus, cut, *config)) == 0
    a, b = saved(full / MODEL_FILE), saved(cut / MODEL_FILE)
    assert transformer_keys(a) and a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    train = json.loads((cut / METRICS).read_text())["train"]
    assert train["text_unfrozen_at_step"] == 3


def test_unfreezing_releases_the_transformer_with_its_own_learning_rate(tiny_corpus, warmup_config):
    from pipeline.model.closp import build_model
    from pipeline.model.options import parse_args
    from pipeline.model.train import DistInfo, make_optimizer, unfreeze_text

    model = build_model(warmup_config).train()
    params = list(model.text_encoder.transformer.parameters())
    assert not any(p.requires_grad for p in params) and model.text_encoder.frozen
    options = parse_args([str(tiny_corpus), "--lr", "2e-3"])
    parts = make_optimizer(model, options, 100, torch.amp.GradScaler("cpu", enabled=False))
    peaks = [g["max_lr"] for g in parts.optimizer.param_groups]
    assert peaks == [2e-3, 2e-3, 1e-4, 1e-4]
    unfreeze_text(model, DistInfo(0, 1, torch.device("cpu")), 3)
    assert all(p.requires_grad for p in params) and model.text_encoder.transformer.training


def test_schedule_in_epochs_and_bad_configs(tmp_path):
    text = load_model_config("closp-resnet50").text
    assert text_unfreeze_step(text, 37) == 37  # the reference recipe: one epoch
    assert text_unfreeze_step(load_model_config("closp-tiny-cnn").text, 37) is None
    raw = json.loads((CONFIG_DIR / "closp-tiny-cnn.json").read_text())
    for change, message in (
        ({"unfreeze_after_steps": 3, "unfreeze_after_epochs": 1}, "keep one"),
        ({"unfreeze_after_steps": 3, "freeze": False}, "freeze: true"),
        ({"lr": 0}, "positive"),
    ):
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({**raw, "text": {**raw["text"], **change}}))
        with pytest.raises(ConfigError, match=message):
            load_model_config(path)
