import pytest
import torch

from pipeline.model.backbones import TinyCNN
from pipeline.model.closp import (
    ClospBatch,
    SensorBatch,
    autocast_context,
    build_model,
    device_for,
    grad_scaler,
    trainable_parameters,
)
from pipeline.model.errors import ConfigError, ModelInputError, WeightsError


def s2_chips(n: int, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 12, size, size) * 4000


def s1_chips(n: int, size: int = 32) -> torch.Tensor:
    return torch.randn(n, 2, size, size) * 4 - 15


def batch(n2=3, n1=2, lonlat=False, size=32):
    loc = (
        (lambda n: torch.tensor([[10.0 + i, 45.0 - i] for i in range(n)]))
        if lonlat
        else (lambda n: None)
    )
    return ClospBatch(
        s2=SensorBatch(s2_chips(n2, size), ["water", "crops. built", "trees"][:n2], loc(n2)),
        s1=SensorBatch(s1_chips(n1, size), ["flooded area", "bare"][:n1], loc(n1)),
    )


def test_encode_each_modality(tiny_closp):
    with torch.no_grad():
        s2 = tiny_closp.encode_image(s2_chips(2), "s2")
        s1 = tiny_closp.encode_image(s1_chips(3), "s1")
        text = tiny_closp.encode_text(["water", "built"])
    assert s2.shape == (2, 384) and s1.shape == (3, 384) and text.shape == (2, 384)
    for emb in (s2, s1, text):
        assert torch.allclose(emb.norm(dim=-1), torch.ones(len(emb)), atol=1e-5)


def test_forward_returns_named_terms_and_trains_the_right_parts(tiny_closp):
    tiny_closp.train()
    tiny_closp.zero_grad()
    terms = tiny_closp(batch())
    assert set(terms) == {"loss", "loss_s2", "loss_s1"}
    terms["loss"].backward()
    assert tiny_closp.logit_scale.log_scale.grad is not None
    assert tiny_closp.image_encoders["s2"].projection.weight.grad is not None
    assert tiny_closp.image_encoders["s1"].backbone.features[0].weight.grad is not None
    assert all(p.grad is None for p in tiny_closp.text_encoder.transformer.parameters())
    trainable = {id(p) for p in trainable_parameters(tiny_closp)}
    assert id(tiny_closp.logit_scale.log_scale) in trainable
    tiny_closp.zero_grad()
    tiny_closp.eval()


def test_forward_with_one_sensor_only(tiny_closp):
    terms = tiny_closp(ClospBatch(s1=SensorBatch(s1_chips(2), ["water", "trees"])))
    assert set(terms) == {"loss", "loss_s1"}
    terms = tiny_closp(
        ClospBatch(s2=SensorBatch(s2_chips(2), ["a", "b"]), s1=SensorBatch(s1_chips(0), []))
    )
    assert set(terms) == {"loss", "loss_s2"}


def test_batch_validation():
    with pytest.raises(ModelInputError, match="one caption per image"):
        SensorBatch(s2_chips(2), ["only one"])


def test_location_needs_a_geoclosp_config(tiny_closp):
    with pytest.raises(ConfigError, match="geoclosp"):
        tiny_closp.encode_location(torch.zeros(1, 2))


def test_geoclosp_adds_the_location_term(tiny_geoclosp):
    terms = tiny_geoclosp(batch(lonlat=True))
    assert set(terms) == {"loss", "loss_s2", "loss_s1", "loss_geo"}
    expected = (terms["loss_s2"] + terms["loss_s1"]) / 2 + terms["loss_geo"]
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ModelInputError, match="needs lonlat"):
        tiny_geoclosp(batch())


def test_set_frozen_toggles_every_pretrained_part(tiny_geoclosp):
    tiny_geoclosp.set_frozen(True)
    assert not any(
        p.requires_grad for p in tiny_geoclosp.image_encoders["s2"].backbone.parameters()
    )
    assert not any(p.requires_grad for p in tiny_geoclosp.location_encoder.nnet.parameters())
    tiny_geoclosp.set_frozen(False)
    assert all(p.requires_grad for p in tiny_geoclosp.text_encoder.transformer.parameters())
    tiny_geoclosp.set_frozen(True)


def test_build_model_loads_weight_overrides(tmp_path):
    source = TinyCNN(in_chans=2)
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}},
        tmp_path / "s1.pth",
    )
    model = build_model("closp-tiny-cnn", weights={"s1": tmp_path / "s1.pth"})
    loaded = model.image_encoders["s1"].backbone.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())
    with pytest.raises(WeightsError, match="does not fit"):
        build_model("closp-tiny-cnn", weights={"s2": tmp_path / "s1.pth"})
    with pytest.raises(ConfigError, match="unknown weights key"):
        build_model("closp-tiny-cnn", weights={"s3": tmp_path / "s1.pth"})


def test_device_selection(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert device_for("auto").type == "cpu"
    assert device_for("cpu").type == "cpu"
    with pytest.raises(ConfigError, match="CUDA is not available"):
        device_for("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_for("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert device_for("auto").type == "mps"


def test_autocast_on_cpu_uses_bfloat16_and_keeps_the_loss_in_float32(tiny_closp):
    cpu = torch.device("cpu")
    with autocast_context(cpu, enabled=True):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
        terms = tiny_closp(batch(n2=2, n1=2, size=16))
    assert terms["loss"].dtype == torch.float32 and torch.isfinite(terms["loss"])
    with autocast_context(cpu, enabled=False):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert not grad_scaler(cpu).is_enabled()


@pytest.mark.filterwarnings("ignore:.*CUDA is not available.*:UserWarning")
def test_autocast_context_picks_float16_for_cuda():
    ctx = autocast_context("cuda", enabled=True)
    assert ctx.fast_dtype == torch.float16 and ctx.device == "cuda"
