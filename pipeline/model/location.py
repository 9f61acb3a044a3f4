"""GeoCLOSP location encoder as in SatCLIP: spherical harmonics -> SIREN -> projection.

(lon, lat) in degrees become real spherical harmonics up to degree ``legendre_polys - 1``
(``legendre_polys ** 2`` features) with SatCLIP's angles: phi = lon + 180 deg,
theta = lat + 90 deg. ``convention="satclip"`` reproduces the analytic harmonics the
released SatCLIP checkpoints were trained with (no Condon-Shortley phase, order-0 terms
scaled by pi); ``"orthonormal"`` gives the orthonormal basis. Module and parameter
names follow SatCLIP (``nnet.layers.<i>.weight`` ...) so its location weights load.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.model.config import LocationEncoderConfig
from pipeline.model.errors import ConfigError, ModelInputError, WeightsError
from pipeline.model.weights import LoadReport, check_keys, read_state_dict

CONVENTIONS = ("satclip", "orthonormal")
SATCLIP_PREFIXES = ("model.location.", "location.")


def associated_legendre(degree: int, x: torch.Tensor) -> dict[tuple[int, int], torch.Tensor]:
    """P_l^m(x) without Condon-Shortley phase, for 0 <= m <= l < ``degree``."""
    somx2 = torch.sqrt(torch.clamp((1 - x) * (1 + x), min=0))
    table: dict[tuple[int, int], torch.Tensor] = {}
    pmm = torch.ones_like(x)
    for m in range(degree):
        if m > 0:
            pmm = pmm * (2 * m - 1) * somx2
        table[(m, m)] = pmm
        if m + 1 < degree:
            table[(m + 1, m)] = x * (2 * m + 1) * pmm
        for ell in range(m + 2, degree):
            table[(ell, m)] = (
                (2 * ell - 1) * x * table[(ell - 1, m)] - (ell + m - 1) * table[(ell - 2, m)]
            ) / (ell - m)
    return table


def _norm(ell: int, m: int) -> float:
    log_ratio = math.lgamma(ell - m + 1) - math.lgamma(ell + m + 1)
    return math.sqrt((2 * ell + 1) / (4 * math.pi) * math.exp(log_ratio))


def spherical_harmonics(
    lonlat: torch.Tensor, legendre_polys: int, convention: str = "satclip"
) -> torch.Tensor:
    """(N, 2) lon/lat degrees -> (N, legendre_polys**2) real spherical harmonics, ordered l, then m."""
    if convention not in CONVENTIONS:
        raise ConfigError(
            f"unknown spherical harmonics convention {convention!r}; use one of {CONVENTIONS}"
        )
    lonlat = lonlat.to(torch.float32 if lonlat.device.type == "mps" else torch.float64)
    phi = torch.deg2rad(lonlat[:, 0] + 180)
    theta = torch.deg2rad(lonlat[:, 1] + 90)
    legendre = associated_legendre(legendre_polys, torch.cos(theta))
    m0_scale = math.pi if convention == "satclip" else 1.0
    features = []
    for ell in range(legendre_polys):
        for m in range(-ell, ell + 1):
            base = _norm(ell, abs(m)) * legendre[(ell, abs(m))]
            if m == 0:
                features.append(m0_scale * base)
            elif m > 0:
                features.append(math.sqrt(2) * base * torch.cos(m * phi))
            else:
                features.append(math.sqrt(2) * base * torch.sin(-m * phi))
    return torch.stack(features, dim=-1).float()


class SirenLayer(nn.Module):
    """Linear layer with SIREN initialisation and a sine activation sin(w0 * x)."""

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        w0: float,
        is_first: bool,
        activation: bool = True,
        dropout: bool = False,
    ) -> None:
        super().__init__()
        bound = (1 / dim_in) if is_first else (math.sqrt(6.0 / dim_in) / w0)
        self.weight = nn.Parameter(torch.empty(dim_out, dim_in).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(dim_out).uniform_(-bound, bound))
        self.w0 = w0
        self.activation = activation
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight, self.bias)
        if self.dropout:
            x = F.dropout(x, training=self.training)
        return torch.sin(self.w0 * x) if self.activation else x


class SirenNet(nn.Module):
    def __init__(
        self,
        dim_in: int,
        dim_hidden: int,
        dim_out: int,
        num_layers: int,
        dropout: bool,
        w0_initial: float = 30.0,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            SirenLayer(
                dim_in if i == 0 else dim_hidden,
                dim_hidden,
                w0=w0_initial if i == 0 else 1.0,
                is_first=i == 0,
                dropout=dropout,
            )
            for i in range(num_layers)
        )
        self.last_layer = SirenLayer(dim_hidden, dim_out, w0=1.0, is_first=False, activation=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.last_layer(x)


class LocationEncoder(nn.Module):
    """(N, 2) lon/lat degrees -> (N, embed_dim) L2-normalised embeddings."""

    def __init__(self, config: LocationEncoderConfig, embed_dim: int) -> None:
        super().__init__()
        self.legendre_polys = config.legendre_polys
        self.convention = config.convention
        self.nnet = SirenNet(
            config.legendre_polys**2,
            config.hidden_dim,
            config.out_dim,
            config.num_layers,
            config.dropout,
        )
        self.projection = nn.Linear(config.out_dim, embed_dim)
        self.nnet.requires_grad_(not config.freeze)

    def set_frozen(self, freeze: bool) -> None:
        self.nnet.requires_grad_(not freeze)

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        check_lonlat(lonlat)
        features = spherical_harmonics(lonlat, self.legendre_polys, self.convention)
        features = features.to(self.projection.weight.device)
        return F.normalize(self.projection(self.nnet(features)).float(), dim=-1)


def check_lonlat(lonlat: torch.Tensor) -> None:
    if lonlat.ndim != 2 or lonlat.shape[1] != 2:
        raise ModelInputError(
            f"locations must be shaped (N, 2) as (lon, lat) degrees, got {tuple(lonlat.shape)}"
        )
    if not torch.isfinite(lonlat).all():
        raise ModelInputError(
            "locations contain NaN or inf; drop or fill those samples before encoding"
        )
    if (lonlat[:, 1].abs() > 90 + 1e-6).any():
        raise ModelInputError(
            "a latitude is outside [-90, 90]; pass (lon, lat) in that order, in degrees"
        )


def load_location_weights(encoder: LocationEncoder, path: str | Path) -> LoadReport:
    """Load SatCLIP location weights (its ``.ckpt`` state dict, or an extracted ``nnet.*`` dict)."""
    state = read_state_dict(path)
    for prefix in SATCLIP_PREFIXES:
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            break
    state = {k: v for k, v in state.items() if not k.startswith("posenc.")}
    expected = encoder.nnet.state_dict()
    state = {k.removeprefix("nnet."): v for k, v in state.items()}
    if not state:
        raise WeightsError(f"weight file {path} holds no location encoder tensors (nnet.*)")
    hint = f"legendre_polys={encoder.legendre_polys}, hidden_dim, num_layers and out_dim of the location block"
    check_keys(expected, state, Path(path), hint)
    encoder.nnet.load_state_dict(state, strict=True)
    return LoadReport(Path(path), len(state), ())
