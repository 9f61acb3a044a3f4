"""A fault-injecting HTTP proxy on loopback, in front of a real server (the range server).

Every request is forwarded to the upstream server (method, path with query, ``Range``)
unless the seeded schedule picks it for a fault: each request is faulted with probability
``rate`` (at most ``budget`` faults in all, and only requests whose ``User-Agent`` contains
``user_agent`` when given); per method (GET and HEAD apart) the kinds take turns in a
seeded order, so every kind reaches both methods once enough requests went through:

- ``"429"``: ``429 Too Many Requests`` with ``Retry-After``;
- ``"503"``: ``503 Service Unavailable``;
- ``"reset"``: the connection is reset (RST) without an answer;
- ``"truncate"``: the upstream status and headers, then fewer bytes than ``Content-Length``
  announces, then the connection closes (HEAD: the headers stop before their end);
- ``"delay"``: the answer comes ``delay_s`` late (longer than the client's timeout: a timeout).

``counts`` records what was injected, per (method, kind). Binds 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

FAULT_KINDS = ("429", "503", "reset", "truncate", "delay")
_FORWARDED = ("Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "ETag",
              "Last-Modified")  # fmt: skip


@dataclass
class FaultSchedule:
    """Which requests fail and how (seeded)."""

    seed: int = 0
    rate: float = 0.2
    kinds: tuple[str, ...] = FAULT_KINDS
    budget: int | None = None
    user_agent: str | None = None
    delay_s: float = 1.5
    retry_after: str = "1"
    enabled: bool = True
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    log: list[tuple[str, str, str | None]] = field(default_factory=list)
    _turns: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def next(self, method: str, user_agent: str, what: str = "") -> str | None:
        """The fault for the next ``method`` request, or ``None`` (forward it)."""
        with self._lock:
            kind = self._pick(method, user_agent)
            self.log.append((method, what, kind))
            return kind

    def _pick(self, method: str, user_agent: str) -> str | None:
        self.requests[method] += 1
        if not self.enabled or (self.user_agent and self.user_agent not in user_agent):
            return None
        spent = sum(self.counts.values())
        if (self.budget is not None and spent >= self.budget) or self._rng.random() >= self.rate:
            return None
        turns = self._turns.setdefault(method, [])
        if not turns:
            turns.extend(self._rng.sample(self.kinds, len(self.kinds)))
        kind = turns.pop()
        self.counts[(method, kind)] += 1
        return kind

    def injected(self, method: str) -> dict[str, int]:
        """Kind -> how many ``method`` requests got it."""
        return {kind: self.counts[(method, kind)] for kind in self.kinds}


class _ProxyHandler(BaseHTTPRequestHandler):
    upstream: str  # host:port
    schedule: FaultSchedule

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self._proxy("GET")

    def do_HEAD(self) -> None:
        self._proxy("HEAD")

    def _proxy(self, method: str) -> None:
        agent, wanted = self.headers.get("User-Agent", ""), self.headers.get("Range", "")
        fault = self.schedule.next(method, agent, f"{self.path} {wanted}")
        if fault == "reset":
            self._reset()
            return
        if fault in ("429", "503"):
            self._refuse(int(fault), method)
            return
        if fault == "delay":
            time.sleep(self.schedule.delay_s)
        status, headers, body = self._fetch(method)
        with contextlib.suppress(OSError):  # a client that timed out has gone away
            if fault == "truncate":
                self._truncated(method, status, headers, body)
            else:
                self._answer(status, headers, body)

    def _fetch(self, method: str) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.upstream, timeout=30)
        try:
            wanted = {k: v for k, v in self.headers.items() if k.lower() == "range"}
            conn.request(method, self.path, headers=wanted)
            response = conn.getresponse()
            body = response.read()
            headers = [(k, v) for k, v in response.getheaders() if k in _FORWARDED]
            return response.status, headers, body
        finally:
            conn.close()

    def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _truncated(
        self, method: str, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        self.close_connection = True
        if method == "HEAD":  # no body to cut: the header block stops before its end
            self.wfile.write(f"HTTP/1.1 {status} OK\r\nContent-Le".encode())
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)

    def _refuse(self, status: int, method: str) -> None:
        body = b"slow down" if status == 429 else b"unavailable"
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", self.schedule.retry_after)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    def _reset(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        return  # a reset or a client gone after a timeout is the point, not an error


@dataclass
class FaultProxy:
    url: str
    schedule: FaultSchedule


@contextlib.contextmanager
def fault_proxy(upstream_url: str, schedule: FaultSchedule, port: int = 0) -> Iterator[FaultProxy]:
    """Serve a proxy of ``upstream_url`` injecting ``schedule``'s faults for the block."""
    upstream = urlparse(upstream_url).netloc
    handler = type("Handler", (_ProxyHandler,), {"upstream": upstream, "schedule": schedule})
    server = _QuietServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, name="fault-proxy", daemon=True)
    thread.start()
    try:
        yield FaultProxy(f"http://127.0.0.1:{server.server_port}", schedule)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
