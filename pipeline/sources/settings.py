"""Typed settings of the API-backed sources (STAC APIs, Sentinel Hub), read from ``source:``.

Only names of environment variables appear here, never secret values: credentials are
read from the environment (or an Airflow connection exported to it) when a request is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

API_KINDS = ("stac_api", "sentinelhub")
DEFAULT_RETRY_STATUSES = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries with exponential backoff and jitter (429 honours ``Retry-After``)."""

    max_attempts: int = 5
    backoff_s: float = 0.5  # first delay; doubles per attempt
    backoff_max_s: float = 30.0
    jitter_s: float = 0.5  # uniform random extra delay, de-synchronizes parallel clients
    timeout_s: float = 60.0  # connect and read timeout per request
    statuses: tuple[int, ...] = DEFAULT_RETRY_STATUSES


@dataclass(frozen=True)
class ApiSettings:
    """Where and how an API source talks to its service."""

    url: str | None = None  # STAC API root / Sentinel Hub base URL (profile default if None)
    profile: str = "planetary-computer"  # built-in profile name or a mapping file path
    token_url: str | None = None  # PC SAS token endpoint / Sentinel Hub OAuth token endpoint
    page_size: int | None = None  # items per page (None: the server's default)
    max_items: int | None = None  # stop after this many items (trial runs; recorded as truncated)
    max_concurrency: int = 4  # simultaneous requests to this provider
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    client_id_env: str = "SH_CLIENT_ID"
    client_secret_env: str = "SH_CLIENT_SECRET"
    cache_dir: Path | None = None  # Sentinel Hub: where rendered scenes are kept


def parse_api_settings(raw: Mapping[str, Any], base: Path, where: str) -> ApiSettings:
    """``source:`` keys of an API source -> ``ApiSettings`` (relative paths against ``base``)."""
    retry = parse_retry(raw)
    profile = str(raw.get("profile", "planetary-computer"))
    if profile.endswith((".yaml", ".yml", ".json")):
        profile = str(_resolve(base, profile))
    cache = raw.get("cache_dir")
    settings = ApiSettings(
        url=raw.get("url"),
        profile=profile,
        token_url=raw.get("token_url"),
        page_size=raw.get("page_size"),
        max_items=raw.get("max_items"),
        max_concurrency=int(raw.get("max_concurrency", 4)),
        retry=retry,
        client_id_env=str(raw.get("client_id_env", "SH_CLIENT_ID")),
        client_secret_env=str(raw.get("client_secret_env", "SH_CLIENT_SECRET")),
        cache_dir=_resolve(base, cache) if cache else None,
    )
    if raw.get("kind") == "sentinelhub" and not settings.url:
        raise ConfigError(
            f"{where}: source.url is required for kind sentinelhub, e.g. "
            "https://sh.dataspace.copernicus.eu or https://services.sentinel-hub.com"
        )
    return settings


def parse_retry(source: Mapping[str, Any]) -> RetryPolicy:
    """``source.retry`` -> ``RetryPolicy`` (API requests, asset reads and fingerprints)."""
    out = dict(source.get("retry", {}))
    if "statuses" in out:
        out["statuses"] = tuple(int(s) for s in out["statuses"])
    return RetryPolicy(**out)


def _resolve(base: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else (base / p).resolve()


def known_collections(
    kind: str, settings: ApiSettings | None, default: tuple[str, ...]
) -> tuple[str, ...]:
    """The collection ids a source of ``kind`` can search (the profile's, for STAC APIs)."""
    if kind == "stac_api":
        from pipeline.sources.profiles import load_profile

        return tuple(load_profile((settings or ApiSettings()).profile).collections)
    if kind == "sentinelhub":
        from pipeline.sources.sentinelhub import SH_COLLECTIONS

        return tuple(SH_COLLECTIONS)
    return default
