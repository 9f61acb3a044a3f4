"""Scene identities: item ids, orbits, baselines and footprints of every planned acquisition.

Ids follow the real Planetary Computer patterns
(``S2A_MSIL2A_20220614T101031_R022_T32TQR_20220614T160000``,
``S1A_IW_GRDH_1SDV_20220614T053012_20220614T053037_043650_05363A``). Orbit numbers
come from linear orbit models anchored on real products; MGRS tiles are computed
from the AOI centre. Processing dates are derived from the sensing date, never "now".
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from pipeline import numerics
from pipeline.archive.layout import S1_COLLECTION, S2_COLLECTION
from pipeline.archive.sites import Acquisition, AoiSpec

BASELINE_04_START = datetime(2022, 1, 25, tzinfo=UTC)
_S1A_ANCHOR = (datetime(2021, 8, 9, 17, 40, 5, tzinfo=UTC), 39156)
_S1_PERIOD_DAYS = 12 / 175
_S2_ANCHOR = datetime(2019, 1, 1, tzinfo=UTC)
_S2_ORBITS_PER_DAY = 14.3
_S2_ABS_AT_ANCHOR = {"A": 18417, "B": 8907}


@dataclass(frozen=True)
class SceneSpec:
    """One planned acquisition over one AOI."""

    collection: str
    item_id: str
    aoi: str
    platform: str  # "A" | "B"
    when: datetime
    cloud: float
    nodata: float
    edge_tilt: float  # radians from north of the swath edge
    edge_side: int  # +1: nodata in the east, -1: in the west
    props: Mapping[str, Any] = field(default_factory=dict)

    @property
    def sensor(self) -> str:
        return "s2" if self.collection == S2_COLLECTION else "s1"


def processing_baseline(when: datetime) -> str:
    if when >= BASELINE_04_START:
        return "04.00"
    return "03.01" if when >= datetime(2021, 6, 30, tzinfo=UTC) else "03.00"


def mgrs_tile(lon: float, lat: float, epsg: int, easting: float, northing: float) -> str:
    """The MGRS 100 km square (e.g. ``32TQR``) containing a UTM point."""
    zone = epsg % 100
    band = "CDEFGHJKLMNPQRSTUVWX"[int((lat + 80) // 8)]
    columns = ("STUVWXYZ", "ABCDEFGH", "JKLMNPQR")[zone % 3]
    column = columns[int(easting // 100000) - 1]
    rows = "ABCDEFGHJKLMNPQRSTUV"
    row = rows[(int(northing // 100000) + (5 if zone % 2 == 0 else 0)) % 20]
    return f"{zone}{band}{column}{row}"


def solar_angles(when: datetime, lon: float, lat: float) -> tuple[float, float]:
    """Approximate solar zenith and azimuth (degrees, azimuth clockwise from north)."""
    day = when.timetuple().tm_yday
    gamma = 2 * math.pi / 365 * (day - 1 + (when.hour - 12) / 24)
    decl = 0.006918 - 0.399912 * math.cos(gamma) + 0.070257 * math.sin(gamma)
    eqtime = 229.18 * (0.000075 + 0.001868 * math.cos(gamma) - 0.032077 * math.sin(gamma))
    minutes = when.hour * 60 + when.minute + when.second / 60 + eqtime + 4 * lon
    hour_angle = math.radians(minutes / 4 - 180)
    phi = math.radians(lat)
    cos_zen = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(hour_angle)
    zenith = math.acos(max(-1.0, min(1.0, cos_zen)))
    cos_az = (math.sin(decl) - math.sin(phi) * cos_zen) / (math.cos(phi) * math.sin(zenith))
    azimuth = math.degrees(math.acos(max(-1.0, min(1.0, cos_az))))
    return math.degrees(zenith), (360 - azimuth if hour_angle > 0 else azimuth)


def plan_scenes(site: AoiSpec) -> list[SceneSpec]:
    """Every S2 and S1 acquisition planned over ``site``, in time order per collection."""
    s2 = [_s2_scene(site, acq) for acq in site.s2.passes]
    s1 = [_s1_scene(site, acq) for acq in site.s1.passes]
    return sorted(s2, key=lambda s: s.when) + sorted(s1, key=lambda s: s.when)


def _edge(site: AoiSpec, acq: Acquisition, sensor: str) -> tuple[float, int]:
    token = zlib.crc32(f"{site.name}{sensor}{acq.k}".encode())
    tilt = (0.2 if sensor == "s2" else -0.25) + (token % 100) / 1000
    return tilt, (1 if token % 2 else -1)


def _s2_scene(site: AoiSpec, acq: Acquisition) -> SceneSpec:
    when = site.s2.when(acq.k)
    letter = site.s2.platform_letter(acq.k)
    lon, lat = site.center_lonlat
    minx, miny, maxx, maxy = site.bounds
    tile = mgrs_tile(lon, lat, site.epsg, (minx + maxx) / 2, (miny + maxy) / 2)
    baseline = processing_baseline(when)
    generated = when + timedelta(hours=2, minutes=7 + when.timetuple().tm_yday % 47, seconds=13)
    absolute = _s2_absolute_orbit(when, letter, site.s2_relative_orbit)
    sensing, gen = when.strftime("%Y%m%dT%H%M%S"), generated.strftime("%Y%m%dT%H%M%S")
    n_base = baseline.replace(".", "")
    item_id = f"S2{letter}_MSIL2A_{sensing}_R{site.s2_relative_orbit:03d}_T{tile}_{gen}"
    zenith, azimuth = solar_angles(when, lon, lat)
    props = {
        "s2:mgrs_tile": tile,
        "s2:processing_baseline": baseline,
        "s2:product_uri": f"S2{letter}_MSIL2A_{sensing}_N{n_base}_R{site.s2_relative_orbit:03d}_T{tile}_{gen}.SAFE",
        "s2:datatake_id": f"GS2{letter}_{sensing}_{absolute:06d}_N{baseline}",
        "s2:granule_id": f"S2{letter}_OPER_MSI_L2A_TL_2APS_{gen}_A{absolute:06d}_T{tile}_N{baseline}",
        "s2:datastrip_id": f"S2{letter}_OPER_MSI_L2A_DS_2APS_{gen}_S{sensing}_N{baseline}",
        "s2:generation_time": generated.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        "s2:mean_solar_zenith": round(zenith, 6),
        "s2:mean_solar_azimuth": round(azimuth, 6),
        "sat:relative_orbit": site.s2_relative_orbit,
        "sat:absolute_orbit": absolute,
        "sat:orbit_state": site.s2.orbit_state,
    }
    tilt, side = _edge(site, acq, "s2")
    return SceneSpec(
        S2_COLLECTION, item_id, site.name, letter, when, acq.cloud, acq.nodata, tilt, side, props
    )


def _s2_absolute_orbit(when: datetime, letter: str, relative: int) -> int:
    estimate = (
        _S2_ABS_AT_ANCHOR[letter] + (when - _S2_ANCHOR).total_seconds() / 86400 * _S2_ORBITS_PER_DAY
    )
    shift = 2 if letter == "A" else -27
    base = int(estimate) - ((int(estimate) + shift) % 143 + 1 - relative)
    if base < estimate - 71:
        return base + 143
    return base - 143 if base > estimate + 71 else base


def _s1_scene(site: AoiSpec, acq: Acquisition) -> SceneSpec:
    when = site.s1.when(acq.k)
    letter = site.s1.platform_letter(acq.k)
    absolute, relative = _s1_orbits(when, letter)
    datatake = _s1_datatake(absolute, letter)
    start, stop = when - timedelta(seconds=12), when + timedelta(seconds=13)
    stamp = f"{start:%Y%m%dT%H%M%S}_{stop:%Y%m%dT%H%M%S}_{absolute:06d}_{datatake:06X}"
    item_id = f"S1{letter}_IW_GRDH_1SDV_{stamp}"
    processed = when + timedelta(hours=3, minutes=when.timetuple().tm_yday % 53)
    props = {
        "start_datetime": start.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        "end_datetime": stop.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        "sat:relative_orbit": relative,
        "sat:absolute_orbit": absolute,
        "sat:orbit_state": site.s1.orbit_state,
        "s1:datatake_id": str(datatake),
        "s1:product_identifier": f"{item_id}_{zlib.crc32(item_id.encode()) & 0xFFFF:04X}",
        "s1:processing_datetime": processed.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
    }
    tilt, side = _edge(site, acq, "s1")
    return SceneSpec(
        S1_COLLECTION, item_id, site.name, letter, when, 0.0, acq.nodata, tilt, side, props
    )


def _s1_orbits(when: datetime, letter: str) -> tuple[int, int]:
    anchor_time, anchor_orbit = _S1A_ANCHOR
    reference = when if letter == "A" else when - timedelta(days=6)
    absolute = anchor_orbit + round(
        (reference - anchor_time).total_seconds() / 86400 / _S1_PERIOD_DAYS
    )
    if letter == "A":
        return absolute, (absolute - 73) % 175 + 1
    absolute -= 10546
    return absolute, (absolute - 27) % 175 + 1


def _s1_datatake(absolute: int, letter: str) -> int:
    base, orbit = (302867, 39156) if letter == "A" else (228190, 29000)
    return round(base + (absolute - orbit) * 8.9)


def footprint_mask(shape: tuple[int, int], scene: SceneSpec) -> np.ndarray:
    """True where the scene has data: everything but a swath-edge wedge of ``scene.nodata``."""
    if scene.nodata <= 0:
        return np.ones(shape, dtype=bool)
    height, width = shape
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    cos_tilt, sin_tilt = float(numerics.cos(scene.edge_tilt)), float(numerics.sin(scene.edge_tilt))
    across = scene.edge_side * (cols * cos_tilt + rows * sin_tilt)
    return across < np.quantile(across, 1 - scene.nodata)
