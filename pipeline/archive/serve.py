"""A loopback HTTP file server with byte-range support, so COGs are read the way
GDAL reads them from cloud storage (HEAD, then ``Range: bytes=a-b`` requests).

Used by the build in demo mode (``source.asset_base: serve``) and by tests; it counts
requests and bytes so tests can check that reads fetch only what they need.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@dataclass
class ServerStats:
    requests: int = 0
    range_requests: int = 0
    bytes_sent: int = 0
    by_path: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, path: str, nbytes: int, ranged: bool) -> None:
        with self.lock:
            self.requests += 1
            self.range_requests += int(ranged)
            self.bytes_sent += nbytes
            self.by_path[path] = self.by_path.get(path, 0) + nbytes


class _RangeHandler(SimpleHTTPRequestHandler):
    stats: ServerStats

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(HTTPStatus.NOT_FOUND, "not found")
            return
        size = path.stat().st_size
        span = self._requested_span(size)
        if span is None:
            self.send_error(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            return
        start, end = span
        ranged = "Range" in self.headers
        self.send_response(HTTPStatus.PARTIAL_CONTENT if ranged else HTTPStatus.OK)
        self._headers(size, start, end, ranged)
        with path.open("rb") as fh:
            fh.seek(start)
            self.wfile.write(fh.read(end - start + 1))
        self.stats.add(self.path, end - start + 1, ranged)

    def do_HEAD(self) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(HTTPStatus.NOT_FOUND, "not found")
            return
        size = path.stat().st_size
        self.send_response(HTTPStatus.OK)
        self._headers(size, 0, size - 1, ranged=False)

    def _requested_span(self, size: int) -> tuple[int, int] | None:
        header = self.headers.get("Range")
        if not header:
            return 0, size - 1
        match = _RANGE.match(header.strip())
        if not match or (not match.group(1) and not match.group(2)):
            return None
        if not match.group(1):  # suffix range: last N bytes
            return max(0, size - int(match.group(2))), size - 1
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) else size - 1
        if start >= size:
            return None
        return start, min(end, size - 1)

    def _headers(self, size: int, start: int, end: int, ranged: bool) -> None:
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", self.guess_type(self.path))
        self.send_header("Content-Length", str(end - start + 1))
        if ranged:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()


@dataclass
class RangeServer:
    """A running server: ``url`` is the base URL of ``root``."""

    root: Path
    url: str
    stats: ServerStats
    _server: ThreadingHTTPServer = field(repr=False)


@contextlib.contextmanager
def serve_directory(root: Path, host: str = "127.0.0.1", port: int = 0) -> Iterator[RangeServer]:
    """Serve ``root`` over HTTP with range requests on loopback for the ``with`` block."""
    root = Path(root).resolve()
    stats = ServerStats()
    handler = type("Handler", (_RangeHandler,), {"stats": stats})

    def factory(*args: object, **kwargs: object) -> _RangeHandler:
        return handler(*args, directory=str(root), **kwargs)

    server = ThreadingHTTPServer((host, port), factory)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="clm-range-server", daemon=True)
    thread.start()
    try:
        yield RangeServer(root, f"http://{host}:{server.server_port}", stats, server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
