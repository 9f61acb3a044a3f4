"""Shared fixtures: one tiny CLOSP / GeoCLOSP per test session (the text model loads once)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_closp():
    from pipeline.model.closp import build_model

    torch.manual_seed(0)
    return build_model("closp-tiny-cnn")


@pytest.fixture(scope="session")
def tiny_geoclosp():
    from pipeline.model.closp import build_model

    torch.manual_seed(0)
    return build_model("geoclosp-tiny-cnn")
