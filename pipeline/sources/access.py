"""Read-time access to scene assets: signing, requester-pays buckets, rendered products.

Scene records keep the provider's plain hrefs; what a read needs is added only when
the read happens, so nothing secret or short-lived is ever written to ``scenes.parquet``,
chip rows or manifests:

- ``planetary-computer`` scenes: Azure blob hrefs are signed with a SAS token from the
  configured token endpoint (``planetary-computer`` package; ``PC_SDK_SUBSCRIPTION_KEY``
  from the environment). Tokens are renewed ``RESIGN_MARGIN_S`` before they expire, and an
  open refused because the signature expired is retried once with a fresh token.
- requester-pays S3 (Earth Search S1 GRD): GDAL gets ``AWS_REQUEST_PAYER=requester``;
  credentials stay in the environment where GDAL reads them.
- ``sentinelhub://`` hrefs: the scene is rendered by the process API first
  (``pipeline.sources.sentinelhub.materialize``), then read from the local files.

Messages name assets through ``redact`` (``pipeline.sources.redact``, importable from here).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlparse

import rasterio
from rasterio.errors import RasterioIOError

from pipeline.errors import SourceError
from pipeline.sources.base import Scene
from pipeline.sources.redact import error_text, redact, redact_gdal_logs

RESIGN_MARGIN_S = 600.0
PC_STORAGE_DOMAIN = ".blob.core.windows.net"
_EXPIRED_MARKERS = ("403", "AuthenticationFailed", "Signature", "expired")


def gdal_options(scene: Scene) -> dict[str, str]:
    """Extra GDAL configuration the scene's assets need (no secrets)."""
    if scene.extra.get("requester_pays"):
        return {"AWS_REQUEST_PAYER": "requester"}
    return {}


@contextlib.contextmanager
def open_asset(scene: Scene, band: str) -> Iterator[Any]:
    """Open one band of ``scene`` for reading, signed or rendered as its provider requires."""
    href = scene.assets[band].href
    signing = _signing(scene)
    redact_gdal_logs()
    try:
        ds = rasterio.open(readable_href(scene, href, signing))
    except RasterioIOError as exc:
        if signing is None or not _looks_expired(exc):
            raise
        ds = rasterio.open(readable_href(scene, href, signing, refresh=True))
    with ds:
        yield ds


def readable_href(
    scene: Scene, href: str, signing: Mapping[str, Any] | None = None, refresh: bool = False
) -> str:
    """The href to hand to GDAL right now (signed, or a rendered local file)."""
    if href.startswith("sentinelhub://"):
        from pipeline.sources.sentinelhub import materialize

        return str(materialize(scene, href))
    if signing is not None:
        return sign_href(href, signing, refresh=refresh)
    return href


def fingerprint_href(scene: Scene, location: str) -> str:
    """The URL to fingerprint an asset of ``scene`` at: signed as a read would be (blob
    storage answers an unsigned HEAD with 403). Never written anywhere: the fingerprint
    keeps only ETag and size, and messages redact the query. A Sentinel Hub band has no
    stored bytes: it is pinned by the digest of the process request that renders it."""
    if location.startswith("sentinelhub://"):
        from pipeline.sources.sentinelhub import render_digest

        return f"{location}#request={render_digest(scene)}"
    signing = _signing(scene)
    return sign_href(location, signing) if signing and "://" in location else location


def _signing(scene: Scene) -> Mapping[str, Any] | None:
    kind = scene.extra.get("signing")
    if not kind:
        return None
    if kind != "planetary-computer":
        raise SourceError(f"scene {scene.item_id}: unknown signing scheme {kind!r}")
    return {
        "kind": kind,
        "token_url": scene.extra.get("token_url"),
        "storage_domain": scene.extra.get("storage_domain", PC_STORAGE_DOMAIN),
    }


def _looks_expired(exc: Exception) -> bool:
    text = str(exc)
    return any(marker in text for marker in _EXPIRED_MARKERS)


def sign_href(href: str, signing: Mapping[str, Any], refresh: bool = False) -> str:
    """Append a SAS token to a blob-storage href (others pass through unchanged)."""
    parsed = urlparse(href)
    domain = str(signing.get("storage_domain") or PC_STORAGE_DOMAIN)
    host = parsed.hostname or ""
    if not parsed.netloc.endswith(domain) or parsed.query:
        return href
    account = host.removesuffix(PC_STORAGE_DOMAIN) if host.endswith(PC_STORAGE_DOMAIN) else host
    container = parsed.path.lstrip("/").split("/", 1)[0]
    token = pc_token(account, container, signing.get("token_url"), refresh=refresh)
    return f"{href}?{token}"


def pc_token(account: str, container: str, token_url: str | None, refresh: bool = False) -> str:
    """A SAS token for ``account/container``, renewed when it expires within the margin."""
    import planetary_computer.sas as sas
    from planetary_computer.settings import Settings

    settings = Settings.get()
    if token_url:
        settings.sas_url = token_url.rstrip("/")
    cache_key = f"{settings.sas_url}/{account}/{container}"
    cached = sas.TOKEN_CACHE.get(cache_key)
    if cached is not None and (refresh or cached.ttl() < RESIGN_MARGIN_S):
        sas.TOKEN_CACHE.pop(cache_key, None)
    try:
        return sas.get_token(account, container, retry_total=4, retry_backoff_factor=0.5).token
    except Exception as exc:  # requests / pydantic errors from the token endpoint
        raise SourceError(
            f"cannot get a SAS token for {account}/{container} from {redact(settings.sas_url)}: "
            f"{type(exc).__name__}: {error_text(exc)}; check source.token_url and "
            "PC_SDK_SUBSCRIPTION_KEY"
        ) from None
