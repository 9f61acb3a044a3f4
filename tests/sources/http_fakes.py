"""Loopback stand-ins for the services the API sources talk to, with fault injection
(helpers for the fixtures in ``conftest.py`` and the tests of this folder).

``fake_stac_api`` is a small STAC API (POST /search with token paging, like pgstac) over
given items; ``faults`` is a queue of failures to inject into the next requests:
``"429"`` (with ``Retry-After``), ``"503"``, ``"reset"`` (connection closed without an
answer), ``"truncate"`` (body cut short of its Content-Length), ``"badjson"`` (a complete
but invalid body) and ``"400"`` (a permanent error). Servers bind 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from pipeline.archive.serve import ServerStats, _RangeHandler


@dataclass
class FaultPlan:
    """Failures to inject, one per request, in order (``None``: answer normally)."""

    queue: deque[str | None] = field(default_factory=deque)
    always: str | None = None  # inject this into every request (permanent failure)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def next(self, record: dict[str, Any]) -> str | None:
        with self.lock:
            self.requests.append(record)
            if self.always:
                return self.always
            return self.queue.popleft() if self.queue else None


def inject(handler: BaseHTTPRequestHandler, fault: str, body: bytes = b"{}") -> None:
    """Answer ``handler`` with the failure named ``fault``."""
    if fault == "reset":
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            handler.connection.shutdown(socket.SHUT_RDWR)
        return
    if fault in ("429", "503", "400"):
        handler.send_response(int(fault))
        if fault == "429":
            handler.send_header("Retry-After", "1")
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"{}")
        return
    handler.send_response(200)
    handler.send_header("Content-Type", "application/geo+json")
    if fault == "truncate":
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[: len(body) // 2])
        handler.close_connection = True
        return
    bad = body[: len(body) // 2]  # "badjson": a complete response whose JSON is cut
    handler.send_header("Content-Length", str(len(bad)))
    handler.end_headers()
    handler.wfile.write(bad)


@dataclass
class FakeStacApi:
    url: str
    faults: FaultPlan
    items: list[dict[str, Any]]


def search_handler(
    items: list[dict[str, Any]], page_size: int, plan: FaultPlan, matched: int | None
):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
            page = int(str(body.get("token", "page:0")).split(":")[1])
            answer = json.dumps(self._page(body, page)).encode()
            fault = plan.next({"path": self.path, "body": body})
            if fault:
                inject(self, fault, answer)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/geo+json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def _page(self, body: dict[str, Any], page: int) -> dict[str, Any]:
            wanted = set(body.get("collections") or [i["collection"] for i in items])
            chosen = [i for i in items if i["collection"] in wanted]
            features = chosen[page * page_size : (page + 1) * page_size]
            links = []
            if (page + 1) * page_size < len(chosen):
                url = f"http://{self.headers['Host']}/search"
                links.append({"rel": "next", "method": "POST", "href": url, "merge": True,
                              "body": {"token": f"page:{page + 1}"}})  # fmt: skip
            out: dict[str, Any] = {
                "type": "FeatureCollection",
                "features": features,
                "links": links,
            }
            if matched is not None:
                out["numberMatched"] = matched
            return out

    return Handler


@contextlib.contextmanager
def serve_handler(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def gated_storage(
    root: Path, allow: Callable[[dict[str, list[str]]], bool], refusal: str
) -> Iterator[tuple[str, list[str]]]:
    """Blob storage on loopback serving ``root`` with range requests; a GET or HEAD whose
    query ``allow`` refuses gets a 403 with ``refusal`` and its path is listed in ``denied``."""
    denied: list[str] = []

    class Gated(_RangeHandler):
        stats = ServerStats()

        def _allowed(self) -> bool:
            if allow(parse_qs(urlparse(self.path).query)):
                return True
            denied.append(self.path)
            self.send_error(403, refusal)
            return False

        def do_GET(self) -> None:
            if self._allowed():
                super().do_GET()

        def do_HEAD(self) -> None:
            if self._allowed():
                super().do_HEAD()

    def factory(*args, **kwargs):
        return Gated(*args, directory=str(root), **kwargs)

    with serve_handler(factory) as url:  # type: ignore[arg-type]
        yield url, denied
