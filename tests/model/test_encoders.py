import pytest
import torch
from safetensors.torch import save_file

from pipeline.model.backbones import ResNet50, TinyCNN, VisionTransformer
from pipeline.model.config import ImageEncoderConfig, load_model_config
from pipeline.model.encoders import build_image_encoder
from pipeline.model.errors import ModelInputError, WeightsError
from pipeline.model.weights import load_backbone_weights, read_state_dict


@pytest.mark.parametrize(("sensor", "in_chans"), [("s2", 13), ("s1", 2)])
def test_tiny_cnn_encoder_gives_unit_384d_embeddings(sensor, in_chans):
    config = load_model_config("closp-tiny-cnn").encoder(sensor)
    encoder, report = build_image_encoder(config, embed_dim=384)
    out = encoder(torch.randn(3, in_chans, 120, 120))
    assert report is None
    assert out.shape == (3, 384)
    assert torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_frozen_backbone_gets_no_gradients_and_keeps_batchnorm_statistics():
    config = ImageEncoderConfig(backbone="tiny_cnn", in_chans=2, freeze=True)
    encoder, _ = build_image_encoder(config, embed_dim=16)
    encoder.train()
    before = {k: v.clone() for k, v in encoder.backbone.state_dict().items()}
    encoder(torch.randn(4, 2, 32, 32)).sum().backward()
    assert all(p.grad is None for p in encoder.backbone.parameters())
    assert encoder.projection.weight.grad is not None
    assert all(torch.equal(before[k], v) for k, v in encoder.backbone.state_dict().items())
    encoder.set_frozen(False)
    encoder.train()
    assert encoder.backbone.training and all(p.requires_grad for p in encoder.backbone.parameters())


@pytest.mark.parametrize(
    ("backbone", "in_chans", "input_size", "width"),
    [("resnet50", 13, None, 2048), ("vit_small_patch16_224", 2, 224, 384)],
)
def test_large_backbones_one_sample_forward(backbone, in_chans, input_size, width):
    config = ImageEncoderConfig(backbone=backbone, in_chans=in_chans, input_size=input_size)
    encoder, _ = build_image_encoder(config, embed_dim=384)
    with torch.no_grad():
        out = encoder.eval()(torch.randn(1, in_chans, 120, 120))
    assert encoder.projection.in_features == width
    assert out.shape == (1, 384) and out.norm().item() == pytest.approx(1.0, abs=1e-5)


def test_vit_rejects_sizes_that_are_not_a_patch_multiple():
    with pytest.raises(ModelInputError, match="input_size"):
        VisionTransformer(in_chans=2, depth=1)(torch.randn(1, 2, 120, 120))


def save_torchgeo_style(path, backbone, *, wrap=True, prefix="backbone."):
    state = {f"{prefix}{k}": v.clone() for k, v in backbone.state_dict().items()}
    state[f"{prefix}fc.weight"] = torch.zeros(10, int(backbone.num_features))
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({"state_dict": state, "epoch": 99} if wrap else state, path)
    return path


def randomised(module):
    torch.manual_seed(1)
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point():
                tensor.normal_()
    return module


def assert_same_state(target, source):
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_resnet50_torchgeo_style_round_trip(tmp_path):
    source = randomised(ResNet50(in_chans=13))
    path = save_torchgeo_style(tmp_path / "resnet50_sentinel2_all_moco.pth", source)
    target = ResNet50(in_chans=13)
    report = load_backbone_weights(target, path)
    assert report.dropped == ("fc.weight",)
    assert_same_state(target, source)


@pytest.mark.parametrize(
    ("name", "wrap", "prefix"),
    [
        ("w.pth", False, "module."),
        ("w.pth", False, ""),
        ("w.safetensors", False, ""),
        ("w.pt", True, ""),
    ],
)
def test_weight_file_formats_and_prefixes(tmp_path, name, wrap, prefix):
    source = randomised(TinyCNN(in_chans=13))
    path = save_torchgeo_style(tmp_path / name, source, wrap=wrap, prefix=prefix)
    target = TinyCNN(in_chans=13)
    load_backbone_weights(target, path)
    assert_same_state(target, source)


def test_num_batches_tracked_may_be_absent(tmp_path):
    source = randomised(TinyCNN(in_chans=2))
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "w.pth")
    target = TinyCNN(in_chans=2)
    load_backbone_weights(target, tmp_path / "w.pth")
    assert torch.equal(target.features[1].running_mean, source.features[1].running_mean)


def test_wrong_in_chans_gives_a_clear_error(tmp_path):
    torch.save(TinyCNN(in_chans=3).state_dict(), tmp_path / "rgb.pth")
    with pytest.raises(
        WeightsError, match=r"features.0.weight \(16, 3, 3, 3\) vs \(16, 13, 3, 3\).*in_chans=13"
    ):
        load_backbone_weights(
            TinyCNN(in_chans=13), tmp_path / "rgb.pth", hint="tiny_cnn with in_chans=13"
        )


def test_missing_and_unexpected_backbone_keys_are_named(tmp_path):
    state = TinyCNN(in_chans=2).state_dict()
    state.pop("features.3.weight")
    state["features.9.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(
        WeightsError, match=r"missing \(1\): features.3.weight.*unexpected \(1\): features.9"
    ):
        load_backbone_weights(TinyCNN(in_chans=2), tmp_path / "broken.pth")


def test_vit_weights_for_another_backbone_are_rejected(tmp_path):
    torch.save(VisionTransformer(in_chans=13, depth=1).state_dict(), tmp_path / "vit.pth")
    config = ImageEncoderConfig(backbone="tiny_cnn", in_chans=13, weights=tmp_path / "vit.pth")
    with pytest.raises(WeightsError, match="does not fit the backbone"):
        build_image_encoder(config, embed_dim=384)


def test_missing_or_unreadable_files(tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="could not be read"):
        read_state_dict(tmp_path / "junk.pth")
