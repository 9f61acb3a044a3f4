"""The one redaction of asset and service URLs for messages, logs and written files.

Signed URLs carry their secret in the query string (Planetary Computer SAS ``sig=``, S3
presigned ``X-Amz-Signature=``) or in the userinfo (``https://user:password@host``);
GDAL error texts embed them (``/vsicurl/https://...?...sig=...``). ``redact`` keeps what a
reader needs to find the file (scheme, host, path) and drops the rest, wherever in a text
the URL stands. ``redact_gdal_logs`` applies it to the records rasterio logs GDAL texts
into, so an INFO-level task log (Airflow) never shows a signature either.
"""

from __future__ import annotations

import logging
import re

# scheme://[userinfo@]host/path[?query][#fragment], and GDAL's /vsicurl?url=... form
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]*|/vsi[a-z0-9_]+\?[^\s'\"<>]*")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)[^/@?#]*@")
# a query string after a bare file name (GDAL names files so: "B02.tif?se=...&sig=..., band 1")
_QUERY = re.compile(r"\?[A-Za-z0-9_.~\-]+=[^\s'\",<>]*")
# secret-bearing parameters outside a URL (a query quoted alone, a percent-encoded URL)
_SECRET_PARAM = re.compile(
    r"(?i)\b(sig|signature|token|access_token|x-amz-signature|x-amz-security-token|"
    r"x-amz-credential|subscription-key|api_key|apikey)(=|%3D)[^&\s'\"<>]+"
)
GDAL_LOGGERS = ("rasterio._err", "rasterio._env", "rasterio._base", "rasterio._io", "rasterio.env")


def redact(text: str) -> str:
    """``text`` with every URL's query string (``?...``), fragment and userinfo removed."""
    text = _QUERY.sub("?...", _URL.sub(_redact_url, str(text)))
    return _SECRET_PARAM.sub(r"\1\2...", text)


def _redact_url(match: re.Match[str]) -> str:
    url, query, _ = _USERINFO.sub(r"\1", match.group(0)).partition("?")
    url = url.partition("#")[0]
    return f"{url}?..." if query else url


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = _RedactingFilter()


def redact_gdal_logs() -> None:
    """Redact the records of the loggers rasterio writes GDAL messages to (idempotent)."""
    for name in GDAL_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def error_text(exc: BaseException) -> str:
    """``exc`` and the errors it was raised from, redacted, as one line. For messages raised
    ``from None``: a printed traceback of the chain would show GDAL's text, signed URL and all."""
    parts: list[str] = []
    cause: BaseException | None = exc
    while cause is not None and len(parts) < 4:
        text = str(cause)
        if text and text not in parts:
            parts.append(text)
        cause = cause.__cause__ or cause.__context__
    return redact("; caused by: ".join(parts))
