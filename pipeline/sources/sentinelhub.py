"""The Sentinel Hub source (Sentinel Hub or Copernicus Data Space processing API), through
the ``sentinelhub`` package.

Search: the Catalog API (STAC items, paged with ``next``) per collection. Each scene
record's band hrefs are ``sentinelhub://<collection>/<item id>/<band>`` and its
``extra["sentinelhub"]`` holds the process request to make (service URL, token URL, the
UTM grid snapped to the 1.2 km chip grid, time range, env var NAMES of the credentials).
Read: the first band read renders the scene through the Process API (evalscripts returning
the 12 L2A bands as digital numbers, reflectance x 10000 with the baseline offset
harmonized by ``harmonizeValues``, plus SCL; or S1 GRD VV/VH linear sigma0, orthorectified)
into per-band GeoTIFFs in the cache directory, which the chip reader then reads like COGs.

OAuth client credentials come from the environment (``source.client_id_env`` /
``source.client_secret_env``, default ``SH_CLIENT_ID`` / ``SH_CLIENT_SECRET``); the service
and token URLs from the run config, so the same code runs against Sentinel Hub, CDSE or a
loopback stand-in.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pyproj import Transformer

from pipeline.errors import ConfigError, SourceError
from pipeline.sources.base import (
    S1_BANDS,
    S2_BANDS,
    BandAsset,
    Scene,
    SearchQuery,
    SearchResult,
    SkippedItem,
)
from pipeline.sources.redact import redact
from pipeline.sources.settings import ApiSettings

SH_COLLECTIONS = {"sentinel-2-l2a": "s2", "sentinel-1-grd": "s1"}
CHIP_M = 1200.0  # renders are snapped to the chip grid (pipeline.chips.grid)
RES_M = 10.0
MAX_PIXELS = 2500  # the Process API's limit per side
DEFAULT_TOKEN_PATH = "/auth/realms/CDSE/protocol/openid-connect/token"

EVALSCRIPT_S2 = """//VERSION=3
function setup() {
  return {
    input: [{bands: ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09",
                     "B11", "B12", "SCL"], units: "DN"}],
    output: {bands: 13, sampleType: "UINT16"}
  };
}
function evaluatePixel(s) {
  return [s.B01, s.B02, s.B03, s.B04, s.B05, s.B06, s.B07, s.B08, s.B8A, s.B09,
          s.B11, s.B12, s.SCL];
}
"""
EVALSCRIPT_S1 = """//VERSION=3
function setup() {
  return {input: [{bands: ["VV", "VH"]}], output: {bands: 2, sampleType: "FLOAT32"}};
}
function evaluatePixel(s) {
  return [s.VV, s.VH];
}
"""
BANDS_OUT = {"s2": (*S2_BANDS, "SCL"), "s1": S1_BANDS}


@dataclass(frozen=True)
class SentinelHubSource:
    settings: ApiSettings
    name: str = "sentinelhub"

    def search(self, query: SearchQuery) -> Iterator[Scene]:
        yield from self.search_result(query).scenes

    def search_result(self, query: SearchQuery) -> SearchResult:
        scenes, skipped = [], []
        for collection in query.collections:
            for item in self._catalog(collection, query):
                try:
                    scenes.append(scene_from_catalog(item, collection, query, self.settings))
                except SourceError as exc:
                    skipped.append(SkippedItem(str(item.get("id")), collection, str(exc)))
        scenes.sort(key=lambda s: (s.datetime, s.item_id))
        return SearchResult(tuple(scenes), tuple(skipped))

    def _catalog(self, collection: str, query: SearchQuery) -> list[dict[str, Any]]:
        from sentinelhub import CRS, BBox, SentinelHubCatalog
        from sentinelhub.exceptions import DownloadFailedException

        if collection not in SH_COLLECTIONS:
            raise ConfigError(
                f"collection {collection!r}: Sentinel Hub supports {list(SH_COLLECTIONS)}"
            )
        bbox = BBox(query.bbox or (-180.0, -90.0, 180.0, 90.0), crs=CRS.WGS84)
        catalog = SentinelHubCatalog(config=sh_config(self.settings))
        try:
            found = catalog.search(
                data_collection(collection, str(self.settings.url)),
                bbox=bbox,
                time=(query.start, query.end),
                limit=self.settings.page_size or 100,
            )
            return list(found)  # all pages (the iterator follows `next` until the end)
        except DownloadFailedException as exc:
            raise SourceError(
                f"Sentinel Hub catalog search at {self.settings.url} failed: {exc}; check "
                "source.url, source.token_url and the client credentials in the environment"
            ) from exc


def sh_config(settings: ApiSettings) -> Any:
    """An ``SHConfig`` for the configured service; credentials read from the environment."""
    from sentinelhub import SHConfig

    client_id = os.environ.get(settings.client_id_env)
    secret = os.environ.get(settings.client_secret_env)
    if not client_id or not secret:
        raise ConfigError(
            f"Sentinel Hub credentials missing: set the environment variables "
            f"{settings.client_id_env} and {settings.client_secret_env} (OAuth client credentials)"
        )
    url = str(settings.url).rstrip("/")
    return SHConfig(
        sh_base_url=url,
        sh_token_url=settings.token_url or f"{url}{DEFAULT_TOKEN_PATH}",
        sh_client_id=client_id,
        sh_client_secret=secret,
        max_download_attempts=settings.retry.max_attempts,
        download_sleep_time=settings.retry.backoff_s,
        download_timeout_seconds=settings.retry.timeout_s,
        use_defaults=True,
    )


def data_collection(collection: str, service_url: str) -> Any:
    """The ``sentinelhub`` data collection, bound to the configured service URL."""
    from sentinelhub import DataCollection

    base = (
        DataCollection.SENTINEL2_L2A
        if collection == "sentinel-2-l2a"
        else DataCollection.SENTINEL1_IW
    )
    tag = hashlib.sha1(service_url.encode()).hexdigest()[:8]
    return base.define_from(f"CLM_{base.name}_{tag}", service_url=service_url.rstrip("/"))


def scene_from_catalog(
    item: Mapping[str, Any], collection: str, query: SearchQuery, settings: ApiSettings
) -> Scene:
    """A catalog feature -> ``Scene`` whose bands are rendered on read (``materialize``)."""
    props = item["properties"]
    sensor = SH_COLLECTIONS[collection]
    when = datetime.fromisoformat(str(props["datetime"]).replace("Z", "+00:00"))
    epsg = int(props.get("proj:epsg") or utm_epsg(item["bbox"]))
    transform, shape = render_grid(item["bbox"], query.bbox, epsg)
    request = _request(collection, sensor, when, epsg, transform, shape, props, settings)
    assets = {
        b: BandAsset(f"sentinelhub://{collection}/{item['id']}/{b}", RES_M, shape, transform)
        for b in BANDS_OUT[sensor]
    }
    return Scene(
        item_id=item["id"],
        collection=collection,
        sensor=sensor,
        platform=str(props.get("platform", "")).lower(),
        datetime=when,
        epsg=epsg,
        bbox=tuple(item["bbox"]),
        geometry=item["geometry"],
        assets=assets,
        cloud_cover=props.get("eo:cloud_cover"),
        processing_baseline=props.get("s2:processing_baseline") or _baseline_of(item["id"], sensor),
        orbit_state=(props.get("sat:orbit_state") or None),
        relative_orbit=props.get("sat:relative_orbit"),
        polarizations=tuple(props.get("sar:polarizations", ())),
        instrument_mode=props.get("sar:instrument_mode"),
        extra={
            "provider": "sentinelhub",
            "product": "L2A" if sensor == "s2" else "GRD",
            "sentinelhub": request,
        },
        boa_offset_applied=sensor == "s2",  # harmonizeValues: the offset is already removed
    )


def _baseline_of(item_id: str, sensor: str) -> str | None:
    if sensor != "s2":
        return None
    for part in item_id.split("_"):
        if len(part) == 5 and part[0] == "N" and part[1:].isdigit():
            return f"{part[1:3]}.{part[3:]}"
    raise SourceError(f"S2 item {item_id!r} names no processing baseline (_Nxxxx_)")


def utm_epsg(bbox: Any) -> int:
    lon = (bbox[0] + bbox[2]) / 2
    lat = (bbox[1] + bbox[3]) / 2
    zone = min(60, int((lon + 180) // 6) + 1)
    return (32600 if lat >= 0 else 32700) + zone


def render_grid(
    item_bbox: Any, search_bbox: Any, epsg: int
) -> tuple[tuple[float, ...], tuple[int, int]]:
    """The 10 m grid, snapped outward to whole chip cells, covering item bbox ∩ search bbox."""
    lonlat = _intersection(item_bbox, search_bbox)
    to_utm = Transformer.from_crs(4326, epsg, always_xy=True)
    xs, ys = to_utm.transform(
        [lonlat[0], lonlat[2], lonlat[0], lonlat[2]], [lonlat[1], lonlat[1], lonlat[3], lonlat[3]]
    )
    x0, x1 = math.floor(min(xs) / CHIP_M) * CHIP_M, math.ceil(max(xs) / CHIP_M) * CHIP_M
    y0, y1 = math.floor(min(ys) / CHIP_M) * CHIP_M, math.ceil(max(ys) / CHIP_M) * CHIP_M
    shape = (round((y1 - y0) / RES_M), round((x1 - x0) / RES_M))
    if max(shape) > MAX_PIXELS:
        raise SourceError(
            f"render of {shape[1]} x {shape[0]} px exceeds the Process API limit of {MAX_PIXELS}; "
            "narrow search.bbox"
        )
    return (RES_M, 0.0, x0, 0.0, -RES_M, y1), shape


def _intersection(a: Any, b: Any) -> tuple[float, float, float, float]:
    if b is None:
        return (a[0], a[1], a[2], a[3])
    out = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    if out[0] >= out[2] or out[1] >= out[3]:
        raise SourceError("the item does not overlap search.bbox")
    return out


def _request(
    collection: str,
    sensor: str,
    when: datetime,
    epsg: int,
    transform: tuple[float, ...],
    shape: tuple[int, int],
    props: Mapping[str, Any],
    settings: ApiSettings,
) -> dict[str, Any]:
    """Everything ``materialize`` needs, no secrets (credentials stay env var names)."""
    x0, y1 = transform[2], transform[5]
    bbox = (x0, y1 - shape[0] * RES_M, x0 + shape[1] * RES_M, y1)
    return {
        "url": str(settings.url).rstrip("/"),
        "token_url": settings.token_url,
        "collection": collection,
        "time": [
            (when - timedelta(seconds=1)).isoformat(),
            (when + timedelta(seconds=1)).isoformat(),
        ],
        "epsg": epsg,
        "bbox": list(bbox),
        "orbit_state": props.get("sat:orbit_state"),
        "client_id_env": settings.client_id_env,
        "client_secret_env": settings.client_secret_env,
        "cache_dir": str(settings.cache_dir or Path(tempfile.gettempdir()) / "clm-sentinelhub"),
        "retry": [settings.retry.max_attempts, settings.retry.backoff_s, settings.retry.timeout_s],
    }


def materialize(scene: Scene, href: str) -> Path:
    """The local GeoTIFF of one band of ``scene``, rendering the scene first if needed."""
    spec = scene.extra["sentinelhub"]
    band = href.rsplit("/", 1)[1]
    folder = Path(spec["cache_dir"]) / request_key(spec)
    if not (folder / "complete").exists():
        with _locked(folder):
            if not (folder / "complete").exists():
                _render(scene, spec, folder)
    return folder / f"{band}.tif"


def render_digest(scene: Scene) -> str:
    """What pins a rendered band: the process request (service, collection, time, grid,
    orbit) and the evalscript, without credentials or local settings."""
    spec = scene.extra["sentinelhub"]
    keep = {k: v for k, v in spec.items() if k not in ("cache_dir", "retry")}
    keep["evalscript"] = EVALSCRIPT_S2 if scene.sensor == "s2" else EVALSCRIPT_S1
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()


def request_key(spec: Mapping[str, Any]) -> str:
    keep = {k: v for k, v in spec.items() if k not in ("cache_dir", "retry")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:24]


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _render(scene: Scene, spec: Mapping[str, Any], folder: Path) -> None:
    pixels = process(scene.sensor, spec)
    bands = BANDS_OUT[scene.sensor]
    if pixels.shape[-1] != len(bands):
        raise SourceError(
            f"Sentinel Hub returned {pixels.shape[-1]} bands for {scene.item_id}, expected {len(bands)}"
        )
    for i, band in enumerate(bands):
        _write_band(folder / f"{band}.tif", pixels[..., i], spec)
    (folder / "complete").write_text(scene.item_id)


def process(sensor: str, spec: Mapping[str, Any]) -> np.ndarray:
    """One Process API request: (rows, cols, bands) for the spec's grid and time range."""
    from sentinelhub import CRS, BBox, MimeType, SentinelHubRequest
    from sentinelhub.exceptions import DownloadFailedException

    settings = ApiSettings(
        url=spec["url"], token_url=spec["token_url"],
        client_id_env=spec["client_id_env"], client_secret_env=spec["client_secret_env"],
    )  # fmt: skip
    config = sh_config(settings)
    attempts, sleep_s, timeout_s = spec["retry"]
    config.max_download_attempts, config.download_sleep_time = attempts, sleep_s
    config.download_timeout_seconds = timeout_s
    request = SentinelHubRequest(
        evalscript=EVALSCRIPT_S2 if sensor == "s2" else EVALSCRIPT_S1,
        input_data=[_input(sensor, spec)],
        responses=[SentinelHubRequest.output_response("default", MimeType.TIFF)],
        bbox=BBox(spec["bbox"], crs=CRS(spec["epsg"])),
        resolution=(RES_M, RES_M),
        config=config,
    )
    try:
        (data,) = request.get_data()
    except DownloadFailedException as exc:
        raise SourceError(
            f"Sentinel Hub process request at {redact(spec['url'])} failed: {redact(str(exc))}"
        ) from exc
    return np.asarray(data).reshape(data.shape[0], data.shape[1], -1)


def _input(sensor: str, spec: Mapping[str, Any]) -> Any:
    from sentinelhub import MosaickingOrder, SentinelHubRequest

    collection = data_collection(spec["collection"], spec["url"])
    extra: dict[str, dict[str, Any]]
    if sensor == "s2":
        extra = {"processing": {"harmonizeValues": True}}
    else:
        extra = {"processing": {"backCoeff": "SIGMA0_ELLIPSOID", "orthorectify": True,
                                "demInstance": "COPERNICUS"}}  # fmt: skip
    return SentinelHubRequest.input_data(
        data_collection=collection,
        time_interval=tuple(spec["time"]),
        mosaicking_order=MosaickingOrder.LEAST_RECENT,
        other_args=extra,
    )


def _write_band(path: Path, plane: np.ndarray, spec: Mapping[str, Any]) -> None:
    import rasterio
    from affine import Affine

    x0, _, _, y1 = spec["bbox"]
    profile = {
        "driver": "GTiff", "height": plane.shape[0], "width": plane.shape[1], "count": 1,
        "dtype": plane.dtype.name, "crs": f"EPSG:{spec['epsg']}",
        "transform": Affine(RES_M, 0, x0, 0, -RES_M, y1), "tiled": True,
        "blockxsize": 256, "blockysize": 256, "compress": "deflate",
    }  # fmt: skip
    tmp = path.with_suffix(".tmp.tif")
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(plane, 1)
    tmp.replace(path)
