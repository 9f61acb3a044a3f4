"""No secret of a signed asset URL (``sig=...``) in any error, log record or written file.

Every error path that names an asset is driven with hrefs signed like Planetary Computer
SAS URLs and served by a real loopback server; the printed traceback (what a CLI or an
Airflow task log shows), every log record at any level and every file the build writes are
searched for the secret.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import shutil
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from http_fakes import gated_storage, serve_handler

from pipeline.archive.serve import ServerStats, _RangeHandler, serve_directory
from pipeline.build import stage_captions, stage_chips, stage_corpus, stage_search
from pipeline.chips.plan import plan_scene
from pipeline.chips.read import read_scene_chips
from pipeline.config import load_config
from pipeline.corpus.drift import check_inputs, format_drift
from pipeline.corpus.lock import read_lock
from pipeline.errors import PipelineError
from pipeline.sources.access import pc_token, redact
from pipeline.sources.base import Scene, SearchQuery
from pipeline.sources.fingerprint import fingerprint
from pipeline.sources.geoparquet import GeoParquetSource
from pipeline.sources.select import read_scenes, write_scenes
from pipeline.sources.settings import RetryPolicy

SECRET = "SECRET0sig0value"
SIGNED = f"?se=2099-01-01T00%3A00%3A00Z&sp=rl&sv=2021-06-08&sr=c&sig={SECRET}"


@pytest.fixture(autouse=True)
def _every_log_record(caplog):
    caplog.set_level(logging.DEBUG)
    yield caplog
    leaked = [f"{r.name}: {r.getMessage()}" for r in caplog.records if SECRET in r.getMessage()]
    assert not leaked, leaked


def _signed(scene: Scene, base: str, **replace_href: str) -> Scene:
    def href(band: str, rel: str) -> str:
        return f"{base}/{replace_href.get(band, rel)}{SIGNED}"

    assets = {b: dataclasses.replace(a, href=href(b, a.href)) for b, a in scene.assets.items()}
    return dataclasses.replace(scene, assets=assets)


def _raised_text(call: Callable[[], object]) -> str:
    with pytest.raises(PipelineError) as raised:
        call()
    return "".join(traceback.format_exception(raised.value))


def _read(scene: Scene) -> None:
    for _ in read_scene_chips(scene, plan_scene(scene)):
        pass


@pytest.fixture(scope="module")
def scenes(tiny_archive) -> list[Scene]:
    query = SearchQuery(
        ("sentinel-2-l2a", "sentinel-1-grd"),
        datetime(2020, 1, 1, tzinfo=UTC),
        datetime(2023, 12, 31, tzinfo=UTC),
    )
    return list(GeoParquetSource(tiny_archive / "items.parquet").search(query))


def _on_error_skip(path: Path) -> Path:
    """Failed scenes are skipped (fingerprints of signed storage are taken on signed URLs)."""
    raw = yaml.safe_load(path.read_text())
    raw["chips"]["on_error"] = "skip"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_redact_removes_query_userinfo_and_embedded_gdal_urls():
    text = (
        f"/vsicurl/https://clm:{SECRET}@acct.blob.core.windows.net/c/B02.tif{SIGNED}: "
        f"HTTP 403; /vsicurl?url=https%3A%2F%2Fh%2Fa.tif%3Fsig%3D{SECRET}&use_head=no"
    )
    clean = redact(text)
    assert SECRET not in clean
    assert "/vsicurl/https://acct.blob.core.windows.net/c/B02.tif?..." in clean
    assert redact("no URL here? fine") == "no URL here? fine"
    gdal = f"vv.tif{SIGNED}, band 1: IReadBlock failed"
    assert redact(gdal) == "vv.tif?..., band 1: IReadBlock failed"


def test_open_failure(scenes, tiny_archive):
    with serve_directory(tiny_archive) as server:
        scene = _signed(scenes[0], server.url, B03="scenes/missing/B03.tif")
        text = _raised_text(lambda: _read(scene))
    assert "cannot open band B03" in text and SECRET not in text


def test_read_failure_after_retries(scenes, tiny_archive):
    class Failing(_RangeHandler):  # the header reads pass, every later range read fails
        stats = ServerStats()

        def do_GET(self) -> None:
            start = (self.headers.get("Range") or "bytes=0-").split("=")[1].split("-")[0]
            if int(start or 0) >= 16384:
                self.send_error(400, f"refused {self.path}")
            else:
                super().do_GET()

    def factory(*args, **kwargs):
        return Failing(*args, directory=str(tiny_archive), **kwargs)

    s1 = next(s for s in scenes if s.sensor == "s1")
    with serve_handler(factory) as url:  # type: ignore[arg-type]
        text = _raised_text(lambda: _read(_signed(s1, url)))
    assert "unreadable after" in text and SECRET not in text


def test_window_outside_the_raster(scenes, tiny_archive):
    from pyproj import Transformer
    from shapely.geometry import box, mapping
    from shapely.ops import transform

    scene = scenes[0]
    grown = {
        b: dataclasses.replace(a, shape=(a.shape[0] * 2, a.shape[1] * 2))
        for b, a in scene.assets.items()
    }
    a, _, c, _, e, f = scene.assets["B02"].transform[:6]
    rows, cols = grown["B02"].shape
    to_lonlat = Transformer.from_crs(scene.epsg, 4326, always_xy=True).transform
    footprint = transform(to_lonlat, box(c, f + e * rows, c + a * cols, f))
    scene = dataclasses.replace(scene, assets=grown, geometry=mapping(footprint))
    with serve_directory(tiny_archive) as server:
        text = _raised_text(lambda: _read(_signed(scene, server.url)))
    assert "exceed the raster" in text and SECRET not in text


def test_corrupt_tile(scenes, tiny_archive, tmp_path, garble_tile):
    archive = tmp_path / "archive"
    shutil.copytree(tiny_archive / "scenes", archive / "scenes")
    garble_tile(archive / scenes[0].assets["B02"].href, 0.98)
    with serve_directory(archive) as server:
        text = _raised_text(lambda: _read(_signed(scenes[0], server.url)))
    assert "DEFLATE checksum" in text and SECRET not in text


def test_geometry_mismatch(scenes, tiny_archive):
    scene = dataclasses.replace(_signed(scenes[0], "http://127.0.0.1:9"), epsg=32633)
    text = _raised_text(lambda: plan_scene(scene))
    assert "proj:epsg 32633" in text and SECRET not in text


def test_fingerprint_failures(tiny_archive):
    with serve_directory(tiny_archive) as server:
        missing = fingerprint(f"{server.url}/scenes/missing.tif{SIGNED}")
    assert missing == {"missing": True}
    quick = RetryPolicy(max_attempts=2, backoff_s=0.01, jitter_s=0.0, timeout_s=2.0)
    text = _raised_text(lambda: fingerprint(f"http://127.0.0.1:9/scenes/B02.tif{SIGNED}", quick))
    assert "cannot fingerprint http://127.0.0.1:9/scenes/B02.tif?..." in text
    assert SECRET not in text


def test_sas_token_failure():
    import planetary_computer.sas as sas

    class Refusing(_RangeHandler):
        stats = ServerStats()

        def do_GET(self) -> None:
            self.send_error(400, "no token for you")

    sas.TOKEN_CACHE.clear()
    with serve_handler(Refusing) as url:  # type: ignore[arg-type]
        netloc = urlparse(url).netloc
        token_url = f"http://clm:{SECRET}@{netloc}"
        text = _raised_text(lambda: pc_token("acct", "container", token_url, refresh=True))
    assert "cannot get a SAS token" in text and SECRET not in text


def _token_service(sig: str) -> type[BaseHTTPRequestHandler]:
    """A SAS token endpoint (GET /<account>/<container>) issuing tokens signed ``sig``."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            expiry = (datetime.now(UTC) + timedelta(hours=2)).isoformat().replace("+00:00", "Z")
            token = f"se=2099-01-01&sp=rl&sig={sig}"
            body = json.dumps({"msft:expiry": expiry, "token": token}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextlib.contextmanager
def _pc_storage(root: Path, accepted_sig: str) -> Iterator[str]:
    """Blob storage on loopback serving ``root``; 403 unless the query has ``accepted_sig``."""
    with gated_storage(
        root,
        lambda query: query.get("sig") == [accepted_sig],
        "AuthenticationFailed: Signature did not match",
    ) as (url, _):
        yield url


def _signed_at_read_time(scene: Scene, storage: str, token_url: str) -> Scene:
    """Plain hrefs on ``storage``, signed by the Planetary Computer scheme when read."""
    assets = {
        b: dataclasses.replace(a, href=f"{storage}/{a.href}") for b, a in scene.assets.items()
    }
    extra = {
        "signing": "planetary-computer",
        "token_url": token_url,
        "storage_domain": urlparse(storage).netloc,
    }
    return dataclasses.replace(scene, assets=assets, extra={**scene.extra, **extra})


def test_signature_refused_by_storage(scenes, tiny_archive):
    import planetary_computer.sas as sas

    sas.TOKEN_CACHE.clear()
    with (
        serve_handler(_token_service(SECRET)) as token_url,
        _pc_storage(tiny_archive, accepted_sig="another-signature") as storage,
    ):
        scene = _signed_at_read_time(scenes[0], storage, token_url)
        text = _raised_text(lambda: _read(scene))
    assert "cannot open band" in text and "403" in text and SECRET not in text


def test_a_build_signing_at_read_time_writes_no_secret(
    scenes, tiny_archive, tmp_path, garble_tile, run_config
):
    """Planetary-Computer-style signing at read time, two failed scenes (a corrupt tile, a
    missing file) and kept chips: nothing under the corpus directory (failed_scenes.json,
    manifest, chip rows, lock, views) holds the signature, though every read carried it; the
    lock's inputs check clean when re-fingerprinted through the signed scenes (rebuild)."""
    import planetary_computer.sas as sas

    archive = tmp_path / "archive"
    shutil.copytree(tiny_archive, archive)
    s2, s1 = scenes[0], next(s for s in scenes if s.sensor == "s1")
    garble_tile(archive / s2.assets["B02"].href, 0.98)
    (archive / s1.assets["VV"].href).unlink()
    path = run_config(tmp_path / "run.yaml", archive, tmp_path / "corpus")
    config = load_config(_on_error_skip(path))
    scenes_path = stage_search(config)
    sas.TOKEN_CACHE.clear()
    with (
        serve_handler(_token_service(SECRET)) as token_url,
        _pc_storage(archive, accepted_sig=SECRET) as storage,
    ):
        signed = [_signed_at_read_time(s, storage, token_url) for s in read_scenes(scenes_path)]
        write_scenes(signed, scenes_path)
        chips = stage_chips(config, scenes_path)
        stage_corpus(config, chips, stage_captions(config, chips))
        # a rebuild re-checks the locked inputs through the scenes it finds again: signed
        lock = read_lock(tmp_path / "corpus" / "corpus.lock")
        assert check_inputs(lock, signed) == []
        unsigned = check_inputs(lock)  # what a rebuild without the scenes' signing would see
    assert unsigned and all("unverifiable" in d.found and "403" in d.found for d in unsigned)
    assert SECRET not in format_drift(unsigned)
    failed = json.loads((tmp_path / "corpus" / "work" / "failed_scenes.json").read_text())
    assert set(failed) == {s2.item_id, s1.item_id}
    assert "DEFLATE checksum" in failed[s2.item_id] and "?..." in failed[s2.item_id]
    manifest = json.loads((tmp_path / "corpus" / "manifest.json").read_text())
    assert manifest["failed_scenes"] == failed
    assert manifest["chips"]["s1"]["kept"] > 0 and manifest["chips"]["s2"]["kept"] > 0
    written = [p for p in (tmp_path / "corpus").rglob("*") if p.is_file()]
    assert not [str(p.relative_to(tmp_path)) for p in written if SECRET.encode() in p.read_bytes()]
