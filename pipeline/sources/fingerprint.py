"""What identifies the bytes of a source file: sha256 and size of a local file, ETag and size
of a remote one (HEAD request). Used by the chip stage to key its work files and by
``corpus.lock`` to record and check the inputs."""

from __future__ import annotations

import functools
import hashlib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def fingerprint(location: str) -> dict[str, Any]:
    """sha256 and size of a local file; ETag and size of a remote one (HEAD request)."""
    if location.startswith(("http://", "https://")):
        return _remote_fingerprint(location)
    path = Path(location.removeprefix("file://"))
    if not path.is_file():
        return {"missing": True}
    st = path.stat()
    sha256 = _file_sha256(
        str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns
    )
    return {"sha256": sha256, "size": st.st_size}


@functools.lru_cache(maxsize=1 << 16)
def _file_sha256(path: str, size: int, mtime_ns: int, inode: int, ctime_ns: int) -> str:
    """sha256 of a file, hashed once per process while its size, times and inode stay put
    (the chip stage and the lock of one build fingerprint the same assets)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _remote_fingerprint(url: str) -> dict[str, Any]:
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            headers = response.headers
    except (urllib.error.URLError, TimeoutError) as exc:
        return {"unreachable": str(exc)}
    size = headers.get("Content-Length")
    return {
        "etag": headers.get("ETag"),
        "size": int(size) if size is not None else None,
        "last_modified": headers.get("Last-Modified"),
    }
