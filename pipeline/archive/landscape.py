"""Ground-truth land cover at 10 m, labelled with CORINE level-3 codes.

The map is built in layers: Voronoi parcels (fields and forest stands) whose class
is drawn from the zone they fall in (agriculture, scrub, forest; zones follow a
smooth noise field), then lakes, a meandering river with wetlands on its banks,
towns (dense core, discontinuous fabric, industry, green areas, streets), roads
and bare patches. Every (parcel, class) piece gets its own ``field_id`` so that
spectra can vary per field.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from affine import Affine
from rasterio import features
from scipy import ndimage
from scipy.spatial import cKDTree
from shapely.geometry import LineString

from pipeline import numerics
from pipeline.archive.noise import derive_rng, smooth_field, uniform_field
from pipeline.archive.sites import AoiSpec

PIXEL_M = 10.0
MARGIN_M = 600.0


@dataclass(frozen=True)
class Zone:
    share: float
    classes: dict[int, float]


@dataclass(frozen=True)
class Profile:
    parcel_ha: float
    stretch: float  # field elongation
    zones: tuple[Zone, ...]
    lake_share: float
    lake_scale_px: float
    river_width_m: float
    towns: int
    town_radius_m: tuple[float, float]
    wetland_code: int
    wetland_share: float
    bare_codes: tuple[int, ...]


PROFILES = {
    "lowland": Profile(
        3.0, 2.2,
        (
            Zone(0.88, {211: 0.38, 212: 0.12, 221: 0.08, 222: 0.07, 231: 0.12, 242: 0.2, 241: 0.03}),
            Zone(0.12, {311: 0.6, 313: 0.25, 324: 0.15}),
        ),
        0.006, 30.0, 50.0, 4, (500.0, 1300.0), 411, 0.01, (131, 133),
    ),
    "mediterranean": Profile(
        2.0, 1.5,
        (
            Zone(0.18, {242: 0.45, 243: 0.3, 231: 0.1, 223: 0.1, 211: 0.05}),
            Zone(0.27, {324: 0.5, 323: 0.3, 322: 0.1, 321: 0.1}),
            Zone(0.55, {312: 0.45, 311: 0.35, 313: 0.2}),
        ),
        0.035, 110.0, 40.0, 3, (250.0, 550.0), 411, 0.0, (332, 333),
    ),
    "boreal": Profile(
        5.0, 1.6,
        (
            Zone(0.12, {211: 0.55, 231: 0.45}),
            Zone(0.88, {312: 0.55, 313: 0.3, 311: 0.08, 324: 0.07}),
        ),
        0.18, 90.0, 25.0, 2, (700.0, 1800.0), 412, 0.04, (131,),
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Landscape:
    """A label map on a 10 m grid in the AOI's UTM CRS (north-up)."""

    clc: np.ndarray  # uint16 CLC level-3 codes
    field_id: np.ndarray  # int32, one id per (parcel, class) piece
    transform: Affine
    epsg: int

    @property
    def shape(self) -> tuple[int, int]:
        height, width = self.clc.shape
        return (height, width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        height, width = self.shape
        minx, maxy = self.transform.c, self.transform.f
        return (minx, maxy - height * PIXEL_M, minx + width * PIXEL_M, maxy)

    def crop(self, margin_px: int) -> Landscape:
        """The same map without ``margin_px`` pixels on every side."""
        window = np.s_[margin_px:-margin_px, margin_px:-margin_px] if margin_px else np.s_[:, :]
        shifted = self.transform @ Affine.translation(margin_px, margin_px)
        return replace(
            self, clc=self.clc[window], field_id=self.field_id[window], transform=shifted
        )


def generate_landscape(site: AoiSpec, seed: int, margin_m: float = MARGIN_M) -> Landscape:
    """The ground truth of ``site`` on its bounds grown by ``margin_m`` on every side."""
    profile = PROFILES[site.profile]
    minx, miny, maxx, maxy = site.bounds
    transform = Affine(PIXEL_M, 0, minx - margin_m, 0, -PIXEL_M, maxy + margin_m)
    shape = (
        round((maxy - miny + 2 * margin_m) / PIXEL_M),
        round((maxx - minx + 2 * margin_m) / PIXEL_M),
    )
    rng = derive_rng(seed, site.name, "landscape")
    parcels = voronoi_parcels(rng, shape, profile.parcel_ha, profile.stretch)
    clc = zoned_classes(rng, parcels, profile)
    _add_lakes(rng, clc, profile)
    _add_river(rng, clc, transform, profile)
    _add_wetlands(rng, clc, profile)
    _add_bare(rng, clc, parcels, profile)
    _add_towns(rng, clc, parcels, profile)
    field_id = np.unique(parcels.astype(np.int64) * 1024 + clc, return_inverse=True)[1]
    return Landscape(clc, field_id.reshape(shape).astype(np.int32), transform, site.epsg)


def voronoi_parcels(
    rng: np.random.Generator, shape: tuple[int, int], parcel_ha: float, stretch: float
) -> np.ndarray:
    """Parcel ids of elongated Voronoi cells (one seed per ``parcel_ha`` on average)."""
    height, width = shape
    count = max(int(height * width / (parcel_ha * 100)), 4)
    seeds = rng.uniform((0, 0), (height, width), size=(count, 2))
    angle = rng.uniform(0, np.pi)
    cos_a, sin_a = float(numerics.cos(angle)), float(numerics.sin(angle))
    scale = np.array([[cos_a, sin_a], [-sin_a, cos_a]])
    scale = scale * np.sqrt(np.array([[stretch], [1.0 / stretch]]))
    rows, cols = np.mgrid[0:height, 0:width]
    pixels = np.column_stack([rows.ravel(), cols.ravel()]).astype(np.float32)
    tree = cKDTree(numerics.matmul(seeds, scale.T))
    _, nearest = tree.query(numerics.matmul(pixels, scale.T), workers=-1)
    return nearest.reshape(shape).astype(np.int32)


def zoned_classes(rng: np.random.Generator, parcels: np.ndarray, profile: Profile) -> np.ndarray:
    """Classes drawn per parcel from the zone each pixel falls in (zones from smooth noise).

    Neighbouring parcels tend to share a class (a smooth field picks the class, a fifth
    of the parcels draw independently), like farms and forest stands do.
    """
    macro = smooth_field(rng, parcels.shape, scale_px=180.0, octaves=3)
    edges = np.quantile(macro, np.cumsum([z.share for z in profile.zones])[:-1])
    zone = np.searchsorted(edges, macro).astype(np.int32)
    _, first = np.unique(parcels, return_index=True)
    choice = uniform_field(rng, parcels.shape, 100.0).ravel()[first]
    independent = rng.random(first.size) < 0.2
    choice[independent] = rng.random(int(independent.sum()))
    table = np.zeros((len(profile.zones), first.size), dtype=np.uint16)
    for index, spec in enumerate(profile.zones):
        codes = np.array(list(spec.classes), dtype=np.uint16)
        weights = np.cumsum(list(spec.classes.values()))
        table[index] = codes[
            np.minimum(np.searchsorted(weights / weights[-1], choice), codes.size - 1)
        ]
    return table[zone, parcels]


def _add_lakes(rng: np.random.Generator, clc: np.ndarray, profile: Profile) -> None:
    if profile.lake_share <= 0:
        return
    field = smooth_field(rng, clc.shape, profile.lake_scale_px, octaves=3)
    clc[field > np.quantile(field, 1 - profile.lake_share)] = 512


def river_line(rng: np.random.Generator, transform: Affine, shape: tuple[int, int]) -> LineString:
    """A west-east meander passing close to the map centre (so small AOIs contain it)."""
    height, width = shape
    x0, y0 = transform @ (0, 0)
    x1, _ = transform @ (width, 0)
    cy = y0 - height * PIXEL_M * rng.uniform(0.42, 0.5)
    xs = np.linspace(x0 - 100, x1 + 100, 400)
    t = (xs - (x0 + x1) / 2) / PIXEL_M
    wave = 60 * numerics.sin(t / rng.uniform(35, 55) + rng.uniform(0, 6.3))
    wave += 25 * numerics.sin(t / rng.uniform(9, 14) + rng.uniform(0, 6.3))
    return LineString(np.column_stack([xs, cy + wave * PIXEL_M * 0.4]))


def _add_river(
    rng: np.random.Generator, clc: np.ndarray, transform: Affine, profile: Profile
) -> None:
    line = river_line(rng, transform, clc.shape)
    mask = features.rasterize(
        [(line.buffer(profile.river_width_m / 2), 1)], out_shape=clc.shape, transform=transform
    )
    clc[mask.astype(bool)] = 511


def _add_wetlands(rng: np.random.Generator, clc: np.ndarray, profile: Profile) -> None:
    if profile.wetland_share <= 0:
        return
    noise = smooth_field(rng, clc.shape, 40.0, octaves=2)
    water = np.isin(clc, (511, 512))
    if profile.wetland_code == 412:
        bog = noise > np.quantile(noise, 1 - profile.wetland_share)
        clc[bog & ~water] = 412
        return
    near = ndimage.distance_transform_edt(~water) < 9
    clc[near & ~water & (noise > 0.6)] = profile.wetland_code


def _add_bare(
    rng: np.random.Generator, clc: np.ndarray, parcels: np.ndarray, profile: Profile
) -> None:
    land = ~np.isin(clc, (511, 512, 411, 412))
    n_parcels = int(parcels.max()) + 1
    picked = rng.random(n_parcels) < 0.006
    codes = rng.choice(np.array(profile.bare_codes, dtype=np.uint16), size=n_parcels)
    chosen = picked[parcels] & land
    clc[chosen] = codes[parcels][chosen]


def _add_towns(
    rng: np.random.Generator, clc: np.ndarray, parcels: np.ndarray, profile: Profile
) -> None:
    height, width = clc.shape
    centres = [(height * rng.uniform(0.28, 0.34), width * rng.uniform(0.55, 0.62))]
    centres += [tuple(rng.uniform((0, 0), (height, width))) for _ in range(profile.towns - 1)]
    roads = np.zeros(clc.shape, dtype=bool)
    wobble = smooth_field(rng, clc.shape, 25.0, octaves=2)
    for index, (row, col) in enumerate(centres):
        low, high = profile.town_radius_m
        radius = ((low + high) / 2 if index == 0 else rng.uniform(low, high)) / PIXEL_M
        _paint_town(rng, clc, parcels, wobble, (row, col), radius, roads)
    _connect_towns(clc, centres, roads)
    clc[roads & ~np.isin(clc, (511, 512))] = 122


def _paint_town(
    rng: np.random.Generator,
    clc: np.ndarray,
    parcels: np.ndarray,
    wobble: np.ndarray,
    centre: tuple[float, float],
    radius: float,
    roads: np.ndarray,
) -> None:
    rows, cols = np.ogrid[0 : clc.shape[0], 0 : clc.shape[1]]
    d_row, d_col = rows - centre[0], cols - centre[1]
    offset = numerics.hypot(d_row, d_col)
    dist = offset / (radius * (1 + 0.2 * wobble))
    land = ~np.isin(clc, (511, 512))
    town = (dist < 1.0) & land
    clc[town] = 112
    clc[(dist < 0.35) & land] = 111
    sector = _within_angle(d_row, d_col, offset, rng.uniform(-np.pi, np.pi), 0.7)
    clc[(dist >= 0.6) & (dist < 1.25) & sector & land] = 121
    n_parcels = int(parcels.max()) + 1
    greens = np.where(
        rng.random(n_parcels) < 0.08, 141, np.where(rng.random(n_parcels) < 0.03, 142, 0)
    )
    green = town & (dist >= 0.2) & (greens[parcels] > 0)
    clc[green] = greens[parcels][green]
    spacing = int(rng.uniform(11, 16))
    streets = ((rows % spacing) == 0) | ((cols % spacing) == 0)
    roads |= streets & (dist < 1.0)


def _within_angle(
    d_row: np.ndarray, d_col: np.ndarray, offset: np.ndarray, direction: float, half_width: float
) -> np.ndarray:
    """True where the bearing of (d_row, d_col) is within ``half_width`` rad of ``direction``
    (cosine of the angle between them, with CPU-independent sin/cos: no arctan2)."""
    cos_dir, sin_dir = float(numerics.cos(direction)), float(numerics.sin(direction))
    along = d_col * cos_dir + d_row * sin_dir
    return along > offset * float(numerics.cos(half_width))


def _connect_towns(clc: np.ndarray, centres: list[tuple[float, float]], roads: np.ndarray) -> None:
    height, width = clc.shape
    ends = [(0.0, height * 0.2), (float(width), height * 0.7)]
    points = [(c, r) for r, c in centres]
    lines = [LineString([points[i], points[i + 1]]) for i in range(len(points) - 1)]
    lines.append(LineString([ends[0], points[0], ends[1]]))
    mask = features.rasterize([(line.buffer(0.7), 1) for line in lines], out_shape=clc.shape)
    roads |= mask.astype(bool)
