"""The simulated archive's areas of interest, acquisition calendars and crisis events.

Acquisition dates follow the real revisit grids: Sentinel-2 every 5 days on a
relative orbit (S2A and S2B alternating), Sentinel-1 every 6 days (S1A and S1B
alternating, S1A only after S1B's failure on 2021-12-23). Each date is written as
a cycle number ``k`` from a per-AOI anchor pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pyproj import Transformer

from pipeline.chips.grid import CHIP_SIZE_M
from pipeline.errors import ConfigError

S1B_END = datetime(2021, 12, 23, tzinfo=UTC)


@dataclass(frozen=True)
class Acquisition:
    """One planned pass: cycle number, cloud fraction target and nodata fraction."""

    k: int
    cloud: float = 0.0
    nodata: float = 0.0


@dataclass(frozen=True)
class OrbitPlan:
    anchor: datetime  # a pass of the first platform (S1A / S2A) on this relative orbit
    step_days: int  # 6 for Sentinel-1, 5 for Sentinel-2
    passes: tuple[Acquisition, ...]
    orbit_state: str = "descending"

    def platform_letter(self, k: int) -> str:
        return "A" if k % 2 == 0 else "B"

    def when(self, k: int) -> datetime:
        return self.anchor + timedelta(days=self.step_days * k)


@dataclass(frozen=True)
class EventSpec:
    code: str  # synthetic EMSR code
    area_id: str  # "AOI01"
    hazard: str  # "flood" | "wildfire"
    event_time: datetime
    visible_days: int | None
    locality: str


@dataclass(frozen=True)
class AoiSpec:
    name: str
    place: str
    country: str
    country_iso3: str
    epsg: int
    center_lonlat: tuple[float, float]
    size_m: float
    profile: str  # "lowland" | "mediterranean" | "boreal"
    s2: OrbitPlan
    s1: OrbitPlan
    s2_relative_orbit: int
    events: tuple[EventSpec, ...] = ()

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """UTM bounds (minx, miny, maxx, maxy), on multiples of the 1200 m chip grid."""
        to_utm = Transformer.from_crs(4326, self.epsg, always_xy=True)
        cx, cy = to_utm.transform(*self.center_lonlat)
        minx = round((cx - self.size_m / 2) / CHIP_SIZE_M) * CHIP_SIZE_M
        miny = round((cy - self.size_m / 2) / CHIP_SIZE_M) * CHIP_SIZE_M
        return (float(minx), float(miny), float(minx + self.size_m), float(miny + self.size_m))


def _utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _plan(anchor: datetime, step: int, passes: list[tuple], state: str) -> OrbitPlan:
    return OrbitPlan(anchor, step, tuple(Acquisition(*p) for p in passes), state)


FLOOD = EventSpec("EMSR9001", "AOI01", "flood", _utc(2021, 11, 18, 4), 10, "Padova")
FIRE = EventSpec("EMSR9002", "AOI01", "wildfire", _utc(2022, 7, 10, 13), None, "Pedrogao Grande")


def _veneto(size_m: float, s2: list[tuple], s1: list[tuple]) -> AoiSpec:
    return AoiSpec(
        name="veneto",
        place="Padova, Veneto",
        country="Italy",
        country_iso3="ITA",
        epsg=32632,
        center_lonlat=(11.93, 45.40),
        size_m=size_m,
        profile="lowland",
        s2=_plan(_utc(2021, 11, 8, 10, 10, 31), 5, s2, "descending"),
        s1=_plan(_utc(2021, 11, 13, 5, 17, 24), 6, s1, "descending"),
        s2_relative_orbit=22,
        events=(FLOOD,),
    )


def _portugal(size_m: float, s2: list[tuple], s1: list[tuple]) -> AoiSpec:
    return AoiSpec(
        name="portugal",
        place="Pedrogao Grande, Leiria",
        country="Portugal",
        country_iso3="PRT",
        epsg=32629,
        center_lonlat=(-8.17, 39.93),
        size_m=size_m,
        profile="mediterranean",
        s2=_plan(_utc(2022, 6, 30, 11, 21, 19), 5, s2, "descending"),
        s1=_plan(_utc(2022, 7, 6, 18, 27, 10), 6, s1, "ascending"),
        s2_relative_orbit=80,
        events=(FIRE,),
    )


def _finland(size_m: float, s2: list[tuple], s1: list[tuple]) -> AoiSpec:
    return AoiSpec(
        name="finland",
        place="Tampere, Pirkanmaa",
        country="Finland",
        country_iso3="FIN",
        epsg=32635,
        center_lonlat=(23.70, 61.47),
        size_m=size_m,
        profile="boreal",
        s2=_plan(_utc(2021, 6, 7, 9, 50, 31), 5, s2, "descending"),
        s1=_plan(_utc(2021, 6, 10, 4, 46, 2), 6, s1, "descending"),
        s2_relative_orbit=36,
    )


def demo_sites() -> tuple[AoiSpec, ...]:
    size = 10 * CHIP_SIZE_M
    return (
        _veneto(
            size,
            [(-28, 0.0), (0, 0.25), (3, 0.04), (26, 0.15, 0.25), (44, 0.0), (60, 0.05)],
            [(-22,), (0,), (1,), (2,), (14, 0, 0.2), (32,), (52, 0, 0.25)],
        ),
        _portugal(
            size,
            [(-72, 0.0), (-51, 0.12, 0.2), (-14, 0.06), (0, 0.0), (4, 0.03), (16, 0.0, 0.25)],
            [(-66,), (-51, 0, 0.2), (-20,), (0,), (2,), (8, 0, 0.2), (14,)],
        ),
        _finland(
            size,
            [(0, 0.06), (10, 0.3), (18, 0.03, 0.25), (69, 0.0), (81, 0.1), (90, 0.03)],
            [(0,), (9, 0, 0.25), (17,), (56,), (62, 0, 0.15), (70,), (80,)],
        ),
    )


def tiny_sites() -> tuple[AoiSpec, ...]:
    size = 3 * CHIP_SIZE_M
    return (
        _veneto(size, [(0, 0.2), (3, 0.05)], [(0,), (1,)]),
        _portugal(size, [(0, 0.1, 0.25), (4, 0.05)], [(0, 0, 0.2), (2,)]),
    )


SCALES = {"demo": demo_sites, "tiny": tiny_sites}


def sites_for(scale: str) -> tuple[AoiSpec, ...]:
    if scale not in SCALES:
        raise ConfigError(f"unknown archive scale {scale!r}: use one of {sorted(SCALES)}")
    sites = SCALES[scale]()
    for site in sites:
        _check_platforms(site.s1)
    return sites


def _check_platforms(plan: OrbitPlan) -> None:
    for acq in plan.passes:
        if plan.platform_letter(acq.k) == "B" and plan.when(acq.k) >= S1B_END:
            raise ConfigError(
                f"Sentinel-1B pass planned on {plan.when(acq.k):%Y-%m-%d}, after its end"
            )
