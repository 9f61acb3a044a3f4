"""What identifies the bytes of a source file: sha256 and size of a local file, ETag and size
of a remote one (HEAD request). Used by the chip stage to key its work files and by
``corpus.lock`` to record and check the inputs.

A remote fingerprint goes through the project's one retry layer
(``pipeline.sources.retry``): 429 (honouring ``Retry-After``), 5xx, timeouts, resets and
cut-short answers are retried under the source's ``RetryPolicy``. When the attempts run
out, or the server refuses for good, ``UnverifiableAssetError`` names the asset (its URL
without the query string); a missing file (404/410) is ``{"missing": true}``, like a
missing local file. A band rendered by Sentinel Hub is pinned by its process request.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import requests

from pipeline.errors import SourceError
from pipeline.sources.access import redact
from pipeline.sources.retry import TransientError, call_with_retries, send_checked
from pipeline.sources.settings import RetryPolicy

CHUNK = 1 << 20
GONE = (404, 410)
MAX_REMEMBERED = 1 << 16
FileKey = tuple[str, int, int, int, int]  # resolved path, size, mtime_ns, inode, ctime_ns
_HASHES: OrderedDict[FileKey, str] = OrderedDict()  # the sha256 of each file key, LRU
_HASHES_LOCK = threading.Lock()


class UnverifiableAssetError(SourceError):
    """A remote asset whose fingerprint could not be taken; ``location`` is redacted."""

    def __init__(self, location: str, reason: str) -> None:
        super().__init__(
            f"cannot fingerprint {location}: {reason}; retry later or raise "
            "source.retry.max_attempts, or set source.on_unverifiable: record to record "
            "the asset as unverifiable in corpus.lock and manifest.json"
        )
        self.location = location
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # raised on workers, pickled back
        return type(self), (self.location, self.reason)


def fingerprint(location: str, retry: RetryPolicy | None = None) -> dict[str, Any]:
    """sha256 and size of a local file; ETag and size of a remote one (HEAD request, retried
    under ``retry``); ``{"missing": True}`` when there is no such file.
    Raises ``UnverifiableAssetError`` when a remote one cannot be fingerprinted."""
    if location.startswith(("http://", "https://")):
        return _remote_fingerprint(location, retry or RetryPolicy())
    if location.startswith("sentinelhub://"):
        return _render_fingerprint(location)
    path = Path(location.removeprefix("file://"))
    if not path.is_file():
        return {"missing": True}
    key = file_key(path)
    return {"sha256": _file_sha256(key), "size": key[1]}


def file_key(path: Path) -> FileKey:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns


def _render_fingerprint(location: str) -> dict[str, Any]:
    """A band rendered by Sentinel Hub's process API: the service keeps no bytes to hash, so
    the request that renders it is what the fingerprint pins (``access.fingerprint_href``)."""
    href, sep, digest = location.partition("#request=")
    if not sep:
        raise UnverifiableAssetError(
            href, "a Sentinel Hub band is pinned by its process request, which only a search gives"
        )
    return {"rendered_by": "sentinelhub", "request_sha256": digest}


def _file_sha256(key: FileKey) -> str:
    """sha256 of a file, hashed once per process while its path, size, times and inode stay
    put (the most recent ``MAX_REMEMBERED`` files are kept)."""
    with _HASHES_LOCK:
        if key in _HASHES:
            _HASHES.move_to_end(key)
            return _HASHES[key]
    digest = hashlib.sha256()
    with open(key[0], "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    sha256 = digest.hexdigest()
    with _HASHES_LOCK:
        _HASHES[key] = sha256
        while len(_HASHES) > MAX_REMEMBERED:
            _HASHES.popitem(last=False)
    return sha256


def _remote_fingerprint(url: str, retry: RetryPolicy) -> dict[str, Any]:
    where = redact(url)
    with requests.Session() as session:
        request = session.prepare_request(requests.Request("HEAD", url))
        try:
            response = call_with_retries(
                retry, f"HEAD {where}", lambda: _head(session, request.copy(), retry)
            )
        except SourceError as exc:  # the attempts ran out; the last failure is its cause
            reason = f"still failing after {retry.max_attempts} attempts ({exc.__cause__})"
            raise UnverifiableAssetError(where, redact(reason)) from None
    if response.status_code in GONE:
        return {"missing": True}
    if not response.ok:
        reason = f"HEAD answered HTTP {response.status_code} {response.reason}"
        raise UnverifiableAssetError(where, reason)
    return {
        "etag": response.headers.get("ETag"),
        "size": int(response.headers["Content-Length"]),
        "last_modified": response.headers.get("Last-Modified"),
    }


def _head(
    session: requests.Session, request: requests.PreparedRequest, retry: RetryPolicy
) -> requests.Response:
    """One HEAD; an answer whose header block was cut short is transient, not a fingerprint
    (``requests`` accepts it: the ETag or size would silently be missing)."""
    response = send_checked(session, request, retry, expect_json=False)
    if response.ok and not _complete_headers(response):
        raise TransientError("HEAD answer cut short (incomplete headers, no Content-Length)")
    return response


def _complete_headers(response: requests.Response) -> bool:
    original = getattr(response.raw, "_original_response", None)  # http.client's parse
    defects = getattr(getattr(original, "msg", None), "defects", [])
    size = response.headers.get("Content-Length", "")
    return not defects and size.isdigit()
