"""Elementwise math whose bits do not depend on the CPU: exp, log, dB, sin, cos, ndtr, matmul.

NumPy picks SIMD kernels for ``log10``, ``exp``, ``sin``... by CPU (AVX-512 SVML, AVX2
or the C library), glibc picks FMA or plain variants of ``exp``, ``log``, ``pow``,
``sin``... by CPU, and OpenBLAS picks its matmul kernel by CPU: all differ in the last
bits, so a float32 dB value or a rounded digital number can differ between machines.

Every function here is built only from IEEE-754 basic operations (``+ - * /``,
``sqrt``, ``rint``, ``frexp``/``ldexp``, comparisons), each its own NumPy ufunc call,
in float64. Basic operations are correctly rounded by every SIMD path, and separate
ufunc calls are never contracted into fused multiply-adds, so the results are the same
bits on every x86-64 or ARM machine. The float64 results are within a few ulps of the
exact value; callers round them once, to float32 or to an integer.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

# ln 2 split so that k * LN2_HI is exact for |k| < 2**20 (Cody-Waite range reduction).
LN2_HI = 0.6931471803691238
LN2_LO = 1.9082149292705877e-10
INV_LN2 = 1.4426950408889634
# pi / 2 split in three 33-bit parts (k * part exact for |k| < 2**20).
PIO2_HI = 1.5707963267341256
PIO2_MID = 6.077100506303966e-11
PIO2_LO = 2.0222662487959506e-21
TWO_OVER_PI = 0.6366197723675814
SQRT_HALF = 0.7071067811865476
DB_PER_NEPER = 4.342944819032518  # 10 / ln 10: dB = DB_PER_NEPER * ln(power)
NEPER_PER_DB = 0.23025850929940456  # ln 10 / 10: power = exp(NEPER_PER_DB * dB)
EXP_MIN, EXP_MAX = -745.2, 709.78  # exp() is 0 below, inf above
TRIG_MAX = float(2**20)  # sin/cos argument reduction is exact below this

_EXP_TAYLOR = [1.0 / math.factorial(n) for n in range(14)]  # |r| <= ln2/2: term 14 < 1e-17
_LOG_SERIES = [1.0 / (2 * n + 1) for n in range(11)]  # atanh series, s*s <= 0.0295
_SIN_TAYLOR = [(-1.0) ** n / math.factorial(2 * n + 1) for n in range(9)]  # |r| <= pi/4
_COS_TAYLOR = [(-1.0) ** n / math.factorial(2 * n) for n in range(9)]


def _horner(coefficients: list[float], x: np.ndarray) -> np.ndarray:
    """sum(c[n] * x**n), one multiply and one add per step (separate ufuncs: no FMA)."""
    acc = np.full_like(x, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        np.multiply(acc, x, out=acc)
        np.add(acc, c, out=acc)
    return acc


def _float64(x: ArrayLike) -> np.ndarray:
    """A float64 copy with at least one dimension (item assignment works on it)."""
    return np.array(x, dtype=np.float64, copy=True, ndmin=1)


def exp(x_in: ArrayLike) -> np.ndarray:
    """e**x in float64 (0 below -745.2, inf above 709.78, NaN stays NaN)."""
    x = _float64(x_in)
    clipped = np.clip(np.where(np.isnan(x), 0.0, x), EXP_MIN, EXP_MAX)
    k = np.rint(np.multiply(clipped, INV_LN2))
    r = np.subtract(np.subtract(clipped, np.multiply(k, LN2_HI)), np.multiply(k, LN2_LO))
    # ldexp in two steps keeps 2**k finite for k down to -1075 (subnormal results).
    half = np.floor(np.multiply(k, 0.5)).astype(np.int32)
    out = np.ldexp(np.ldexp(_horner(_EXP_TAYLOR, r), half), k.astype(np.int32) - half)
    out[x > EXP_MAX] = np.inf
    out[x < EXP_MIN] = 0.0
    out[np.isnan(x)] = np.nan
    return out.reshape(np.shape(x_in))


def log(x_in: ArrayLike) -> np.ndarray:
    """Natural logarithm in float64 (-inf at 0, NaN below 0 and for NaN, inf at inf)."""
    x = _float64(x_in)
    finite = np.isfinite(x) & (x > 0)
    mantissa, exponent = np.frexp(np.where(finite, x, 1.0))
    low = mantissa < SQRT_HALF  # bring the mantissa into [sqrt(1/2), sqrt(2))
    mantissa = np.where(low, np.multiply(mantissa, 2.0), mantissa)
    e = np.subtract(exponent, low.astype(exponent.dtype)).astype(np.float64)
    s = np.divide(np.subtract(mantissa, 1.0), np.add(mantissa, 1.0))
    log_m = np.multiply(np.multiply(s, 2.0), _horner(_LOG_SERIES, np.multiply(s, s)))
    out = np.add(np.multiply(e, LN2_HI), np.add(log_m, np.multiply(e, LN2_LO)))
    out[x == 0] = -np.inf
    out[(x < 0) | np.isnan(x)] = np.nan
    out[x == np.inf] = np.inf
    return out.reshape(np.shape(x_in))


def power_to_db(linear: ArrayLike) -> np.ndarray:
    """10 * log10(linear) in float64 (-inf at 0)."""
    return np.multiply(log(linear), DB_PER_NEPER)


def amplitude_to_db(amplitude: ArrayLike) -> np.ndarray:
    """20 * log10(amplitude) in float64 (-inf at 0): the dB of the power amplitude**2."""
    return np.multiply(log(amplitude), 2.0 * DB_PER_NEPER)


def db_to_power(db: ArrayLike) -> np.ndarray:
    """10 ** (db / 10) in float64."""
    return exp(np.multiply(_float64(db), NEPER_PER_DB))


def _quadrant_reduce(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(r, k mod 4) with x = r + k * pi/2, |r| <= pi/4 (|x| must stay below TRIG_MAX)."""
    if np.any(np.abs(x) >= TRIG_MAX):
        raise ValueError(f"sin/cos arguments must stay below {TRIG_MAX:g} in magnitude")
    k = np.rint(np.multiply(x, TWO_OVER_PI))
    r = np.subtract(x, np.multiply(k, PIO2_HI))
    r = np.subtract(r, np.multiply(k, PIO2_MID))
    r = np.subtract(r, np.multiply(k, PIO2_LO))
    return r, np.mod(k, 4).astype(np.int8)


def _sin_cos_reduced(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r2 = np.multiply(r, r)
    return np.multiply(r, _horner(_SIN_TAYLOR, r2)), _horner(_COS_TAYLOR, r2)


def sin(x: ArrayLike) -> np.ndarray:
    """Sine in float64, for |x| < 2**20."""
    r, quadrant = _quadrant_reduce(_float64(x))
    s, c = _sin_cos_reduced(r)
    out = np.select([quadrant == 0, quadrant == 1, quadrant == 2], [s, c, -s], -c)
    return out.reshape(np.shape(x))


def cos(x: ArrayLike) -> np.ndarray:
    """Cosine in float64, for |x| < 2**20."""
    r, quadrant = _quadrant_reduce(_float64(x))
    s, c = _sin_cos_reduced(r)
    out = np.select([quadrant == 0, quadrant == 1, quadrant == 2], [c, -s, -c], s)
    return out.reshape(np.shape(x))


def hypot(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """sqrt(a*a + b*b) in float64 (no overflow guard: for coordinates and offsets)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.sqrt(np.add(np.multiply(a, a), np.multiply(b, b)))


def ndtr(x: ArrayLike) -> np.ndarray:
    """Standard normal CDF in float64.

    The tail is ``erfcx(z) * exp(-z*z) / 2`` with ``z = |x| / sqrt(2)``: SciPy's
    ``erfcx`` for ``z >= 0`` is pure arithmetic (Chebyshev fits and a continued
    fraction, no libm call), and ``exp`` is :func:`exp`.
    """
    x = np.asarray(x, dtype=np.float64)
    z = np.multiply(np.abs(x), SQRT_HALF)
    tail = np.multiply(np.multiply(special.erfcx(z), exp(-np.multiply(z, z))), 0.5)
    return np.where(x < 0, tail, np.subtract(1.0, tail))


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for 2-D arrays, in float64, summed over k in order (no BLAS kernel)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.zeros((a.shape[0], b.shape[1]), dtype=np.float64)
    for k in range(a.shape[1]):
        out = np.add(out, np.multiply(a[:, k : k + 1], b[k : k + 1, :]))
    return out
