import math

import numpy as np
import pytest
import torch

from pipeline.model.config import LocationEncoderConfig
from pipeline.model.errors import ModelInputError, WeightsError
from pipeline.model.location import LocationEncoder, load_location_weights, spherical_harmonics


def encoder(**overrides) -> LocationEncoder:
    torch.manual_seed(0)
    config = LocationEncoderConfig(hidden_dim=64, out_dim=64, **overrides)
    return LocationEncoder(config, embed_dim=384).eval()


def lonlat(*pairs) -> torch.Tensor:
    return torch.tensor(pairs, dtype=torch.float32)


def test_output_shape_and_unit_norm():
    out = encoder()(lonlat([0, 0], [12.5, 41.9], [-70, -33], [179, 89]))
    assert out.shape == (4, 384)
    assert torch.allclose(out.norm(dim=-1), torch.ones(4), atol=1e-5)


def test_continuous_across_the_antimeridian():
    out = encoder()(lonlat([179.999, 10.0], [-179.999, 10.0], [179.999, -60.0], [-179.999, -60.0]))
    assert torch.dot(out[0], out[1]).item() > 0.9999
    assert torch.dot(out[2], out[3]).item() > 0.9999


def test_longitude_does_not_matter_at_the_poles():
    out = encoder()(lonlat([0, 90], [123.4, 90], [0, -90], [-77.7, -90]))
    assert torch.allclose(out[0], out[1], atol=1e-5)
    assert torch.allclose(out[2], out[3], atol=1e-5)


def test_orthonormal_convention_is_orthonormal_on_the_sphere():
    degree = 6
    nodes, weights = np.polynomial.legendre.leggauss(2 * degree)
    phis = np.arange(4 * degree) * 2 * np.pi / (4 * degree)
    theta = np.arccos(nodes)
    grid = [(math.degrees(p) - 180, math.degrees(t) - 90) for t in theta for p in phis]
    quad = np.array([w * 2 * np.pi / len(phis) for w in weights for _ in phis])
    y = (
        spherical_harmonics(torch.tensor(grid, dtype=torch.float64), degree, "orthonormal")
        .double()
        .numpy()
    )
    gram = (y * quad[:, None]).T @ y
    assert y.shape[1] == degree**2
    assert np.allclose(gram, np.eye(degree**2), atol=1e-5)


def test_satclip_convention_matches_its_analytic_harmonics():
    points = lonlat([25.0, 30.0], [-100.0, -45.0])
    y = spherical_harmonics(points, 3, "satclip").double()
    phi = torch.deg2rad(points[:, 0].double() + 180)
    theta = torch.deg2rad(points[:, 1].double() + 90)
    c, s = torch.cos(theta), torch.sin(theta)
    # SatCLIP spherical_harmonics_ylm.py (2023): Yl0_m0, Yl1_m_minus_1, Yl1_m0, Yl2_m_minus_1, Yl2_m0
    assert torch.allclose(
        y[:, 0], torch.full((2,), 0.886226925452758, dtype=torch.float64), atol=1e-6
    )
    assert torch.allclose(y[:, 1], 0.48860251190292 * s * torch.sin(phi), atol=1e-6)
    assert torch.allclose(y[:, 2], 1.53499006191973 * c, atol=1e-6)
    assert torch.allclose(y[:, 5], 1.09254843059208 * s * torch.sin(phi) * c, atol=1e-6)
    assert torch.allclose(y[:, 6], 2.97249547320451 * c**2 - 0.990831824401503, atol=1e-6)


def test_bad_coordinates_are_rejected():
    with pytest.raises(ModelInputError, match="latitude"):
        encoder()(lonlat([45.0, 120.0]))
    with pytest.raises(ModelInputError, match=r"\(N, 2\)"):
        encoder()(torch.zeros(3))


def test_satclip_checkpoint_round_trip(tmp_path):
    source = encoder()
    state = {
        f"model.location.{k}": v for k, v in source.state_dict().items() if k.startswith("nnet.")
    }
    state["model.visual.conv1.weight"] = torch.zeros(1)
    path = tmp_path / "satclip-l10.ckpt"
    torch.save({"state_dict": state, "epoch": 3}, path)
    target = LocationEncoder(LocationEncoderConfig(hidden_dim=64, out_dim=64), embed_dim=384)
    report = load_location_weights(target, path)
    assert report.loaded == len(source.nnet.state_dict())
    for key, value in source.nnet.state_dict().items():
        assert torch.equal(target.nnet.state_dict()[key], value)


def test_satclip_checkpoint_with_other_sizes_is_rejected(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(encoder().nnet.state_dict(), path)
    wider = LocationEncoder(LocationEncoderConfig(hidden_dim=128, out_dim=64), embed_dim=384)
    with pytest.raises(WeightsError, match="shape"):
        load_location_weights(wider, path)
