"""Sentinel-2 L2A scenes rendered from the truth map: 12 bands at native resolution and SCL.

Surface reflectance per field (spectra + phenology), a fine ground texture and
sensor noise; crisis effects (flood water, burn scars, wet soil); clouds from a
thresholded smooth noise field with their shadows cast away from the sun; the
swath-edge nodata wedge. Coarser bands average the 10 m reflectance. DN follow
the L2A convention: reflectance x 10000, plus 1000 from processing baseline 04.00.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import numerics
from pipeline.archive.aoi import AoiState
from pipeline.archive.cog import AssetFile, write_cog
from pipeline.archive.events import SceneEffects, scene_effects
from pipeline.archive.noise import derive_rng, smooth_field
from pipeline.archive.scenes import SceneSpec, footprint_mask
from pipeline.archive.spectra import (
    BAND_INDEX,
    BANDS,
    BUILT,
    field_reflectance,
    material_reflectance,
)

S2_RESOLUTION = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
                 "B08": 10, "B8A": 20, "B09": 60, "B11": 20, "B12": 20}  # fmt: skip
BOA_ADD_OFFSET = 1000
SCL_NODATA, SCL_SHADOW, SCL_VEGETATION, SCL_NOT_VEGETATED, SCL_WATER = 0, 3, 4, 5, 6
SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS, SCL_SNOW = 8, 9, 10, 11


@dataclass(frozen=True)
class Sky:
    """Cloud opacity, shadow strength and cirrus opacity on the 10 m grid."""

    cloud: np.ndarray
    shadow: np.ndarray
    cirrus: np.ndarray


@dataclass(frozen=True)
class S2Render:
    bands: dict[str, np.ndarray]  # uint16 DN at native resolution
    scl: np.ndarray  # uint8 at 20 m
    stats: dict[str, float]  # SCL-derived percentages for the STAC item
    valid: np.ndarray  # bool at 10 m


def render_s2(state: AoiState, scene: SceneSpec) -> S2Render:
    rng = derive_rng(state.seed, scene.item_id, "render")
    surface = surface_reflectance(state, scene, rng)
    sky = cloud_layers(rng, state.land.shape, scene)
    observed = composite(surface, sky)
    valid = footprint_mask(state.land.shape, scene)
    offset = BOA_ADD_OFFSET if scene.props["s2:processing_baseline"] >= "04.00" else 0
    bands = {}
    for name in BANDS:
        factor = S2_RESOLUTION[name] // 10
        bands[name] = encode_dn(
            block_mean(observed[BAND_INDEX[name]], factor), block_all(valid, factor), offset
        )
    scl = scene_classification(block_mean(surface, 2), block_mean_sky(sky, 2), block_all(valid, 2))
    return S2Render(bands, scl, scl_statistics(scl, valid), valid)


def surface_reflectance(state: AoiState, scene: SceneSpec, rng: np.random.Generator) -> np.ndarray:
    """(12, H, W) surface reflectance on the scene date, crisis effects included."""
    spectra = field_reflectance(state.traits, scene.when)
    refl = np.moveaxis(spectra[state.land.field_id], -1, 0) * (1 + 0.03 * state.texture)
    _apply_effects(refl, state, scene_effects(list(state.events), scene.when))
    noise = rng.standard_normal(refl.shape, dtype=np.float32)
    refl += noise * (0.0006 + 0.0015 * refl)
    return np.clip(refl, 0.0001, 1.5, out=refl)


def _apply_effects(refl: np.ndarray, state: AoiState, effects: SceneEffects) -> None:
    clc = state.land.clc
    if effects.burn is not None:
        severity = effects.burn[None]
        refl *= 1 - severity
        refl += severity * material_reflectance("burn")[:, None, None]
    if effects.wet_soil > 0:
        land = ~np.isin(clc, (511, 512, 411))
        darkening = 1 - effects.wet_soil * np.array([0.08] * 10 + [0.25, 0.25], dtype=np.float32)
        refl[:, land] *= darkening[:, None]
    if effects.flooded is not None and effects.flooded.any():
        share = np.where(np.isin(clc, tuple(BUILT)), 0.45, 0.9)[effects.flooded]
        water = material_reflectance("turbid_water")[:, None]
        refl[:, effects.flooded] = (1 - share) * refl[:, effects.flooded] + share * water


def cloud_layers(rng: np.random.Generator, shape: tuple[int, int], scene: SceneSpec) -> Sky:
    """Clouds thresholded from smooth noise to the scene's cover, shadows offset from the sun."""
    height, width = shape
    if scene.cloud <= 0:
        zero = np.zeros(shape, dtype=np.float32)
        return Sky(zero, zero, zero)
    zenith, azimuth = scene.props["s2:mean_solar_zenith"], scene.props["s2:mean_solar_azimuth"]
    zenith_rad, azimuth_rad = math.radians(min(zenith, 65)), math.radians(azimuth)
    tan_zenith = float(numerics.sin(zenith_rad)) / float(numerics.cos(zenith_rad))
    reach = rng.uniform(800, 2000) * tan_zenith / 10
    d_row = round(float(numerics.cos(azimuth_rad)) * reach)
    d_col = round(-float(numerics.sin(azimuth_rad)) * reach)
    pad = abs(d_row) + abs(d_col) + 2
    big = (height + 2 * pad, width + 2 * pad)
    noise = _upsample(smooth_field(rng, ((big[0] + 1) // 2, (big[1] + 1) // 2), 60.0, 3), big)
    depth = noise - np.quantile(noise, 1 - scene.cloud)
    opacity = np.zeros(big, dtype=np.float32)
    opacity[depth > 0] = 1 - numerics.exp(-3.0 * depth[depth > 0])
    cloud = opacity[pad : pad + height, pad : pad + width]
    shadow = opacity[pad - d_row : pad - d_row + height, pad - d_col : pad - d_col + width]
    return Sky(cloud, shadow, _cirrus(rng, shape, scene.cloud))


def _upsample(coarse: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.repeat(np.repeat(coarse, 2, axis=0), 2, axis=1)[: shape[0], : shape[1]]


def _cirrus(rng: np.random.Generator, shape: tuple[int, int], cover: float) -> np.ndarray:
    if cover < 0.3:
        return np.zeros(shape, dtype=np.float32)
    field = _upsample(smooth_field(rng, ((shape[0] + 1) // 2, (shape[1] + 1) // 2), 60.0, 2), shape)
    return np.clip((field - 1.4) / 0.5, 0, 1).astype(np.float32) * 0.12


def composite(surface: np.ndarray, sky: Sky) -> np.ndarray:
    """Top-of-canopy reflectance seen through clouds and cirrus, darkened in cloud shadows."""
    if not (sky.cloud.any() or sky.shadow.any() or sky.cirrus.any()):
        return surface
    shaded = surface * (1 - 0.7 * sky.shadow)[None]
    cloud = material_reflectance("cloud")[:, None, None]
    seen = (1 - sky.cloud)[None] * shaded + sky.cloud[None] * cloud
    return (1 - sky.cirrus)[None] * seen + sky.cirrus[None] * 0.3


def block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks over the last two axes."""
    if factor == 1:
        return array
    *lead, height, width = array.shape
    blocks = array.reshape(*lead, height // factor, factor, width // factor, factor)
    return blocks.mean(axis=(-3, -1), dtype=np.float32)


def block_all(mask: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return mask
    height, width = mask.shape
    blocks = mask.reshape(height // factor, factor, width // factor, factor)
    return np.asarray(blocks.all(axis=(1, 3)))


def block_mean_sky(sky: Sky, factor: int) -> Sky:
    return Sky(
        block_mean(sky.cloud, factor),
        block_mean(sky.shadow, factor),
        block_mean(sky.cirrus, factor),
    )


def encode_dn(reflectance: np.ndarray, valid: np.ndarray, offset: int) -> np.ndarray:
    """L2A digital numbers: reflectance x 10000 (+ BOA_ADD_OFFSET), 0 = nodata."""
    dn = np.rint(reflectance * 10000) + offset
    dn = np.clip(dn, 1, 65535).astype(np.uint16)
    dn[~valid] = 0
    return dn


def scene_classification(surface: np.ndarray, sky: Sky, valid: np.ndarray) -> np.ndarray:
    """SCL codes at 20 m from the surface spectra, then clouds, cirrus and shadows on top."""
    b03, b04, b08, b11 = (surface[BAND_INDEX[b]] for b in ("B03", "B04", "B08", "B11"))
    ndvi = (b08 - b04) / (b08 + b04)
    ndwi = (b03 - b08) / (b03 + b08)
    ndsi = (b03 - b11) / (b03 + b11)
    scl = np.full(valid.shape, SCL_NOT_VEGETATED, dtype=np.uint8)
    scl[ndvi > 0.35] = SCL_VEGETATION
    scl[(ndwi > 0.1) & (b08 < 0.08)] = SCL_WATER
    scl[(ndsi > 0.4) & (b03 > 0.3)] = SCL_SNOW
    clear = sky.cloud < 0.12
    scl[clear & (sky.shadow >= 0.45)] = SCL_SHADOW
    scl[clear & (sky.cirrus >= 0.05)] = SCL_CIRRUS
    scl[sky.cloud >= 0.12] = SCL_CLOUD_MEDIUM
    scl[sky.cloud >= 0.45] = SCL_CLOUD_HIGH
    scl[~valid] = SCL_NODATA
    return scl


def scl_statistics(scl: np.ndarray, valid10: np.ndarray) -> dict[str, float]:
    """STAC properties computed from the SCL like the L2A quality indicators."""
    counted = max(int((scl != SCL_NODATA).sum()), 1)

    def share(*codes: int) -> float:
        return round(100 * float(np.isin(scl, codes).sum()) / counted, 6)

    return {
        "eo:cloud_cover": share(SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS),
        "s2:nodata_pixel_percentage": round(100 * (1 - float(valid10.mean())), 6),
        "s2:high_proba_clouds_percentage": share(SCL_CLOUD_HIGH),
        "s2:medium_proba_clouds_percentage": share(SCL_CLOUD_MEDIUM),
        "s2:thin_cirrus_percentage": share(SCL_CIRRUS),
        "s2:cloud_shadow_percentage": share(SCL_SHADOW),
        "s2:vegetation_percentage": share(SCL_VEGETATION),
        "s2:not_vegetated_percentage": share(SCL_NOT_VEGETATED),
        "s2:water_percentage": share(SCL_WATER),
        "s2:snow_ice_percentage": share(SCL_SNOW),
    }


def write_s2(scene_dir: Path, state: AoiState, render: S2Render) -> list[AssetFile]:
    """Write the 12 band COGs and the SCL COG; return what was written."""
    written = []
    for name in BANDS:
        grid = state.grid.coarsened(S2_RESOLUTION[name] // 10)
        path = scene_dir / f"{name}.tif"
        write_cog(path, render.bands[name], grid, 0, name)
        written.append(AssetFile(name, path, grid, "uint16", 0))
    grid20 = state.grid.coarsened(2)
    write_cog(scene_dir / "SCL.tif", render.scl, grid20, 0, "SCL")
    written.append(AssetFile("SCL", scene_dir / "SCL.tif", grid20, "uint8", 0))
    return written
