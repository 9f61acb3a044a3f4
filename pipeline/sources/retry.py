"""Resilient HTTP for the API sources: retries with exponential backoff and jitter, and a
bounded number of simultaneous requests per provider.

One retry layer (tenacity) covers what real services do: HTTP 429 (honouring
``Retry-After``), transient 5xx, timeouts, connection resets and truncated or invalid
JSON bodies. When the attempts are exhausted a ``SourceError`` names the URL, the last
failure and what to change. Nothing here logs request headers (they may carry tokens).
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlparse

import requests
import tenacity
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO

from pipeline.errors import SourceError
from pipeline.sources.redact import redact
from pipeline.sources.settings import RetryPolicy

log = logging.getLogger(__name__)
T = TypeVar("T")
# connection refused/reset, timeouts, bodies cut short (IncompleteRead) or undecodable
_TRANSIENT_EXCEPTIONS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
_SEMAPHORES: dict[str, threading.BoundedSemaphore] = {}
_SEMAPHORES_LOCK = threading.Lock()


class TransientError(Exception):
    """A failure worth retrying; ``retry_after`` (seconds) when the server asked for a pause."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@contextmanager
def provider_slot(url: str, max_concurrency: int) -> Iterator[None]:
    """Hold one of the ``max_concurrency`` request slots of the provider serving ``url``."""
    host = urlparse(url).netloc or url
    with _SEMAPHORES_LOCK:
        sem = _SEMAPHORES.setdefault(host, threading.BoundedSemaphore(max(1, max_concurrency)))
    with sem:
        yield


@dataclass(frozen=True)
class _Wait:
    """Exponential backoff with jitter, or the server's ``Retry-After`` when longer."""

    policy: RetryPolicy

    def __call__(self, state: tenacity.RetryCallState) -> float:
        p = self.policy
        delay = min(p.backoff_max_s, p.backoff_s * 2 ** (state.attempt_number - 1))
        delay += random.uniform(0, p.jitter_s)
        exc = state.outcome.exception() if state.outcome else None
        after = getattr(exc, "retry_after", None)
        return max(delay, min(after, p.backoff_max_s)) if after else delay


def call_with_retries(policy: RetryPolicy, what: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` retrying ``TransientError``; raise ``SourceError`` once attempts run out."""
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.max_attempts),
        wait=_Wait(policy),
        retry=tenacity.retry_if_exception_type(TransientError),
        before_sleep=lambda s: log.warning(
            "%s: attempt %d failed (%s); retrying", what, s.attempt_number, _outcome(s)
        ),
        reraise=True,
    )
    try:
        return retrying(fn)
    except TransientError as exc:
        raise SourceError(
            f"{what} still failing after {policy.max_attempts} attempts: {exc}; the service is "
            "unavailable or rate-limiting: retry later, lower source.max_concurrency or raise "
            "source.retry.max_attempts"
        ) from exc


def _outcome(state: tenacity.RetryCallState) -> str:
    exc = state.outcome.exception() if state.outcome else None
    return str(exc) if exc else "?"


def send_checked(
    session: requests.Session,
    request: requests.PreparedRequest,
    policy: RetryPolicy,
    expect_json: bool = True,
) -> requests.Response:
    """Send once; turn retryable failures into ``TransientError`` (bodies fully read)."""
    try:
        response = session.send(request, timeout=policy.timeout_s)
        content = response.content  # reads the whole body: truncation raises here
    except _TRANSIENT_EXCEPTIONS as exc:
        raise TransientError(redact(f"{type(exc).__name__}: {exc}")) from exc
    if response.status_code in policy.statuses:
        raise TransientError(
            f"HTTP {response.status_code} {response.reason}",
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    if expect_json and 200 <= response.status_code < 300:
        try:
            json.loads(content)
        except ValueError as exc:
            raise TransientError(f"truncated or invalid JSON body ({len(content)} bytes)") from exc
    return response


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - datetime.now(UTC)).total_seconds())


class RetryingStacApiIO(StacApiIO):
    """pystac-client's ``StacApiIO`` with one retry layer and a per-provider request bound."""

    def __init__(self, policy: RetryPolicy, max_concurrency: int, **kwargs: Any) -> None:
        super().__init__(max_retries=None, timeout=policy.timeout_s, **kwargs)
        self.policy = policy
        self.max_concurrency = max_concurrency

    def request(
        self,
        href: str,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> str:
        method = (method or "GET").upper()
        if method in ("POST", "PUT", "PATCH"):
            req = requests.Request(method, href, headers=headers, json=parameters)
        else:
            req = requests.Request(method, href, headers=headers, params=dict(parameters or {}))
        modified = self._req_modifier(req) if self._req_modifier else None
        prepared = self.session.prepare_request(modified or req)

        def attempt() -> requests.Response:
            with provider_slot(href, self.max_concurrency):
                return send_checked(self.session, prepared.copy(), self.policy)

        response = call_with_retries(self.policy, f"{method} {redact(href)}", attempt)
        if not 200 <= response.status_code < 300:
            raise APIError.from_response(response)
        return response.content.decode("utf-8")
