"""Per-class Sentinel-2 L2A reflectance and Sentinel-1 C-band backscatter, with phenology.

Reflectances are typical bottom-of-atmosphere values at the 12 L2A band centres,
read off published library spectra (USGS Spectral Library v7, ECOSTRESS/ASTER
library) and common Sentinel-2 signatures; backscatter values are typical
sigma0 at 30-45 degrees incidence from C-band literature (see docs/demo-archive.md).
A CORINE class is a mixture of materials; its vegetated part follows a seasonal
greenness curve, per field shifted in time and scaled in brightness.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from pipeline import numerics
from pipeline.archive.noise import derive_rng

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
BAND_INDEX = {name: index for index, name in enumerate(BANDS)}

# Reflectance (0-1) at B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12.
MATERIALS: dict[str, tuple[float, ...]] = {
    "green_crop":   (.025, .035, .075, .035, .115, .330, .420, .450, .460, .440, .240, .120),
    "broadleaf":    (.020, .028, .055, .027, .085, .270, .340, .360, .375, .360, .180, .085),
    "conifer":      (.015, .020, .038, .020, .058, .165, .205, .220, .228, .215, .110, .050),
    "grass":        (.030, .040, .075, .050, .110, .260, .310, .330, .345, .330, .240, .130),
    "dry_grass":    (.060, .075, .105, .135, .170, .205, .225, .240, .250, .250, .330, .250),
    "shrub":        (.035, .045, .070, .065, .105, .185, .215, .230, .240, .235, .230, .140),
    "leafless":     (.045, .055, .075, .085, .110, .140, .160, .175, .185, .185, .260, .190),
    "soil":         (.070, .090, .130, .170, .200, .220, .235, .250, .265, .270, .330, .270),
    "stubble":      (.075, .095, .135, .165, .200, .225, .245, .260, .270, .270, .340, .260),
    "rock":         (.110, .130, .160, .180, .200, .210, .220, .230, .240, .245, .280, .240),
    "sand":         (.150, .180, .240, .290, .320, .340, .350, .360, .370, .370, .420, .360),
    "water":        (.050, .055, .065, .040, .030, .020, .015, .012, .010, .006, .004, .003),
    "river_water":  (.060, .065, .085, .065, .055, .035, .028, .024, .020, .012, .008, .005),
    "turbid_water": (.080, .090, .120, .115, .100, .060, .048, .042, .035, .020, .012, .008),
    "built_roof":   (.110, .125, .140, .155, .170, .180, .190, .200, .210, .210, .250, .220),
    "asphalt":      (.070, .080, .090, .100, .110, .115, .120, .125, .130, .130, .150, .140),
    "industrial":   (.150, .170, .190, .205, .220, .230, .240, .250, .260, .260, .300, .270),
    "marsh":        (.030, .038, .065, .045, .090, .200, .240, .255, .265, .250, .150, .075),
    "bog":          (.030, .040, .060, .060, .085, .150, .180, .190, .200, .195, .160, .090),
    "snow":         (.880, .900, .890, .870, .850, .830, .810, .790, .770, .700, .080, .060),
    "burn":         (.040, .045, .050, .060, .070, .085, .095, .105, .110, .110, .190, .175),
    "cloud":        (.480, .500, .510, .520, .530, .530, .540, .540, .540, .400, .420, .330),
}  # fmt: skip

# Sigma0 in dB (VV, VH).
BACKSCATTER_DB: dict[str, tuple[float, float]] = {
    "green_crop": (-10.0, -16.5), "broadleaf": (-7.2, -12.8), "conifer": (-7.0, -13.5),
    "grass": (-11.0, -18.0), "dry_grass": (-12.0, -20.0), "shrub": (-8.8, -15.0),
    "leafless": (-8.3, -15.0), "soil": (-13.5, -21.5), "stubble": (-12.5, -20.0),
    "rock": (-10.0, -18.0), "sand": (-16.0, -24.0), "water": (-22.0, -28.5),
    "river_water": (-19.0, -26.0), "turbid_water": (-21.0, -27.5), "built_roof": (2.0, -6.0),
    "asphalt": (-13.0, -21.0), "industrial": (1.0, -7.0), "marsh": (-9.5, -17.0),
    "bog": (-12.0, -20.0), "snow": (-14.0, -22.0), "burn": (-9.0, -17.5),
}  # fmt: skip


@dataclass(frozen=True)
class ClassModel:
    """A CLC class as static materials plus vegetated parts with a phenology each."""

    static: tuple[tuple[str, float], ...] = ()
    veg: tuple[tuple[str, float], ...] = ()


def _m(static: dict[str, float] | None = None, **veg: float) -> ClassModel:
    return ClassModel(tuple((static or {}).items()), tuple(veg.items()))


CLASS_MODELS: dict[int, ClassModel] = {
    111: _m({"built_roof": 0.55, "asphalt": 0.35}, grass=0.1),
    112: _m({"built_roof": 0.35, "asphalt": 0.2}, grass=0.3, broadleaf=0.15),
    121: _m({"industrial": 0.7, "asphalt": 0.25}, grass=0.05),
    122: _m({"asphalt": 0.7}, grass=0.3),
    123: _m({"industrial": 0.6, "asphalt": 0.3, "water": 0.1}),
    124: _m({"asphalt": 0.4}, grass=0.6),
    131: _m({"rock": 0.7, "soil": 0.3}),
    132: _m({"soil": 0.8, "industrial": 0.2}),
    133: _m({"soil": 0.75, "built_roof": 0.25}),
    141: _m(grass=0.6, broadleaf=0.4),
    142: _m({"built_roof": 0.15}, grass=0.85),
    211: _m(arable=1.0),
    212: _m(irrigated=1.0),
    213: _m({"water": 0.3}, irrigated=0.7),
    221: _m({"soil": 0.45}, vine=0.55),
    222: _m(deciduous=0.5, grass=0.5),
    223: _m({"soil": 0.45}, evergreen=0.4, grass=0.15),
    231: _m(grass=1.0),
    241: _m(arable=0.6, deciduous=0.4),
    242: _m(arable=0.6, grass=0.25, deciduous=0.15),
    243: _m(arable=0.4, grass=0.2, shrub=0.2, evergreen=0.2),
    244: _m(deciduous=0.5, grass=0.5),
    311: _m(broadleaf=1.0),
    312: _m(conifer=1.0),
    313: _m(broadleaf=0.5, conifer=0.5),
    321: _m(grass=1.0),
    322: _m(shrub=0.7, grass=0.3),
    323: _m({"soil": 0.15}, shrub=0.85),
    324: _m(shrub=0.55, broadleaf=0.3, grass=0.15),
    331: _m({"sand": 1.0}),
    332: _m({"rock": 1.0}),
    333: _m({"rock": 0.5, "soil": 0.2}, grass=0.3),
    334: _m({"burn": 1.0}),
    335: _m({"snow": 1.0}),
    411: _m({"water": 0.25}, marsh=0.75),
    412: _m(bog=1.0),
    421: _m({"water": 0.3}, marsh=0.7),
    422: _m({"sand": 0.6, "water": 0.4}),
    423: _m({"water": 0.5, "soil": 0.5}),
    511: _m({"river_water": 1.0}),
    512: _m({"water": 1.0}),
    521: _m({"water": 1.0}),
    522: _m({"turbid_water": 1.0}),
    523: _m({"water": 1.0}),
}

# CLC level-3 code -> EEA raster GRID_CODE (1..44).
CLC_GRID_CODE: dict[int, int] = {code: index + 1 for index, code in enumerate(sorted(CLASS_MODELS))}

DW_LABELS = ("water", "trees", "grass", "flooded_vegetation", "crops", "shrub_and_scrub",
             "built", "bare", "snow_and_ice")  # fmt: skip
_DW_GROUPS = {
    6: (111, 112, 121, 122, 123, 124),
    7: (131, 132, 133, 331, 332, 333, 422, 423, 334),
    2: (141, 142, 231, 321),
    4: (211, 212, 221, 222, 223, 241, 242, 243),
    3: (213, 411, 412, 421),
    1: (244, 311, 312, 313),
    5: (322, 323, 324),
    8: (335,),
    0: (511, 512, 521, 522, 523),
}
# CLC level-3 code -> Dynamic World label value; burnt areas (334) have no DW class: bare.
CLC_TO_DW: dict[int, int] = {code: dw for dw, codes in _DW_GROUPS.items() for code in codes}

BURNABLE = frozenset({211, 212, 221, 222, 223, 231, 241, 242, 243, 244, 311, 312, 313, 321,
                      322, 323, 324, 333, 141})  # fmt: skip
BUILT = frozenset({111, 112, 121, 123, 133})
WATER = frozenset({511, 512, 521, 522, 523})

MATERIAL_NAMES = tuple(MATERIALS)
_REFLECTANCE = np.array([MATERIALS[name] for name in MATERIAL_NAMES], dtype=np.float32)
_BACKSCATTER = numerics.db_to_power(
    [BACKSCATTER_DB.get(name, (-15.0, -22.0)) for name in MATERIAL_NAMES]
).astype(np.float32)
_MAT = {name: index for index, name in enumerate(MATERIAL_NAMES)}

# Vegetated part -> (green material, off-season material).
_PHENOLOGY_MATERIALS = {
    "winter_crop": ("green_crop", "soil"), "summer_crop": ("green_crop", "soil"),
    "grass": ("grass", "dry_grass"), "deciduous": ("broadleaf", "leafless"),
    "evergreen": ("broadleaf", "shrub"), "conifer": ("conifer", "conifer"),
    "shrub": ("shrub", "dry_grass"), "vine": ("green_crop", "soil"),
    "marsh": ("marsh", "dry_grass"), "bog": ("bog", "dry_grass"),
}  # fmt: skip
_CLIMATE_SHIFT = {"lowland": 0.0, "mediterranean": -15.0, "boreal": 25.0}


@dataclass(frozen=True)
class FieldTraits:
    """Per-field constants: class, crop calendar, timing and brightness."""

    clc: np.ndarray  # (n,) CLC code of each field
    summer_crop: np.ndarray  # (n,) bool: arable field sown in spring
    shift_days: np.ndarray  # (n,) phenology shift
    brightness: np.ndarray  # (n,) multiplicative reflectance factor
    sar_offset_db: np.ndarray  # (n,) roughness / row-direction offset
    climate: str


def field_traits(
    clc: np.ndarray, field_id: np.ndarray, climate: str, seed: int, aoi: str
) -> FieldTraits:
    """Draw the per-field constants once per AOI; every scene of the AOI reuses them."""
    count = int(field_id.max()) + 1
    codes = np.zeros(count, dtype=np.uint16)
    codes[field_id.ravel()] = clc.ravel()
    rng = derive_rng(seed, aoi, "field-traits")
    summer_share = np.where(codes == 212, 0.85, 0.45)
    return FieldTraits(
        clc=codes,
        summer_crop=rng.random(count) < summer_share,
        shift_days=rng.normal(0.0, 7.0, count),
        brightness=np.clip(rng.normal(1.0, 0.06, count), 0.85, 1.15),
        sar_offset_db=rng.normal(0.0, 0.7, count),
        climate=climate,
    )


def _bump(doy: np.ndarray, start: float, end: float, width: float = 9.0) -> np.ndarray:
    rise = numerics.exp(-(doy - start) / width)
    fall = numerics.exp(-(doy - end) / width)
    return 1 / (1 + rise) - 1 / (1 + fall)


def greenness(phen: str, doy: np.ndarray, climate: str) -> tuple[np.ndarray, np.ndarray]:
    """Green fraction ``g`` and stubble share ``s`` of the off-season part, per field."""
    d = doy - _CLIMATE_SHIFT[climate]
    zero = np.zeros_like(d)
    if phen == "winter_crop":
        g = 0.9 * _bump(d, 75, 165) + 0.2 * (_bump(d, 300, 400) + _bump(d, -65, 40))
        return g, _bump(d, 165, 265)
    if phen == "summer_crop":
        return 0.95 * _bump(d, 140, 250), _bump(d, 250, 320)
    if phen == "grass":
        if climate == "mediterranean":
            return 0.2 + 0.65 * (1 - _bump(doy, 150, 285)), zero
        return 0.35 + 0.55 * _bump(d, 85, 300), zero
    return _perennial(phen, d, doy, climate), zero


def _perennial(phen: str, d: np.ndarray, doy: np.ndarray, climate: str) -> np.ndarray:
    if phen == "deciduous":
        return 0.1 + 0.85 * _bump(d, 110, 300 - (30 if climate == "boreal" else 0))
    if phen == "shrub" and climate == "mediterranean":
        return 0.55 + 0.35 * (1 - _bump(doy, 160, 290))
    curves = {
        "evergreen": lambda: np.full_like(d, 0.9),
        "conifer": lambda: np.ones_like(d),
        "shrub": lambda: 0.5 + 0.4 * _bump(d, 105, 290),
        "vine": lambda: 0.05 + 0.85 * _bump(d, 125, 285),
        "marsh": lambda: 0.3 + 0.65 * _bump(d, 100, 290),
        "bog": lambda: 0.5 + 0.4 * _bump(d, 140, 260),
    }
    return curves[phen]()


def _resolve(part: str, traits: FieldTraits, rows: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Split a vegetated part into concrete phenologies, with the fields each applies to."""
    if part in ("arable", "irrigated"):
        summer = traits.summer_crop[rows]
        return [("summer_crop", rows[summer]), ("winter_crop", rows[~summer])]
    if part == "broadleaf":
        return [("evergreen" if traits.climate == "mediterranean" else "deciduous", rows)]
    return [(part, rows)]


def mixture_weights(traits: FieldTraits, when: datetime) -> np.ndarray:
    """(n_fields, n_materials) area fractions of every material in every field on ``when``."""
    weights = np.zeros((traits.clc.size, len(MATERIAL_NAMES)), dtype=np.float32)
    doy = when.timetuple().tm_yday + traits.shift_days
    for code in np.unique(traits.clc):
        rows = np.flatnonzero(traits.clc == code)
        model = CLASS_MODELS[int(code)]
        for material, share in model.static:
            weights[rows, _MAT[material]] += share
        for part, share in model.veg:
            for phen, sub in _resolve(part, traits, rows):
                _add_vegetation(weights, phen, sub, share, doy[sub], traits.climate)
    return weights


def _add_vegetation(
    weights: np.ndarray, phen: str, rows: np.ndarray, share: float, doy: np.ndarray, climate: str
) -> None:
    if rows.size == 0:
        return
    green, off = _PHENOLOGY_MATERIALS[phen]
    g, s = greenness(phen, doy, climate)
    g = np.clip(g, 0.0, 1.0)
    weights[rows, _MAT[green]] += share * g
    weights[rows, _MAT[off]] += share * (1 - g) * (1 - s)
    weights[rows, _MAT["stubble"]] += share * (1 - g) * s


def field_reflectance(traits: FieldTraits, when: datetime) -> np.ndarray:
    """(n_fields, 12) surface reflectance of every field on ``when``."""
    mix = mixture_weights(traits, when)
    mixed = numerics.matmul(mix, _REFLECTANCE).astype(np.float32)
    return mixed * traits.brightness[:, None].astype(np.float32)


def field_backscatter(traits: FieldTraits, when: datetime) -> np.ndarray:
    """(n_fields, 2) linear sigma0 (VV, VH) of every field on ``when``."""
    mix = mixture_weights(traits, when)
    gain = numerics.db_to_power(traits.sar_offset_db[:, None])
    return numerics.matmul(mix, _BACKSCATTER).astype(np.float32) * gain.astype(np.float32)


def material_reflectance(name: str) -> np.ndarray:
    return _REFLECTANCE[_MAT[name]].copy()


def material_backscatter(name: str) -> np.ndarray:
    return _BACKSCATTER[_MAT[name]].copy()
