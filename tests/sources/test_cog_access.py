"""COG reads over HTTP: Planetary-Computer-style signing at read time (re-signed when the
signature expires during a run) and GDAL retries on transient range-request failures.
Chips must equal those read without any of it."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from http_fakes import FaultPlan, gated_storage, inject, serve_handler

from pipeline.archive.serve import _RangeHandler, serve_directory
from pipeline.chips.plan import plan_scene
from pipeline.chips.read import read_scene_chips
from pipeline.errors import ChipReadError
from pipeline.sources.base import Scene, SearchQuery
from pipeline.sources.geoparquet import GeoParquetSource

KEY = b"loopback-storage-key"


def _sig(expiry: int) -> str:
    return hmac.new(KEY, str(expiry).encode(), hashlib.sha256).hexdigest()[:16]


@dataclasses.dataclass
class TokenService:
    """Mock SAS token endpoint: GET /<account>/<container> -> {msft:expiry, token}.

    ``stale_first``: the first token's signature is already expired although its
    ``msft:expiry`` says otherwise (a token that lapsed while cached during a long run)."""

    stale_first: bool = False
    ttl_s: int = 3600
    issued: list[str] = dataclasses.field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_GET(self) -> None:
                now = datetime.now(UTC)
                stale = service.stale_first and not service.issued
                se = int(
                    (now - timedelta(seconds=5) if stale else now + timedelta(hours=2)).timestamp()
                )
                token = f"se={se}&sp=rl&sig={_sig(se)}"
                service.issued.append(self.path)
                expiry = (now + timedelta(seconds=service.ttl_s)).isoformat().replace("+00:00", "Z")
                body = json.dumps({"msft:expiry": expiry, "token": token}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def _valid_signature(query: dict[str, list[str]]) -> bool:
    se, sig = query.get("se", ["0"])[0], query.get("sig", [""])[0]
    return sig == _sig(int(se)) and int(se) > datetime.now(UTC).timestamp()


def _signed_storage(root: Path) -> contextlib.AbstractContextManager[tuple[str, list[str]]]:
    """The range server, refusing requests without a valid, unexpired signature."""
    return gated_storage(
        root,
        _valid_signature,
        "AuthenticationFailed: Signature not valid in the specified time frame",
    )


def _stats():
    from pipeline.archive.serve import ServerStats

    return ServerStats()


@pytest.fixture(scope="module")
def s2_scene(tiny_archive) -> Scene:
    source = GeoParquetSource(tiny_archive / "items.parquet")
    query = SearchQuery(
        ("sentinel-2-l2a",), datetime(2022, 1, 1, tzinfo=UTC), datetime(2022, 12, 31, tzinfo=UTC)
    )
    return next(iter(source.search(query)))  # baseline 04.00: offset harmonized too


def _at(scene: Scene, base: str, **extra) -> Scene:
    assets = {b: dataclasses.replace(a, href=f"{base}/{a.href}") for b, a in scene.assets.items()}
    return dataclasses.replace(scene, assets=assets, extra={**scene.extra, **extra})


def _chips(scene: Scene) -> dict[str, np.ndarray]:
    return {c.chip.key: c.image for c in read_scene_chips(scene, plan_scene(scene))}


@pytest.fixture(scope="module")
def reference(s2_scene, tiny_archive) -> dict[str, np.ndarray]:
    with serve_directory(tiny_archive) as server:
        return _chips(_at(s2_scene, server.url))


@pytest.fixture(autouse=True)
def _fresh_token_cache():
    import planetary_computer.sas as sas

    sas.TOKEN_CACHE.clear()
    yield
    sas.TOKEN_CACHE.clear()


def _signed_read(s2_scene, tiny_archive, service: TokenService):
    with (
        serve_handler(service.handler()) as token_url,
        _signed_storage(tiny_archive) as (url, denied),
    ):
        netloc = urlparse(url).netloc
        scene = _at(
            s2_scene, url, signing="planetary-computer", token_url=token_url, storage_domain=netloc
        )
        return _chips(scene), denied


def test_unsigned_reads_are_refused(s2_scene, tiny_archive):
    with _signed_storage(tiny_archive) as (url, denied), pytest.raises(ChipReadError, match="B01"):
        _chips(_at(s2_scene, url))
    assert denied


def test_signed_reads_match_and_tokens_are_reused(s2_scene, tiny_archive, reference):
    service = TokenService()
    chips, denied = _signed_read(s2_scene, tiny_archive, service)
    assert chips.keys() == reference.keys() and len(chips) > 0
    assert all(np.array_equal(chips[k], reference[k]) for k in chips)
    assert not denied and len(service.issued) == 1  # one container, one cached token


def test_expired_signature_is_re_signed_and_reads_succeed(s2_scene, tiny_archive, reference):
    service = TokenService(stale_first=True)
    chips, denied = _signed_read(s2_scene, tiny_archive, service)
    assert denied  # the stale signature was refused ...
    assert len(service.issued) == 2  # ... a fresh token was fetched ...
    assert all(np.array_equal(chips[k], reference[k]) for k in reference)  # ... and reads succeeded
    assert all("sig=" not in a.href for a in s2_scene.assets.values())


def test_tokens_close_to_expiry_are_renewed_before_use(s2_scene, tiny_archive, reference):
    service = TokenService(ttl_s=120)  # inside the re-sign margin: renew before every band
    chips, denied = _signed_read(s2_scene, tiny_archive, service)
    assert not denied and len(service.issued) > 1
    assert all(np.array_equal(chips[k], reference[k]) for k in reference)


class _FaultyRangeHandler(_RangeHandler):
    plan: FaultPlan

    def do_GET(self) -> None:
        fault = self.plan.next({"path": self.path, "range": self.headers.get("Range")})
        if fault == "truncate":
            self._truncated_range()
        elif fault:
            inject(self, fault)
        else:
            super().do_GET()

    def _truncated_range(self) -> None:
        """A 206 whose body stops halfway through its Content-Length (a true prefix)."""
        data = Path(self.translate_path(self.path)).read_bytes()
        start, end = self._requested_span(len(data)) or (0, len(data) - 1)
        self.send_response(206)
        self._headers(len(data), start, end, ranged=True)
        self.wfile.write(data[start : start + (end - start + 1) // 2])
        self.close_connection = True


@pytest.mark.parametrize("faults", [["503", "429"], ["reset"], ["truncate"]])
def test_range_reads_survive_transient_failures(s2_scene, tiny_archive, reference, faults):
    plan = FaultPlan()
    plan.queue.extend([None, *faults])  # let the header read pass, then fail range reads
    handler = type("H", (_FaultyRangeHandler,), {"plan": plan, "stats": _stats()})

    def factory(*args, **kwargs):
        return handler(*args, directory=str(tiny_archive), **kwargs)

    with serve_handler(factory) as url:  # type: ignore[arg-type]
        chips = _chips(_at(s2_scene, url))
    assert not plan.queue  # every fault was served
    assert all(np.array_equal(chips[k], reference[k]) for k in reference)
