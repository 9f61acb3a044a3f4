"""Sentinel-1 IW GRD scenes rendered from the truth map: VV and VH sigma0, linear, 10 m.

Per-field backscatter (class mixtures with phenology), persistent bright point
scatterers in built-up areas, wind on water and soil moisture per scene, crisis
effects (open flood water, double bounce of flooded buildings and trees, reduced
cross-pol over burn scars), then multiplicative gamma speckle with 4.4 looks.
Delivered terrain-corrected on the AOI's UTM grid (like an ARD/RTC product).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import numerics
from pipeline.archive.aoi import AoiState
from pipeline.archive.cog import AssetFile, truncate_mantissa, write_cog
from pipeline.archive.events import SceneEffects, scene_effects
from pipeline.archive.noise import derive_rng
from pipeline.archive.scenes import SceneSpec, footprint_mask
from pipeline.archive.spectra import BUILT, WATER, field_backscatter, material_backscatter

LOOKS = 4.4
_FOREST = (311, 312, 313, 324)
_SOFT_GROUND = (211, 212, 221, 231, 241, 242, 243, 321, 333)


@dataclass(frozen=True)
class S1Render:
    vv: np.ndarray  # float32 linear sigma0, 0 = nodata
    vh: np.ndarray
    valid: np.ndarray


def render_s1(state: AoiState, scene: SceneSpec) -> S1Render:
    rng = derive_rng(state.seed, scene.item_id, "render")
    sigma = backscatter(state, scene, rng)
    speckle = rng.gamma(LOOKS, 1 / LOOKS, size=sigma.shape).astype(np.float32)
    observed = sigma * speckle
    valid = footprint_mask(state.land.shape, scene)
    observed[:, ~valid] = 0
    vv, vh = (truncate_mantissa(band) for band in observed)
    return S1Render(vv, vh, valid)


def backscatter(state: AoiState, scene: SceneSpec, rng: np.random.Generator) -> np.ndarray:
    """(2, H, W) speckle-free linear sigma0 (VV, VH) on the scene date."""
    clc = state.land.clc
    sigma = np.moveaxis(field_backscatter(state.traits, scene.when)[state.land.field_id], -1, 0)
    sigma *= _point_scatterers(state)[None]
    wind_db = rng.uniform(0.0, 3.0)
    sigma[:, np.isin(clc, tuple(WATER))] *= _gain(wind_db)
    moisture_db = rng.normal(0.0, 0.8)
    sigma[:, np.isin(clc, _SOFT_GROUND)] *= _gain(moisture_db)
    _apply_effects(sigma, clc, scene_effects(list(state.events), scene.when))
    return sigma


def _point_scatterers(state: AoiState) -> np.ndarray:
    """Persistent strong scatterers in built-up areas (the same in every scene of the AOI)."""
    rng = derive_rng(state.seed, state.site.name, "point-scatterers")
    # exp(normal) is what rng.lognormal draws, with a CPU-independent exp
    gain = numerics.exp(rng.normal(0.0, 0.6, size=state.land.shape)).astype(np.float32)
    return np.where(np.isin(state.land.clc, tuple(BUILT)), gain, 1.0).astype(np.float32)


def _apply_effects(sigma: np.ndarray, clc: np.ndarray, effects: SceneEffects) -> None:
    if effects.burn is not None:
        severity = effects.burn
        sigma[0] *= _gain(-1.2 * severity)
        sigma[1] *= _gain(-3.5 * severity)
    if effects.wet_soil > 0:
        soft = np.isin(clc, _SOFT_GROUND)
        sigma[0, soft] *= _gain(1.5 * effects.wet_soil)
        sigma[1, soft] *= _gain(1.0 * effects.wet_soil)
    if effects.flooded is not None and effects.flooded.any():
        flooded = effects.flooded
        built = flooded & np.isin(clc, tuple(BUILT))
        trees = flooded & np.isin(clc, _FOREST)
        open_water = flooded & ~built & ~trees
        sigma[:, open_water] = material_backscatter("turbid_water")[:, None]
        sigma[:, built] *= 2.0
        sigma[0, trees] *= 1.6


def _gain(db: np.ndarray | float) -> np.ndarray:
    """Linear power factor of a dB change, as float32 (CPU-independent)."""
    return numerics.db_to_power(db).astype(np.float32)


def write_s1(scene_dir: Path, state: AoiState, render: S1Render) -> list[AssetFile]:
    written = []
    for key, band in (("vv", render.vv), ("vh", render.vh)):
        path = scene_dir / f"{key}.tif"
        write_cog(path, band, state.grid, 0.0, key.upper())
        written.append(AssetFile(key, path, state.grid, "float32", 0))
    return written
