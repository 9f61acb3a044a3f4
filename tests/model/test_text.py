import torch

from pipeline.model.config import TextEncoderConfig
from pipeline.model.text import TextEncoder, mean_pool


def test_offline_text_encoder_gives_unit_384d_embeddings(tiny_closp):
    text = tiny_closp.text_encoder
    out = text(["flooded farmland", "a flooded field", "snow on a glacier"])
    assert out.shape == (3, 384)
    assert torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-5)
    flood_flood = torch.dot(out[0], out[1]).item()
    flood_snow = torch.dot(out[0], out[2]).item()
    assert flood_flood > flood_snow + 0.1


def test_text_encoder_is_frozen_by_default_and_in_eval(tiny_closp):
    text = tiny_closp.text_encoder
    tiny_closp.train()
    assert not text.transformer.training
    assert not any(p.requires_grad for p in text.transformer.parameters())
    tiny_closp.eval()


def test_tokenize_pads_and_truncates(tiny_closp):
    tokens = tiny_closp.text_encoder.tokenize(["water", "crops. " * 100])
    assert tokens["input_ids"].shape == (2, 64)
    assert tokens["attention_mask"][0].sum() < tokens["attention_mask"][1].sum() == 64


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    assert torch.equal(mean_pool(hidden, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 2.0]]))


def test_encoders_do_not_share_the_cached_weights():
    a = TextEncoder(TextEncoderConfig(freeze=False), 384)
    b = TextEncoder(TextEncoderConfig(), 384)
    with torch.no_grad():
        next(a.transformer.parameters()).add_(1.0)
    assert not torch.equal(next(a.transformer.parameters()), next(b.transformer.parameters()))
    assert all(p.requires_grad for p in a.transformer.parameters())


def test_cls_pooling_and_projection_options():
    text = TextEncoder(TextEncoderConfig(pooling="cls"), embed_dim=128)
    out = text(["built", "water"])
    assert out.shape == (2, 128)
    assert text(["x"] * 0).shape == (0, 128)
