"""Crisis events of the simulated archive, delivered like Copernicus EMS rapid mapping products.

An event is drawn on the AOI's truth map (a flood along the river, a wildfire in
the forest), vectorised, and written as an EMS delineation vector package with the
2023+ layer naming ``EMSR9001_AOI01_DEL_PRODUCT_observedEventA_r1_v1`` plus an
activation JSON. The rasterised polygons drive the imagery, so scenes follow the
vectors exactly. Activation codes EMSR9001/EMSR9002 are synthetic.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
from rasterio import features
from scipy import ndimage
from shapely.geometry import box, shape

from pipeline import numerics
from pipeline.archive.geometry import reproject
from pipeline.archive.landscape import Landscape
from pipeline.archive.noise import derive_rng, smooth_field, uniform_field
from pipeline.archive.sites import AoiSpec, EventSpec
from pipeline.archive.spectra import BURNABLE, WATER
from pipeline.storage import write_json_atomic

# EMS observed-event attributes. "5-Flood" is read from real products (EMSR332); the
# wildfire code follows the EM-DAT numbering of the EMS data model (assumed, see docs).
EMS_ATTRIBUTES = {
    "flood": {"event_type": "5-Flood", "obj_desc": "Riverine flood", "notation": "Flooded area"},
    "wildfire": {"event_type": "8-Wildfire", "obj_desc": "Forest fire", "notation": "Burnt area"},
}
CATEGORY = {"flood": ("Flood", "Riverine flood"), "wildfire": ("Wildfire", "Forest fire")}
NOT_APPLICABLE = "Not Applicable"
# Flood water under tree canopy or among buildings is not delineated (not seen by SAR/optical).
CANOPY = (311, 312, 313, 324)


@dataclass(frozen=True)
class EventFootprint:
    """An event rasterised on the AOI grid: affected pixels and a per-pixel intensity."""

    spec: EventSpec
    mask: np.ndarray  # bool, AOI grid
    intensity: np.ndarray  # float32 in [0, 1]: flood persistence or burn severity
    polygons: tuple  # shapely polygons in the AOI's UTM CRS


@dataclass(frozen=True)
class SceneEffects:
    """What the events change in one acquisition."""

    flooded: np.ndarray | None  # bool: open water now
    wet_soil: float  # 0..1 soil wetness boost after a flood
    burn: np.ndarray | None  # float32 severity, 0 where unburnt


def draw_event(spec: EventSpec, land: Landscape, seed: int) -> EventFootprint:
    """The affected area of ``spec`` on the AOI truth map ``land``."""
    rng = derive_rng(seed, spec.code, spec.area_id, "footprint")
    raw = _flood_area(rng, land) if spec.hazard == "flood" else _fire_area(rng, land)
    polygons = _vectorise(raw, land)
    mask = features.rasterize(
        [(p, 1) for p in polygons], out_shape=land.shape, transform=land.transform
    )
    mask = mask.astype(bool) & ~np.isin(land.clc, tuple(WATER))
    if spec.hazard == "wildfire":
        mask &= np.isin(land.clc, tuple(BURNABLE))
    intensity = 0.55 + 0.45 * uniform_field(rng, land.shape, 20.0)
    return EventFootprint(spec, mask, intensity.astype(np.float32), tuple(polygons))


def _flood_area(rng: np.random.Generator, land: Landscape) -> np.ndarray:
    river = land.clc == 511
    distance_m = ndimage.distance_transform_edt(~river) * 10.0
    width_m = 220.0 + 380.0 * uniform_field(rng, land.shape, 60.0)
    reach = smooth_field(rng, land.shape, 150.0, octaves=1) > -0.4
    hidden = ((land.clc >= 100) & (land.clc < 200)) | np.isin(land.clc, CANOPY)
    return (distance_m < width_m) & reach & ~river & ~hidden


def _fire_area(rng: np.random.Generator, land: Landscape) -> np.ndarray:
    height, width = land.shape
    rows, cols = np.ogrid[0:height, 0:width]
    centre = (height * rng.uniform(0.6, 0.68), width * rng.uniform(0.3, 0.38))
    radius = 0.3 * min(height, width)
    wobble = smooth_field(rng, land.shape, 0.25 * radius, octaves=2)
    offset = numerics.hypot((rows - centre[0]) * 1.3, cols - centre[1])
    dist = offset / (radius * (1 + 0.3 * wobble))
    return (dist < 1.0) & ~np.isin(land.clc, tuple(WATER))


def _vectorise(mask: np.ndarray, land: Landscape, min_ha: float = 1.0) -> list:
    opened = ndimage.binary_opening(mask, iterations=1)
    shapes = features.shapes(opened.astype(np.uint8), mask=opened, transform=land.transform)
    polygons = [shape(geom).simplify(8.0, preserve_topology=True) for geom, _ in shapes]
    return [p for p in polygons if p.is_valid and p.area >= min_ha * 1e4]


def scene_effects(footprints: list[EventFootprint], when: datetime) -> SceneEffects:
    """Flood water, soil wetness and burn severity visible on ``when``."""
    flooded, burn, wet = None, None, 0.0
    for event in footprints:
        age_days = (when - event.spec.event_time).total_seconds() / 86400
        if age_days < 0:
            continue
        if event.spec.hazard == "flood" and event.spec.visible_days:
            lasting = event.spec.visible_days * event.intensity
            flooded = event.mask & (age_days < lasting)
            wet = max(wet, float(np.clip(1.5 - age_days / (2 * event.spec.visible_days), 0, 1)))
        elif event.spec.hazard == "wildfire":
            fading = numerics.exp(-age_days / 400)
            burn = np.where(event.mask, event.intensity * fading, 0).astype(np.float32)
    return SceneEffects(flooded, wet, burn)


def write_ems_product(
    root: Path,
    site: AoiSpec,
    event: EventFootprint,
    pre: tuple[str, datetime],
    post: tuple[str, datetime],
) -> dict:
    """Write the EMS-style vector package and activation JSON; return the manifest entry."""
    spec = event.spec
    final = root / "events" / spec.code
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.code}.", dir=final.parent))
    try:
        names = _write_layers(staging, site, event, pre, post)
        staging.chmod(0o755)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    metadata = final / f"{spec.code}_activation.json"
    write_json_atomic(metadata, activation_metadata(site, spec))
    metadata.chmod(0o644)
    layers = {key: (final / name).relative_to(root).as_posix() for key, name in names.items()}
    return _manifest_entry(site, spec, layers, metadata.relative_to(root).as_posix())


def _layer_name(spec: EventSpec, layer: str) -> str:
    return f"{spec.code}_{spec.area_id}_DEL_PRODUCT_{layer}_r1_v1"


def _write_layers(
    folder: Path,
    site: AoiSpec,
    event: EventFootprint,
    pre: tuple[str, datetime],
    post: tuple[str, datetime],
) -> dict[str, str]:
    spec = event.spec
    stamp = {"DBF_DATE_LAST_UPDATE": (post[1] + timedelta(days=1)).strftime("%Y-%m-%d")}
    observed = _observed_frame(event, site.epsg)
    aoi = gpd.GeoDataFrame(
        {"emsr_id": [spec.code], "glide_no": [NOT_APPLICABLE], "area_id": [spec.area_id[-2:]],
         "locality": [spec.locality], "map_type": ["Delineation"]},
        geometry=[reproject(box(*site.bounds).segmentize(600.0), site.epsg, 4326)], crs=4326,
    )  # fmt: skip
    names = {
        "observed_event": _layer_name(spec, "observedEventA") + ".shp",
        "area_of_interest": _layer_name(spec, "areaOfInterestA") + ".shp",
        "source": _layer_name(spec, "source") + ".dbf",
    }
    pyogrio.write_dataframe(observed, folder / names["observed_event"], layer_options=stamp)
    pyogrio.write_dataframe(aoi, folder / names["area_of_interest"], layer_options=stamp)
    pyogrio.write_dataframe(_source_table(pre, post), folder / names["source"], layer_options=stamp)
    return names


def _observed_frame(event: EventFootprint, epsg: int) -> gpd.GeoDataFrame:
    attrs = EMS_ATTRIBUTES[event.spec.hazard]
    count = len(event.polygons)
    table = {
        "event_type": [attrs["event_type"]] * count,
        "obj_desc": [attrs["obj_desc"]] * count,
        "det_method": ["Semi-automatic extraction"] * count,
        "notation": [attrs["notation"]] * count,
        "dmg_src_id": np.full(count, 2, dtype=np.int64),
        "area": [round(p.area / 1e4, 2) for p in event.polygons],
    }
    geometry = [reproject(p, epsg, 4326) for p in event.polygons]
    return gpd.GeoDataFrame(table, geometry=geometry, crs=4326)


def _source_table(pre: tuple[str, datetime], post: tuple[str, datetime]) -> pd.DataFrame:
    rows = [(pre, "Pre-event", 1), (post, "Post-event", 2)]
    return pd.DataFrame(
        {
            "source_nam": [sensor for (sensor, _), _, _ in rows],
            "src_date": [when.strftime("%d/%m/%Y") for (_, when), _, _ in rows],
            "source_tm": [when.strftime("T%H:%M:00Z") for (_, when), _, _ in rows],
            "sensor_gsd": ["10.0 m"] * 2,
            "eventphase": [phase for _, phase, _ in rows],
            "src_id": np.array([src for _, _, src in rows], dtype=np.int64),
        }
    )


def activation_metadata(site: AoiSpec, spec: EventSpec) -> dict:
    """Activation record shaped like the EMS rapid mapping dashboard's public activations."""
    category, sub_category = CATEGORY[spec.hazard]
    lon, lat = site.center_lonlat
    return {
        "code": spec.code,
        "name": f"{category} in {spec.locality}, {site.country}",
        "category": category,
        "subCategory": sub_category,
        "eventTime": spec.event_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "activationTime": (spec.event_time + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "countries": [{"name": site.country, "iso3": site.country_iso3}],
        "centroid": f"POINT ({lon:.4f} {lat:.4f})",
        "closed": True,
        "n_products": 1,
        "synthetic": True,
        "note": "Simulated activation of the CrisisLandMark demo archive; not a real EMS code.",
    }


def _manifest_entry(site: AoiSpec, spec: EventSpec, layers: dict[str, str], metadata: str) -> dict:
    return {
        "code": spec.code,
        "area_id": spec.area_id,
        "hazard": spec.hazard,
        "category": CATEGORY[spec.hazard][0],
        "event_date": spec.event_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "visible_days": spec.visible_days,
        "aoi": site.name,
        "locality": spec.locality,
        "country": site.country,
        "layers": layers,
        "metadata": metadata,
    }
