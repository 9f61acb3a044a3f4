import math

import pytest
import torch
import torch.nn.functional as F

from pipeline.model.errors import ModelInputError
from pipeline.model.loss import ClospLoss, LogitScale, SensorEmbeddings, info_nce


def unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


def test_info_nce_matches_hand_computation_on_2x2():
    images = unit([1.0, 0.0], [0.0, 1.0])
    texts = unit([1.0, 0.0], [0.6, 0.8])
    scale = torch.tensor(2.0)
    # similarities: [[1, 0.6], [0, 0.8]] -> logits x2: [[2, 1.2], [0, 1.6]]
    row0 = -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(1.2)))
    row1 = -math.log(math.exp(1.6) / (math.exp(0.0) + math.exp(1.6)))
    col0 = -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(0.0)))
    col1 = -math.log(math.exp(1.6) / (math.exp(1.2) + math.exp(1.6)))
    expected = ((row0 + row1) / 2 + (col0 + col1) / 2) / 2
    assert info_nce(images, texts, scale).item() == pytest.approx(expected, rel=1e-6)


def test_info_nce_is_symmetric():
    torch.manual_seed(0)
    a, b = F.normalize(torch.randn(5, 8), dim=-1), F.normalize(torch.randn(5, 8), dim=-1)
    scale = torch.tensor(10.0)
    assert info_nce(a, b, scale).item() == pytest.approx(info_nce(b, a, scale).item(), rel=1e-6)


def test_closp_loss_averages_the_sensor_terms():
    torch.manual_seed(0)
    emb = {k: F.normalize(torch.randn(4, 8), dim=-1) for k in ("a", "b", "c", "d")}
    s2, s1 = SensorEmbeddings(emb["a"], emb["b"]), SensorEmbeddings(emb["c"], emb["d"])
    terms = ClospLoss()(torch.tensor(14.0), s2=s2, s1=s1)
    assert set(terms) == {"loss", "loss_s2", "loss_s1"}
    assert terms["loss"].item() == pytest.approx((terms["loss_s2"] + terms["loss_s1"]).item() / 2)


def test_empty_sensor_batch_is_left_out():
    torch.manual_seed(0)
    s2 = SensorEmbeddings(
        F.normalize(torch.randn(3, 8), dim=-1), F.normalize(torch.randn(3, 8), dim=-1)
    )
    empty = SensorEmbeddings(torch.zeros(0, 8), torch.zeros(0, 8))
    terms = ClospLoss()(torch.tensor(14.0), s2=s2, s1=empty)
    assert set(terms) == {"loss", "loss_s2"}
    assert terms["loss"].item() == pytest.approx(terms["loss_s2"].item())
    with pytest.raises(ModelInputError, match="no S2 and no S1"):
        ClospLoss()(torch.tensor(14.0), s2=None, s1=empty)


def test_geo_term_is_weighted_into_the_total():
    torch.manual_seed(0)
    img, txt, loc = (F.normalize(torch.randn(4, 8), dim=-1) for _ in range(3))
    terms = ClospLoss(geo_weight=0.5)(torch.tensor(5.0), s2=SensorEmbeddings(img, txt, loc))
    assert terms["loss_geo"].item() == pytest.approx(info_nce(img, loc, torch.tensor(5.0)).item())
    assert terms["loss"].item() == pytest.approx(
        terms["loss_s2"].item() + 0.5 * terms["loss_geo"].item()
    )


def test_learnable_logit_scale_gets_gradients_and_is_clamped():
    scale = LogitScale(temperature=0.07)
    assert scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    torch.manual_seed(0)
    a = F.normalize(torch.randn(4, 8), dim=-1)
    info_nce(a, F.normalize(a + 0.1 * torch.randn(4, 8), dim=-1), scale()).backward()
    assert scale.log_scale.grad is not None and scale.log_scale.grad.abs().item() > 0
    with torch.no_grad():
        scale.log_scale.fill_(10.0)
    assert scale().item() == pytest.approx(100.0)
    scale.clamp_()
    assert scale.log_scale.item() == pytest.approx(math.log(100.0))
    assert not LogitScale(learnable=False).log_scale.requires_grad


def test_mismatched_pairs_are_rejected():
    with pytest.raises(ModelInputError, match="share a"):
        info_nce(torch.zeros(3, 8), torch.zeros(2, 8), torch.tensor(1.0))
