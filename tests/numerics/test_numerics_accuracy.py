"""pipeline.numerics against mpmath (arbitrary precision, correctly rounded) on sampled values.

Accuracy is what lets the CPU-independent functions replace NumPy's: the S1 dB pixels
must be the correctly rounded float32 of 10 log10(linear), and the float64 functions
feeding the simulator must stay within a few ulps.
"""

from __future__ import annotations

import math
from datetime import datetime

import mpmath
import numpy as np
import pytest
import rasterio

from pipeline import numerics
from pipeline.chips.grid import ChipGeometry
from pipeline.chips.plan import PlannedChip
from pipeline.chips.read import S1_DB_FLOOR, read_scene_chips
from pipeline.sources.base import BandAsset, Scene

mpmath.mp.prec = 120


def _ulps(got: float, exact: mpmath.mpf) -> float:
    """|got - exact| in float64 ulps of the exact value."""
    if exact == 0:
        return 0.0 if got == 0 else math.inf
    return float(abs(mpmath.mpf(got) - exact) / math.ulp(float(exact)))


def _float32_nearest(exact: mpmath.mpf) -> np.float32:
    """Round ``exact`` to the nearest float32 (ties to even) in one step, not via float64."""
    with mpmath.workprec(24):
        return np.float32(float(+exact))


def _db_reference(linear: np.float32) -> np.float32:
    return _float32_nearest(10 * mpmath.log10(mpmath.mpf(float(linear))))


def _band(path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def test_s1_db_pixels_are_correctly_rounded(s1_bands):
    vv, vh = s1_bands
    scene = Scene(
        "s1-acc", "sentinel-1-grd", "s1", "sentinel-1a", datetime(2021, 1, 1), 32632,
        (0.0, 0.0, 0.0, 0.0), {}, {"VV": BandAsset(str(vv)), "VH": BandAsset(str(vh))},
    )  # fmt: skip
    chip = PlannedChip("s1-acc_10_20", "s1-acc", ChipGeometry(32632, 10, 20))
    [pixels] = read_scene_chips(scene, [chip])
    linear = np.stack([_band(p) for p in (vv, vh)])
    valid = np.all(np.isfinite(linear) & (linear > 0), axis=0)
    assert (~valid).sum() == 4  # 0, -1, NaN, inf
    assert (pixels.image[:, ~valid] == S1_DB_FLOOR).all()
    got, inputs = pixels.image[:, valid], linear[:, valid]
    wrong, worst = 0, 0.0
    for value, x in zip(got.ravel(), inputs.ravel(), strict=True):
        expected = max(_db_reference(x), np.float32(S1_DB_FLOOR))
        if value != expected:
            wrong += 1
            worst = max(worst, abs(int(value.view(np.int32)) - int(expected.view(np.int32))))
    assert wrong == 0, f"{wrong} of {got.size} dB values not correctly rounded (max {worst} ulp)"


def test_exact_powers_of_ten_give_whole_decibels():
    powers = np.array([10.0**k for k in range(-10, 11)], dtype=np.float64)
    db = numerics.power_to_db(powers).astype(np.float32)
    assert db.tolist() == [10.0 * k for k in range(-10, 11)]


@pytest.mark.parametrize(
    ("name", "reference", "low", "high", "max_ulps"),
    [
        ("exp", mpmath.exp, -745.0, 709.7, 2.0),
        ("log", mpmath.log, 1e-320, 1e308, 2.0),
        ("sin", mpmath.sin, -3000.0, 3000.0, 2.0),
        ("cos", mpmath.cos, -3000.0, 3000.0, 2.0),
        ("power_to_db", lambda x: 10 * mpmath.log10(x), 1e-45, 3.4e38, 3.0),
        ("amplitude_to_db", lambda x: 20 * mpmath.log10(x), 1e-45, 3.4e38, 3.0),
        ("db_to_power", lambda x: mpmath.power(10, x / 10), -400.0, 380.0, 300.0),
        ("ndtr", mpmath.ncdf, -9.0, 9.0, 200.0),
    ],
)
def test_float64_functions_stay_within_a_few_ulps(name, reference, low, high, max_ulps):
    rng = np.random.default_rng(11)
    if name in ("log", "power_to_db", "amplitude_to_db"):
        xs = np.exp(rng.uniform(np.log(low), np.log(high), 4000))
    else:
        xs = rng.uniform(low, high, 4000)
    got = getattr(numerics, name)(xs)
    errors = [
        _ulps(float(g), reference(mpmath.mpf(float(x)))) for g, x in zip(got, xs, strict=True)
    ]
    assert max(errors) <= max_ulps, f"{name}: max error {max(errors):.2f} ulp"


def test_special_values():
    assert numerics.exp(np.array([-800.0, 800.0, np.nan])).tolist()[:2] == [0.0, math.inf]
    assert np.isnan(numerics.exp(np.nan))
    logs = numerics.log(np.array([0.0, -1.0, math.inf, 5e-324, 1.0]))
    assert logs[0] == -math.inf and np.isnan(logs[1]) and logs[2] == math.inf
    assert logs[3] == pytest.approx(-744.4400719213812, rel=1e-15) and logs[4] == 0.0
    with pytest.raises(ValueError, match="below"):
        numerics.sin(np.array([2.0**21]))


def test_matmul_sums_in_order_in_float64():
    rng = np.random.default_rng(5)
    a, b = rng.random((50, 22)).astype(np.float32), rng.random((22, 12)).astype(np.float32)
    expected = np.array(
        [[math.fsum(float(a[i, k]) * float(b[k, j]) for k in range(22)) for j in range(12)]
         for i in range(50)]
    )  # fmt: skip
    got = numerics.matmul(a, b)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-14)


def test_split_constants_add_up_to_the_exact_values():
    with mpmath.workprec(200):
        assert abs(mpmath.mpf(numerics.LN2_HI) + numerics.LN2_LO - mpmath.log(2)) < 1e-25
        pio2 = mpmath.mpf(numerics.PIO2_HI) + numerics.PIO2_MID + numerics.PIO2_LO
        assert abs(pio2 - mpmath.pi / 2) < 1e-35
    for part in (numerics.LN2_HI, numerics.PIO2_HI, numerics.PIO2_MID):
        mantissa, _ = math.frexp(part)
        assert (mantissa * 2**33).is_integer()  # k * part is exact for |k| < 2**20
