import pytest
import torch

from pipeline.model.channels import (
    B10_INDEX,
    S1_SSL4EO_MEAN,
    S2_CORPUS_BANDS,
    SSL4EO_S2_BANDS,
    s1_to_model,
    s2_to_ssl4eo,
    to_model_input,
)
from pipeline.model.errors import ModelInputError


def test_b10_sits_after_b09_in_the_ssl4eo_order():
    assert (*S2_CORPUS_BANDS[:10], "B10", *S2_CORPUS_BANDS[10:]) == SSL4EO_S2_BANDS
    assert B10_INDEX == 10 and SSL4EO_S2_BANDS[B10_INDEX - 1] == "B09"


def test_s2_gets_a_zero_b10_and_is_divided_by_10000():
    band_values = torch.arange(1, 13, dtype=torch.float32) * 1000
    chips = band_values.view(1, 12, 1, 1).expand(2, 12, 4, 4).clone()
    out = s2_to_ssl4eo(chips)
    assert out.shape == (2, 13, 4, 4)
    assert torch.all(out[:, B10_INDEX] == 0)
    for corpus_index, band in enumerate(S2_CORPUS_BANDS):
        model_index = SSL4EO_S2_BANDS.index(band)
        assert torch.allclose(out[:, model_index], torch.full((2, 4, 4), (corpus_index + 1) / 10))


def test_s2_nan_becomes_zero():
    chips = torch.full((1, 12, 2, 2), float("nan"))
    assert torch.all(s2_to_ssl4eo(chips) == 0)


def test_s1_is_unchanged_by_default_and_standardised_on_request():
    chips = torch.randn(3, 2, 5, 5) * 5 - 15
    assert torch.equal(s1_to_model(chips), chips)
    out = s1_to_model(torch.tensor(S1_SSL4EO_MEAN).view(1, 2, 1, 1).expand(1, 2, 3, 3), "ssl4eo")
    assert torch.allclose(out, torch.zeros_like(out), atol=1e-6)


@pytest.mark.parametrize(
    ("sensor", "shape"), [("s2", (1, 13, 4, 4)), ("s1", (1, 3, 4, 4)), ("s2", (12, 4, 4))]
)
def test_wrong_layouts_are_rejected_with_the_expected_shape(sensor, shape):
    with pytest.raises(ModelInputError, match="must be shaped"):
        to_model_input(torch.zeros(shape), sensor)


def test_unknown_sensor_is_rejected():
    with pytest.raises(ModelInputError, match="unknown sensor"):
        to_model_input(torch.zeros(1, 2, 4, 4), "s3")
