"""Pixel values to the corpus convention, from whatever the band contract says they are.

The corpus holds S2 as reflectance x 10000 harmonised to the pre-04.00 scale (float32) and
S1 as backscatter in dB (float32, floored and nodata at ``S1_DB_FLOOR``). A band's
``BandValues`` (``pipeline.sources.band_values``) say what it holds: S1 linear power (dB =
10 log10), linear amplitude (dB = 20 log10) or dB (kept); S2 DN with scale and offset
(reflectance = DN * scale + offset). Logarithms come from ``pipeline.numerics`` (the same
bits on every CPU). A plausibility guard stops a declaration the pixels contradict.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pipeline.errors import ChipReadError, ConfigError
from pipeline.numerics import amplitude_to_db, power_to_db
from pipeline.sources.band_values import S1_UNITS, fix_hint, resolved
from pipeline.sources.base import S1_BANDS, BandValues, Scene
from pipeline.sources.redact import redact

S2_OFFSET_BASELINE = (4, 0)
S2_BOA_ADD_OFFSET = 1000.0
S2_QUANTIFICATION = 10000.0  # corpus S2 values are reflectance x 10000
SCL_CLOUDY = (3, 8, 9, 10)  # cloud shadow, cloud medium/high probability, thin cirrus
S1_DB_FLOOR = -50.0
MIN_EVIDENCE = 144  # pixels (1 % of a chip) the guard needs before it judges a declaration
LINEAR_MAX_NEGATIVE = 0.5  # linear data is never negative; dB data of land mostly is
DB_LINEAR_MEDIAN = 1.0  # dB data with no negative value and a median below 1 is linear
DB_MAX_MEDIAN = 60.0  # no backscatter has a median above 60 dB: raw digital numbers


def s1_channels(scene: Scene) -> dict[str, str | None]:
    """Corpus channel (VV, VH) -> the band read into it, None when filled (the selection's
    polarisation policy, ``extra["s1_channels"]``; plain VV + VH otherwise)."""
    mapping = scene.extra.get("s1_channels") or {c: c for c in S1_BANDS}
    return {channel: mapping.get(channel) for channel in S1_BANDS}  # band order, not JSON's


def s1_image(scene: Scene, planes: Mapping[str, np.ndarray]) -> tuple[np.ndarray, float]:
    """(2, H, W) dB float32 and the nodata fraction of the channels actually read (a filled
    channel is ``S1_DB_FLOOR`` throughout and does not count as nodata)."""
    channels = s1_channels(scene)
    converted = {b: to_db(scene, b, planes[b]) for b in channels.values() if b is not None}
    shape = next(iter(planes.values())).shape
    nodata = np.zeros(shape, dtype=bool)
    for _, missing in converted.values():
        nodata |= missing
    fill = np.full(shape, S1_DB_FLOOR, dtype=np.float32)
    db = np.stack([converted[b][0] if b else fill for b in channels.values()])
    db[:, nodata] = S1_DB_FLOOR
    return db, float(nodata.mean())


def to_db(scene: Scene, band: str, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One band in dB (float32, floored) and its nodata mask, per its band contract."""
    values = resolved(scene, band)
    if values.unit not in S1_UNITS:
        raise ConfigError(
            f"scene {scene.item_id}: band {band} at {_href(scene, band)} declares unit "
            f"{values.unit!r}, not one of {list(S1_UNITS)}; {fix_hint('s1', band, 'db')} "
            "with the unit the asset really holds"
        )
    x = raw.astype(np.float32)
    missing = ~np.isfinite(x)
    if values.nodata is not None:
        missing |= raw == values.nodata
    x = _scaled(x, values)
    check_plausible(scene, band, x, missing, values.unit)
    if values.unit == "db":
        db = x.astype(np.float64)
    else:
        missing |= x <= 0
        log = power_to_db if values.unit == "linear_power" else amplitude_to_db
        db = log(np.where(missing, 1.0, x))
    return np.clip(db, S1_DB_FLOOR, None).astype(np.float32), missing


def _scaled(x: np.ndarray, values: BandValues) -> np.ndarray:
    """``raw * scale + offset`` (float64, basic operations only); ``x`` itself when neither."""
    scale = 1.0 if values.scale is None else values.scale
    offset = 0.0 if values.offset is None else values.offset
    if scale == 1.0 and offset == 0.0:
        return x
    return np.add(np.multiply(x.astype(np.float64), scale), offset)


def check_plausible(
    scene: Scene, band: str, x: np.ndarray, missing: np.ndarray, unit: str | None
) -> None:
    """``ConfigError`` naming the asset and the fix when its valid pixels contradict ``unit``:
    "linear" data mostly negative (it is dB), "dB" data never negative with a median below
    1 (it is linear) or a median above 60 (raw digital numbers). Exact zeros are no evidence
    (a common fill value)."""
    evidence = x[~missing & (x != 0)]
    if evidence.size < MIN_EVIDENCE:
        return
    negative = float(np.mean(evidence < 0))
    if unit != "db" and negative > LINEAR_MAX_NEGATIVE:
        _implausible(scene, band, unit, f"{negative:.0%} of its valid pixels are negative", "db")
    median = float(np.median(evidence))
    if unit == "db" and negative < 0.01 and median < DB_LINEAR_MEDIAN:
        what = f"no valid pixel is below 0 dB and the median is {median:.3g}"
        _implausible(scene, band, unit, what + ", typical of linear power", "linear_power")
    if unit == "db" and median > DB_MAX_MEDIAN:
        what = f"its median is {median:.3g}, no backscatter in dB is this high"
        _implausible(scene, band, unit, what, "linear_power (with scale) or linear_amplitude")


def _implausible(scene: Scene, band: str, unit: str | None, what: str, likely: str) -> None:
    raise ConfigError(
        f"scene {scene.item_id}: band {band} at {_href(scene, band)} is declared {unit} but "
        f"{what}: the declaration is likely wrong. If the asset holds {likely}, "
        f"{fix_hint('s1', band, likely.split()[0])}"
    )


def _href(scene: Scene, band: str) -> str:
    return redact(scene.assets[band].href)


def s2_image(
    scene: Scene, planes: list[np.ndarray], scl: np.ndarray
) -> tuple[np.ndarray, float, float]:
    """(12, H, W) reflectance x 10000 float32, nodata fraction and cloud fraction."""
    values = [resolved(scene, band) for band in scene.bands]
    dn = np.stack(planes).astype(np.float32)
    nodata = np.all(dn == _nodata_codes(values), axis=0) | (scl == 0)
    gain, bias = _s2_gain_bias(scene, values)
    if np.any(gain != 1.0):
        dn = np.clip(np.add(np.multiply(dn.astype(np.float64), gain), bias), 0, None)
        dn = dn.astype(np.float32)
    elif np.any(bias != 0.0):
        dn = np.clip(dn + bias.astype(np.float32), 0, None)
    dn[:, nodata] = 0
    valid = ~nodata
    cloudy = np.isin(scl, SCL_CLOUDY) & valid
    cloud = float(cloudy.sum() / valid.sum()) if valid.any() else 0.0
    return dn, float(nodata.mean()), cloud


def _nodata_codes(values: list[BandValues]) -> np.ndarray:
    codes = [0.0 if v.nodata is None else v.nodata for v in values]
    return np.array(codes, dtype=np.float32).reshape(-1, 1, 1)


def _s2_gain_bias(scene: Scene, values: list[BandValues]) -> tuple[np.ndarray, np.ndarray]:
    """Per band, corpus value = DN * gain + bias: gain = scale x 10000 (1 for the standard
    1e-4), bias = offset x 10000; an undeclared offset follows the baseline rule (-1000 for
    baselines >= 04.00 unless the provider removed it already)."""
    rule = -S2_BOA_ADD_OFFSET if _boa_offset_in_pixels(scene) else 0.0
    gain = [1.0 if v.scale is None else round(v.scale * S2_QUANTIFICATION, 9) for v in values]
    bias = [rule if v.offset is None else round(v.offset * S2_QUANTIFICATION, 6) for v in values]
    return (
        np.array(gain, dtype=np.float64).reshape(-1, 1, 1),
        np.array(bias, dtype=np.float64).reshape(-1, 1, 1),
    )


def _boa_offset_in_pixels(scene: Scene) -> bool:
    return has_boa_offset(scene.processing_baseline) and not scene.boa_offset_applied


def has_boa_offset(baseline: str | None) -> bool:
    """True for S2 L2A processing baselines >= 04.00 (digital numbers carry +1000)."""
    if not baseline:
        return False
    major, _, minor = baseline.partition(".")
    try:
        return (int(major), int(minor or 0)) >= S2_OFFSET_BASELINE
    except ValueError as exc:
        raise ChipReadError(f"unreadable s2:processing_baseline {baseline!r}") from exc
