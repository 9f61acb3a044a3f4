"""Everything the renderers need to know about one AOI, prepared once per run."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.archive.cog import RasterGrid
from pipeline.archive.events import EventFootprint, draw_event
from pipeline.archive.landscape import PIXEL_M, Landscape, generate_landscape
from pipeline.archive.noise import derive_rng, smooth_field
from pipeline.archive.sites import AoiSpec
from pipeline.archive.spectra import FieldTraits, field_traits


@dataclass(frozen=True)
class AoiState:
    """The AOI's truth (cropped to the AOI), field traits, ground texture and events."""

    site: AoiSpec
    land: Landscape
    traits: FieldTraits
    texture: np.ndarray  # float32, zero-mean fine-scale brightness variation
    events: tuple[EventFootprint, ...]
    seed: int

    @property
    def grid(self) -> RasterGrid:
        return RasterGrid(self.site.epsg, self.land.transform, self.land.shape)


def prepare_aoi(site: AoiSpec, seed: int) -> tuple[AoiState, Landscape]:
    """The AOI state and the full truth map (with the margin used by the CORINE product)."""
    full = generate_landscape(site, seed)
    margin_px = round((full.bounds[2] - full.bounds[0] - site.size_m) / 2 / PIXEL_M)
    land = full.crop(margin_px)
    traits = field_traits(full.clc, full.field_id, site.profile, seed, site.name)
    texture = smooth_field(derive_rng(seed, site.name, "texture"), land.shape, 2.5, octaves=2)
    events = tuple(draw_event(spec, land, seed) for spec in site.events)
    return AoiState(site, land, traits, texture, events, seed), full
