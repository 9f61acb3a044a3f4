"""The Sentinel Hub source against a loopback stand-in that behaves like the real service:
OAuth client credentials (token endpoint, Bearer check), catalog paging with ``next``,
process request bodies validated as the API does, and a process endpoint that renders the
requested bbox from the tiny archive's COGs. The chips must equal the COG-read chips."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import pytest
import rasterio
from affine import Affine
from http_fakes import serve_handler
from rasterio.enums import Resampling
from rasterio.windows import from_bounds

from pipeline.chips.plan import plan_scene
from pipeline.chips.read import read_scene_chips
from pipeline.errors import ConfigError
from pipeline.sources.base import S2_BANDS as SCENE_S2_BANDS
from pipeline.sources.base import SearchQuery
from pipeline.sources.geoparquet import GeoParquetSource
from pipeline.sources.sentinelhub import SentinelHubSource
from pipeline.sources.settings import ApiSettings, RetryPolicy

CLIENT_ID, CLIENT_SECRET = "clm-test-client", "s3cret-value"
S2_BANDS = [*SCENE_S2_BANDS, "SCL"]
BANDS = {"sentinel-2-l2a": S2_BANDS, "sentinel-1-grd": ["VV", "VH"]}
PAGE_LIMIT_MAX = 100


@dataclass
class MockSentinelHub:
    """State of the stand-in: the archive it renders from and what it saw."""

    archive: Path
    items: list[dict[str, Any]]
    tokens: set[str] = field(default_factory=set)
    log: list[tuple[str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _error(status: int, message: str) -> tuple[int, bytes, str]:
    body = {"error": {"status": status, "reason": "Bad Request" if status == 400 else "Unauthorized",
                      "message": message, "code": "COMMON_BAD_PAYLOAD"}}  # fmt: skip
    return status, json.dumps(body).encode(), "application/json"


def _token(state: MockSentinelHub, headers: Any, body: bytes) -> tuple[int, bytes, str]:
    form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
    auth = headers.get("Authorization", "")
    if auth.startswith("Basic "):
        form["client_id"], form["client_secret"] = base64.b64decode(auth[6:]).decode().split(":", 1)
    if form.get("grant_type") != "client_credentials":
        return _error(400, "unsupported_grant_type")
    if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
        return _error(401, "invalid_client")
    token = f"tok-{len(state.tokens) + 1}"
    state.tokens.add(token)
    answer = {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
    return 200, json.dumps(answer).encode(), "application/json"


def _when(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))


def _catalog_feature(item: dict[str, Any]) -> dict[str, Any]:
    p = item["properties"]
    props = {
        "datetime": p["datetime"],
        "platform": p["platform"].lower(),
        "constellation": p["constellation"],
    }
    if item["collection"] == "sentinel-2-l2a":
        props |= {
            "eo:cloud_cover": p["eo:cloud_cover"],
            "proj:epsg": p["proj:epsg"],
            "instruments": ["msi"],
        }
    else:  # Sentinel Hub's S1 GRD features carry no projection (rendered orthorectified)
        props |= {"sar:instrument_mode": p["sar:instrument_mode"], "sar:polarizations": p["sar:polarizations"],
                  "sat:orbit_state": p["sat:orbit_state"], "s1:polarization": "DV", "instruments": ["c-sar"]}  # fmt: skip
    sh_id = item["id"]
    if item["collection"] == "sentinel-2-l2a":  # SH ids are product names: they carry _Nxxxx_
        baseline = p["s2:processing_baseline"].replace(".", "")
        sh_id = item["id"].replace("_R", f"_N{baseline}_R", 1)
    return {"stac_version": "1.0.0", "type": "Feature", "id": sh_id, "bbox": item["bbox"],
            "geometry": item["geometry"], "properties": props, "assets": {}, "links": []}  # fmt: skip


def _catalog(state: MockSentinelHub, body: dict[str, Any]) -> tuple[int, bytes, str]:
    collections = body.get("collections")
    if not isinstance(collections, list) or len(collections) != 1 or collections[0] not in BANDS:
        return _error(400, f"collections must name one of {sorted(BANDS)}")
    if "bbox" not in body and "intersects" not in body:
        return _error(400, "bbox or intersects is required")
    limit = body.get("limit", 10)
    if not isinstance(limit, int) or not 1 <= limit <= PAGE_LIMIT_MAX:
        return _error(400, f"limit must be 1..{PAGE_LIMIT_MAX}")
    start, end = (
        datetime.fromisoformat(t.replace("Z", "+00:00")) for t in body["datetime"].split("/")
    )
    minx, miny, maxx, maxy = body["bbox"]
    hits = sorted(
        (i for i in state.items if i["collection"] == collections[0] and start <= _when(i) <= end
         and i["bbox"][0] <= maxx and minx <= i["bbox"][2] and i["bbox"][1] <= maxy and miny <= i["bbox"][3]),
        key=lambda i: (_when(i), i["id"]),
    )  # fmt: skip
    offset = int(body.get("next", 0))
    page = hits[offset : offset + limit]
    context: dict[str, Any] = {"limit": limit, "returned": len(page)}
    if offset + limit < len(hits):
        context["next"] = offset + limit
    answer = {"type": "FeatureCollection", "features": [_catalog_feature(i) for i in page],
              "links": [], "context": context}  # fmt: skip
    return 200, json.dumps(answer).encode(), "application/geo+json"


def _validate_process(body: dict[str, Any]) -> str | None:
    """What the real Process API would reject, as its error message (None: valid)."""
    try:
        bounds, data, output = body["input"]["bounds"], body["input"]["data"], body["output"]
    except (KeyError, TypeError):
        return "input.bounds, input.data and output are required"
    if not re.fullmatch(
        r"http://www\.opengis\.net/def/crs/EPSG/0/\d+", bounds.get("properties", {}).get("crs", "")
    ):
        return "input.bounds.properties.crs must be an OGC CRS URL"
    if len(bounds.get("bbox", [])) != 4 or len(data) != 1 or data[0].get("type") not in BANDS:
        return "input.bounds.bbox needs 4 numbers and input.data one known collection"
    rng = data[0].get("dataFilter", {}).get("timeRange", {})
    if not rng.get("from") or not rng.get("to"):
        return "dataFilter.timeRange.from/to are required"
    if not ({"resx", "resy"} <= output.keys() or {"width", "height"} <= output.keys()):
        return "output needs resx/resy or width/height"
    if [r.get("format", {}).get("type") for r in output.get("responses", [])] != ["image/tiff"]:
        return "a single image/tiff response is expected"
    script = body.get("evalscript", "")
    wanted = re.search(r"bands:\s*\[([^\]]*)\]", script)
    names = re.findall(r'"(\w+)"', wanted.group(1)) if wanted else []
    if not script.startswith("//VERSION=3") or names != BANDS[data[0]["type"]]:
        return f"evalscript must be VERSION=3 and request {BANDS[data[0]['type']]}"
    return None


def _render(state: MockSentinelHub, body: dict[str, Any]) -> tuple[int, bytes, str]:
    problem = _validate_process(body)
    if problem:
        return _error(400, problem)
    data = body["input"]["data"][0]
    rng = data["dataFilter"]["timeRange"]
    start, end = (datetime.fromisoformat(rng[k].replace("Z", "+00:00")) for k in ("from", "to"))
    match = [i for i in state.items if i["collection"] == data["type"] and start <= _when(i) <= end]
    if len(match) != 1:
        return _error(400, f"{len(match)} products in the time range")
    item, bbox = match[0], body["input"]["bounds"]["bbox"]
    res = float(body["output"]["resx"])
    shape = (round((bbox[3] - bbox[1]) / res), round((bbox[2] - bbox[0]) / res))
    baseline = item["properties"].get("s2:processing_baseline") or "00.00"
    harmonize = data.get("processing", {}).get("harmonizeValues", True) and baseline >= "04.00"
    planes = [
        _plane(state.archive, item, band, bbox, shape, harmonize) for band in BANDS[data["type"]]
    ]
    crs = body["input"]["bounds"]["properties"]["crs"].rsplit("/", 1)[1]
    return 200, _tiff(np.stack(planes), f"EPSG:{crs}", bbox, res), "image/tiff"


def _plane(archive: Path, item: dict[str, Any], band: str, bbox: list[float], shape: tuple[int, int],
           harmonize: bool) -> np.ndarray:  # fmt: skip
    key = band if item["collection"] == "sentinel-2-l2a" else band.lower()
    with rasterio.open(archive / item["assets"][key]["href"]) as ds:
        plane = ds.read(1, window=from_bounds(*bbox, transform=ds.transform), out_shape=shape,
                        resampling=Resampling.nearest, boundless=True, fill_value=0)  # fmt: skip
    if harmonize and band != "SCL":
        plane = np.where(plane > 0, np.clip(plane.astype(np.int32) - 1000, 0, None), 0)
    return plane.astype(np.uint16 if item["collection"] == "sentinel-2-l2a" else np.float32)


def _tiff(stack: np.ndarray, crs: str, bbox: list[float], res: float) -> bytes:
    """A georeferenced multi-band GeoTIFF, as the Process API answers."""
    buffer = io.BytesIO()
    transform = Affine(res, 0, bbox[0], 0, -res, bbox[3])
    with rasterio.MemoryFile() as mem:
        with mem.open(driver="GTiff", width=stack.shape[2], height=stack.shape[1], count=stack.shape[0],
                      dtype=stack.dtype.name, crs=crs, transform=transform) as dst:  # fmt: skip
            dst.write(stack)
        buffer.write(mem.read())
    return buffer.getvalue()


def _handler(state: MockSentinelHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, payload, ctype = self._answer(body)
            with state.lock:
                state.log.append((self.path, status))
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _answer(self, body: bytes) -> tuple[int, bytes, str]:
            if self.path == "/oauth/token":
                return _token(state, self.headers, body)
            bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if bearer not in state.tokens:
                return _error(401, "missing or invalid Bearer token")
            if self.path == "/api/v1/catalog/1.0.0/search":
                return _catalog(state, json.loads(body))
            if self.path == "/api/v1/process":
                return _render(state, json.loads(body))
            return _error(400, f"unknown endpoint {self.path}")

    return Handler


@pytest.fixture
def sentinel_hub(tiny_archive, monkeypatch) -> Iterator[tuple[str, MockSentinelHub]]:
    from pipeline.archive.stac_server import read_items

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain HTTP on loopback only
    monkeypatch.setenv("SH_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SH_CLIENT_SECRET", CLIENT_SECRET)
    state = MockSentinelHub(tiny_archive, read_items(tiny_archive / "items.parquet"))
    with serve_handler(_handler(state)) as url:
        yield url, state


def _settings(url: str, cache: Path, **kw: Any) -> ApiSettings:
    fast = RetryPolicy(max_attempts=2, backoff_s=0.01, timeout_s=20)
    return ApiSettings(
        url=url, token_url=f"{url}/oauth/token", page_size=1, cache_dir=cache, retry=fast, **kw
    )


def _query(archive: Path, collection: str, aoi: str = "veneto") -> SearchQuery:
    meta = json.loads((archive / "archive.json").read_text())
    box = next(a for a in meta["aois"] if a["name"] == aoi)["bbox_wgs84"]
    return SearchQuery((collection,), datetime.fromisoformat("2021-01-01T00:00:00+00:00"),
                       datetime.fromisoformat("2022-12-31T00:00:00+00:00"), tuple(box))  # fmt: skip


def _cog_chips(archive: Path, query: SearchQuery) -> dict[str, np.ndarray]:
    out = {}
    for scene in GeoParquetSource(archive / "items.parquet").search(query):
        absolute = {
            b: type(a)(str(archive / a.href), a.gsd, a.shape, a.transform)
            for b, a in scene.assets.items()
        }
        scene = type(scene)(**{**scene.__dict__, "assets": absolute})
        out |= {c.chip.key.split("_")[-3] + "_" + "_".join(c.chip.key.split("_")[-2:]) + "@" + scene.datetime.isoformat(): c.image
                for c in read_scene_chips(scene, plan_scene(scene, query.bbox))}  # fmt: skip
    return out


def _sh_chips(scenes, query: SearchQuery) -> dict[str, np.ndarray]:
    out = {}
    for scene in scenes:
        for c in read_scene_chips(scene, plan_scene(scene, query.bbox)):
            out[
                c.chip.key.split("_")[-3]
                + "_"
                + "_".join(c.chip.key.split("_")[-2:])
                + "@"
                + scene.datetime.isoformat()
            ] = c.image
    return out


@pytest.mark.parametrize(
    ("collection", "aoi"),
    [("sentinel-2-l2a", "veneto"), ("sentinel-2-l2a", "portugal"), ("sentinel-1-grd", "veneto")],
)  # portugal: processing baseline 04.00, offset harmonized by the service (harmonizeValues)
def test_catalog_search_and_process_match_the_cogs(
    sentinel_hub, tiny_archive, tmp_path, collection, aoi
):
    url, state = sentinel_hub
    query = _query(tiny_archive, collection, aoi)
    result = SentinelHubSource(_settings(url, tmp_path)).search_result(query)
    assert len(result.scenes) == 2 and not result.skipped
    pages = [s for p, s in state.log if p.endswith("/search")]
    assert pages == [200, 200]  # page_size 1: the second scene came through `next`
    sh, cog = _sh_chips(result.scenes, query), _cog_chips(tiny_archive, query)
    assert len(sh) >= 4 and sh.keys() <= cog.keys()
    for key, image in sh.items():
        np.testing.assert_array_equal(image, cog[key], err_msg=key)
    assert [p for p, s in state.log if p == "/api/v1/process"] == [
        "/api/v1/process"
    ] * 2  # one render per scene
    record = json.dumps([s.to_record() for s in result.scenes])
    assert CLIENT_SECRET not in record and "tok-" not in record  # secrets never recorded


def test_renders_are_cached(sentinel_hub, tiny_archive, tmp_path):
    url, state = sentinel_hub
    query = _query(tiny_archive, "sentinel-1-grd")
    scenes = SentinelHubSource(_settings(url, tmp_path)).search_result(query).scenes
    _sh_chips(scenes, query)
    _sh_chips(scenes, query)
    assert sum(p == "/api/v1/process" for p, _ in state.log) == 2


def test_wrong_credentials_fail_clearly(sentinel_hub, tiny_archive, tmp_path, monkeypatch):
    url, _ = sentinel_hub
    monkeypatch.setenv("SH_CLIENT_SECRET", "wrong")
    with pytest.raises(Exception, match=r"401|invalid_client|Unauthorized"):
        SentinelHubSource(_settings(url, tmp_path)).search_result(
            _query(tiny_archive, "sentinel-2-l2a")
        )


def test_missing_credentials_name_the_variables(tmp_path, monkeypatch):
    monkeypatch.delenv("SH_CLIENT_ID", raising=False)
    settings = ApiSettings(url="http://127.0.0.1:9", client_id_env="SH_CLIENT_ID")
    with pytest.raises(ConfigError, match="SH_CLIENT_ID"):
        SentinelHubSource(settings).search_result(
            SearchQuery(
                ("sentinel-2-l2a",),
                datetime.fromisoformat("2021-01-01T00:00:00+00:00"),
                datetime.fromisoformat("2021-02-01T00:00:00+00:00"),
            )
        )


def test_the_mock_rejects_bodies_the_real_api_rejects():
    good = {"input": {"bounds": {"bbox": [0, 0, 10, 10], "properties": {"crs": "http://www.opengis.net/def/crs/EPSG/0/32632"}},
                      "data": [{"type": "sentinel-1-grd", "dataFilter": {"timeRange": {"from": "a", "to": "b"}}}]},
            "output": {"resx": 10, "resy": 10, "responses": [{"identifier": "default", "format": {"type": "image/tiff"}}]},
            "evalscript": '//VERSION=3\nfunction setup() { return {input: [{bands: ["VV", "VH"]}]}; }'}  # fmt: skip
    assert _validate_process(good) is None
    assert "crs" in _validate_process(
        {**good, "input": {**good["input"], "bounds": {"bbox": [0, 0, 1, 1]}}}
    )
    assert "evalscript" in _validate_process(
        {**good, "evalscript": good["evalscript"].replace('"VH"', '"HH"')}
    )


def test_rendered_bands_are_pinned_by_their_process_request(sentinel_hub, tiny_archive, tmp_path):
    """A Sentinel Hub band has no stored bytes: corpus.lock pins the process request (grid,
    time, collection, evalscript); a different request is drift, a missing one unverifiable."""
    import dataclasses

    import jsonschema

    from pipeline.corpus.drift import _compare
    from pipeline.sources.access import fingerprint_href
    from pipeline.sources.fingerprint import UnverifiableAssetError, fingerprint

    url, _ = sentinel_hub
    query = _query(tiny_archive, "sentinel-1-grd")
    first, second = SentinelHubSource(_settings(url, tmp_path)).search_result(query).scenes
    href = first.assets["VV"].href
    pinned = fingerprint(fingerprint_href(first, href))
    assert pinned["rendered_by"] == "sentinelhub" and len(pinned["request_sha256"]) == 64
    assert pinned == fingerprint(fingerprint_href(first, first.assets["VH"].href))  # one render
    assert fingerprint(fingerprint_href(second, second.assets["VV"].href)) != pinned
    moved = dataclasses.replace(
        first, extra={**first.extra, "sentinelhub": {**first.extra["sentinelhub"], "epsg": 3035}}
    )
    now = fingerprint(fingerprint_href(moved, href))
    assert _compare("asset", first.item_id, "VV", pinned, pinned) == []
    assert _compare("asset", first.item_id, "VV", pinned, now)  # another grid: drift
    with pytest.raises(UnverifiableAssetError, match="process request"):
        fingerprint(href)  # without the scene nothing pins it
    entry = {"id": "x", "collection": "c", "datetime": "2022-01-01T00:00:00+00:00",
             "stamp": "s", "record_sha256": "0" * 64, "assets": {"VV": {"href": href, **pinned}}}  # fmt: skip
    schema = json.loads((Path(__file__).parents[2] / "schemas" / "lock.v1.schema.json").read_text())
    item = jsonschema.Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/item"})
    assert not list(item.iter_errors(entry))
    assert list(item.iter_errors({**entry, "assets": {"VV": {"href": href, "missing": 1}}}))
