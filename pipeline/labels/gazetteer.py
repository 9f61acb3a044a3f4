"""Offline place names: nearest GeoNames populated place (>= 1000 inhabitants) and country,
through the ``reverse_geocoder`` package, which ships the GeoNames table."""

from __future__ import annotations

import contextlib
import functools
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pycountry


@dataclass(frozen=True)
class Place:
    name: str
    region: str
    country: str
    country_code: str
    distance_km: float


@functools.lru_cache(maxsize=1)
def _geocoder():
    import reverse_geocoder

    with contextlib.redirect_stdout(io.StringIO()):
        return reverse_geocoder.RGeocoder(mode=1, verbose=False)


def nearest_places(points: Sequence[tuple[float, float]]) -> list[Place]:
    """Nearest named place of each (lon, lat) point."""
    if not points:
        return []
    with contextlib.redirect_stdout(io.StringIO()):
        hits = _geocoder().query([(lat, lon) for lon, lat in points])
    return [_place(hit, lon, lat) for hit, (lon, lat) in zip(hits, points, strict=True)]


def _place(hit: dict[str, str], lon: float, lat: float) -> Place:
    code = hit["cc"]
    country = pycountry.countries.get(alpha_2=code)
    name = getattr(country, "common_name", None) or (country.name if country else code)
    distance = haversine_km(lon, lat, float(hit["lon"]), float(hit["lat"]))
    return Place(hit["name"], hit["admin1"], name, code, round(distance, 2))


def haversine_km(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(a))
