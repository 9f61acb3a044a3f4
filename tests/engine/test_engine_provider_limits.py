"""Per-provider limits hold across the workers of a Dask cluster: the chip stage on a
``LocalCluster`` of 2 worker processes, reading the tiny archive from a loopback range server
that records how many scenes it serves requests of at once, per host. Fingerprints (HEAD, from the
workers) and reads (GDAL range requests) both count."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

import pandas as pd
import pytest

from pipeline.archive.serve import ServerStats, _RangeHandler
from pipeline.build import stage_chips, stage_search
from pipeline.config import load_config

DELAY_S = 0.01  # per request: makes overlapping requests likely when nothing bounds them


@dataclass
class InFlight:
    """Scenes with a request being served now, and at most at once, per ``Host`` header.

    Scenes, not requests: one worker reads a scene's files one request after another, and
    the next can arrive while the server thread of the previous one (whose last bytes the
    client already has) is still returning; two *scenes* in flight at once are two workers."""

    now: dict[str, Counter[str]] = field(default_factory=dict)
    peak: Counter[str] = field(default_factory=Counter)
    served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @contextlib.contextmanager
    def request(self, host: str, scene: str) -> Iterator[None]:
        with self.lock:
            scenes = self.now.setdefault(host, Counter())
            scenes[scene] += 1
            self.peak[host] = max(self.peak[host], len(+scenes))
            self.served += 1
        try:
            threading.Event().wait(DELAY_S)
            yield
        finally:
            with self.lock:
                self.now[host][scene] -= 1


class _CountingHandler(_RangeHandler):
    flight: InFlight

    def do_GET(self) -> None:
        with self.flight.request(self.headers.get("Host", "?"), self._scene()):
            super().do_GET()

    def do_HEAD(self) -> None:
        with self.flight.request(self.headers.get("Host", "?"), self._scene()):
            super().do_HEAD()

    def _scene(self) -> str:
        return self.path.split("?")[0].rsplit("/", 1)[0]  # the scene's folder


@contextlib.contextmanager
def counting_server(root) -> Iterator[tuple[str, InFlight]]:
    flight = InFlight()
    handler = type("Handler", (_CountingHandler,), {"stats": ServerStats(), "flight": flight})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", flight
    finally:
        server.shutdown()
        server.server_close()


def chip_stage(run_config, archive, out, url, engine) -> pd.DataFrame:
    source = {"kind": "geoparquet", "asset_base": url}
    config = load_config(
        run_config(out.parent / "run.yaml", archive, out, source=source, engine=engine)
    )
    return pd.read_parquet(stage_chips(config, stage_search(config)))


@pytest.mark.slow
@pytest.mark.parametrize("limit", [1, None])
def test_a_limit_of_one_per_provider_holds_across_two_workers(
    limit, tiny_archive, run_config, tmp_path
):
    engine = {"n_workers": 2, "max_per_provider": limit}
    with counting_server(tiny_archive) as (url, flight):
        chips = chip_stage(run_config, tiny_archive, tmp_path / "corpus", url, engine)
    host = url.removeprefix("http://")
    assert chips["item_id"].nunique() >= 4 and (chips["rejected"].isna()).sum() > 0
    assert flight.served > 100 and set(flight.peak) == {host}
    if limit == 1:
        assert flight.peak[host] == 1
    else:  # the check can fail: without a limit the two workers overlap
        assert flight.peak[host] >= 2
