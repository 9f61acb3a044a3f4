"""Windowed chip reads from (cloud-optimized) GeoTIFFs, local or over HTTP.

Each band is read in strips aligned to the file's internal block rows, so every
COG tile is fetched and decoded once for all the chips it covers, and memory stays
bounded by one block row plus one chip row per band. Chips stream out north to south.

Conversions (``pipeline.chips.convert``, per each band's contract): S2 L2A digital numbers
become reflectance x 10000 harmonized to the pre-04.00 scale (the ``BOA_ADD_OFFSET`` of -1000
is removed for processing baseline >= 04.00) and 20/60 m bands are brought to 10 m by pixel
replication; S1 backscatter (linear power, linear amplitude or dB) becomes dB.

Remote reads follow the source's ``RetryPolicy`` (``source.retry``): GDAL retries 429/5xx,
resets and timeouts of each request itself (``gdal_env``); an open or a strip read that
still fails, or whose body was cut short, is retried on a fresh, uncached handle through
the project's retry layer (``pipeline.sources.retry``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from pipeline.chips.convert import (  # noqa: F401 (re-exported: the reader's conventions)
    S1_DB_FLOOR,
    S2_BOA_ADD_OFFSET,
    SCL_CLOUDY,
    has_boa_offset,
    s1_channels,
    s1_image,
    s2_image,
)
from pipeline.chips.grid import ChipGeometry
from pipeline.chips.integrity import gdal_warnings, verify_deflate_tiles
from pipeline.chips.plan import PlannedChip
from pipeline.errors import ChipReadError, SourceError
from pipeline.sources.access import gdal_options, open_asset
from pipeline.sources.base import Scene
from pipeline.sources.redact import error_text, redact
from pipeline.sources.retry import TransientError, call_with_retries
from pipeline.sources.settings import RetryPolicy

_HTTP_STATUS = re.compile(r"HTTP response code: (\d{3})")


def gdal_env(retry: RetryPolicy) -> dict[str, str]:
    """GDAL configuration of chip reads; /vsicurl requests retried under ``retry``."""
    return {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff",
        "GDAL_HTTP_MAX_RETRY": str(retry.max_attempts - 1),
        "GDAL_HTTP_RETRY_DELAY": str(retry.backoff_s),
        "GDAL_HTTP_RETRY_CODES": ",".join(str(code) for code in retry.statuses),
        # like the requests' timeout: to connect, and of silence (< 1 B/s), not of a transfer
        "GDAL_HTTP_CONNECTTIMEOUT": str(retry.timeout_s),
        "GDAL_HTTP_LOW_SPEED_TIME": str(max(1, math.ceil(retry.timeout_s))),
        "GDAL_HTTP_LOW_SPEED_LIMIT": "1",
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        "VSI_CACHE": "FALSE",
    }


@dataclass(frozen=True)
class ChipPixels:
    """One chip's pixels, converted, with its quality measures."""

    chip: PlannedChip
    image: np.ndarray  # (bands, 120, 120) float32: S2 reflectance x 10000, S1 dB
    nodata_fraction: float
    cloud_fraction: float


def read_scene_chips(
    scene: Scene, chips: Sequence[PlannedChip], retry: RetryPolicy | None = None
) -> Iterator[ChipPixels]:
    """Stream the chips of one scene, north to south, each band read once per block;
    remote reads retried under ``retry`` (the source's policy; default ``RetryPolicy()``)."""
    retry = retry or RetryPolicy()
    ordered = sorted(chips, key=lambda c: (-c.cell.row, c.cell.col))
    bands = read_bands(scene)
    with rasterio.Env(**gdal_env(retry), **gdal_options(scene)), contextlib.ExitStack() as stack:
        readers = [_band_reader(stack, scene, band, ordered, retry) for band in bands]
        for chip in ordered:
            planes = [next(reader) for reader in readers]
            yield _to_chip_pixels(scene, chip, bands, planes)


def _band_reader(
    stack: contextlib.ExitStack,
    scene: Scene,
    band: str,
    chips: Sequence[PlannedChip],
    retry: RetryPolicy,
) -> Iterator[np.ndarray]:
    href = redact(scene.assets[band].href)
    try:
        ds = _open_band(stack, scene, band, retry)
    except (rasterio.errors.RasterioIOError, SourceError) as exc:
        raise ChipReadError(
            f"scene {scene.item_id}: cannot open band {band} at {href}: {error_text(exc)}"
        ) from None
    if chips and not nests_in_chip_grid(ds, chips[0].cell, scene.epsg):
        with _naming(scene.item_id, band):  # the warp hides the tiles: check them all first
            verify_deflate_tiles(ds, Window(0, 0, ds.width, ds.height))
        ds = stack.enter_context(_aligned_vrt(ds, chips[0].cell, band))
    windows = [_window(ds.transform, chip.cell) for chip in chips]
    factor = round(ds.transform.a / chips[0].cell.pixel_size) if chips else 1
    frames = _checked_frames(scene.item_id, band, href, iter_windows(ds, windows, retry))
    return (np.repeat(np.repeat(a, factor, 0), factor, 1) for a in frames)


def _checked_frames(
    item_id: str, band: str, href: str, frames: Iterator[np.ndarray]
) -> Iterator[np.ndarray]:
    """``frames``, failing with a ``ChipReadError`` naming the scene, band and file on a read
    error, a corrupt tile or a GDAL warning during the read (never corrupt pixels)."""
    while True:
        with gdal_warnings() as warned, _naming(item_id, band):
            frame = next(frames, None)
        if warned:
            raise ChipReadError(
                f"scene {item_id}: band {band} at {href}: GDAL warned while decoding "
                f"({'; '.join(warned)}); the file is likely corrupt: fetch it again"
            )
        if frame is None:
            return
        yield frame


@contextlib.contextmanager
def _naming(item_id: str, band: str) -> Iterator[None]:
    """Re-raise a ``ChipReadError`` of the block naming the scene and band too."""
    try:
        yield
    except ChipReadError as exc:
        raise ChipReadError(f"scene {item_id}: band {band}: {exc}") from None


def _open_band(
    stack: contextlib.ExitStack, scene: Scene, band: str, retry: RetryPolicy
) -> rasterio.DatasetReader:
    """``open_asset``; a remote open failing for a transient reason (GDAL's own request
    retries spent, a header cut short) is tried again on a fresh, uncached handle."""
    href = scene.assets[band].href
    try:
        return stack.enter_context(open_asset(scene, band))
    except rasterio.errors.RasterioIOError as exc:
        if not _retryable(href, exc, retry):
            raise

    def attempt() -> rasterio.DatasetReader:
        try:
            with rasterio.Env(CPL_VSIL_CURL_NON_CACHED=_vsicurl(href)):
                return stack.enter_context(open_asset(scene, band))
        except rasterio.errors.RasterioIOError as exc:
            raise TransientError(redact(str(exc))) from exc

    return call_with_retries(_after_first(retry), f"open {redact(href)}", attempt)


def _retryable(url: str, exc: BaseException, retry: RetryPolicy) -> bool:
    """A remote failure that is not a permanent HTTP refusal (404, 403, ...)."""
    status = _HTTP_STATUS.search(str(exc))
    return "://" in url and (status is None or int(status.group(1)) in retry.statuses)


def _after_first(retry: RetryPolicy) -> RetryPolicy:
    """The policy for the attempts left once the first (GDAL's own) has failed."""
    return dataclasses.replace(retry, max_attempts=max(1, retry.max_attempts - 1))


def nests_in_chip_grid(ds: rasterio.DatasetReader, cell: ChipGeometry, epsg: int) -> bool:
    """True when the band's pixels nest exactly in the chip grid (no resampling needed)."""
    t = ds.transform
    if ds.crs is None or ds.crs.to_epsg() != epsg or t.b or t.d or not math.isclose(-t.e, t.a):
        return False
    ratio = t.a / cell.pixel_size
    if ratio < 1 or not math.isclose(ratio, round(ratio)) or not _is_multiple(cell.size_m, t.a):
        return False
    return _is_multiple(t.c, t.a) and _is_multiple(t.f, t.a)


def _is_multiple(value: float, step: float) -> bool:
    return math.isclose(round(value / step) * step, value, abs_tol=1e-6)


@contextlib.contextmanager
def _aligned_vrt(ds: rasterio.DatasetReader, cell: ChipGeometry, band: str) -> Iterator[WarpedVRT]:
    """Warp a band onto the 10 m chip grid (other CRS, odd origin or odd pixel size)."""
    res = cell.pixel_size
    left, bottom, right, top = transform_bounds(ds.crs, f"EPSG:{cell.epsg}", *ds.bounds)
    x0, y1 = math.floor(left / res) * res, math.ceil(top / res) * res
    resampling = Resampling.nearest if band == "SCL" else Resampling.bilinear
    with WarpedVRT(
        ds,
        crs=f"EPSG:{cell.epsg}",
        transform=Affine(res, 0, x0, 0, -res, y1),
        width=math.ceil((right - x0) / res),
        height=math.ceil((y1 - bottom) / res),
        resampling=resampling,
    ) as vrt:
        yield vrt


def _window(transform: Affine, cell: ChipGeometry) -> Window:
    minx, _, maxx, maxy = cell.bounds
    col = round((minx - transform.c) / transform.a)
    row = round((transform.f - maxy) / -transform.e)
    size = round((maxx - minx) / transform.a)
    return Window(col, row, size, size)


def iter_windows(
    ds: rasterio.DatasetReader, windows: Sequence[Window], retry: RetryPolicy | None = None
) -> Iterator[np.ndarray]:
    """Yield band 1 of each window (all the same size, sorted by row) reading block-row strips.

    Rows are read once, in strips aligned to the dataset's block rows and spanning the
    columns of all windows; a window is cut out as soon as its last row is in memory.
    """
    if not windows:
        return
    block_h = ds.block_shapes[0][0]
    col0 = min(w.col_off for w in windows)
    col1 = max(w.col_off + w.width for w in windows)
    first, last = windows[0].row_off, max(w.row_off + w.height for w in windows)
    _check_inside(ds, col0, col1, first, last)
    pending = deque(windows)
    buf, buf_row0 = np.empty((0, col1 - col0), dtype=ds.dtypes[0]), first
    for strip in range((first // block_h) * block_h, last, block_h):
        r0, r1 = max(strip, first), min(strip + block_h, last)
        part = _verified_rows(ds, Window(col0, r0, col1 - col0, r1 - r0), retry)
        buf = np.concatenate([buf, part])
        while pending and pending[0].row_off + pending[0].height <= r1:
            w = pending.popleft()
            top, left = w.row_off - buf_row0, w.col_off - col0
            yield buf[top : top + w.height, left : left + w.width].copy()
        keep_from = pending[0].row_off if pending else r1
        buf, buf_row0 = buf[keep_from - buf_row0 :], keep_from


def _verified_rows(ds: rasterio.DatasetReader, window: Window, retry: RetryPolicy | None) -> Any:
    """``read_rows`` with the DEFLATE tiles it used checked. A remote file failing the check
    is read and checked again on fresh, uncached handles under ``retry``: GDAL may have kept a
    body cut short in its cache (the read itself then succeeded on a fresh handle); a corrupt
    file fails every attempt."""
    retry = retry or RetryPolicy()
    part = read_rows(ds, window, retry)
    try:
        verify_deflate_tiles(ds, window)
    except ChipReadError as exc:
        url = str(ds.name)
        if not _retryable(url, exc, retry):
            raise
        try:
            what = f"checked read {redact(url)}"
            return call_with_retries(
                _after_first(retry), what, lambda: _fresh_verified(url, window)
            )
        except SourceError as err:
            raise ChipReadError(f"{redact(url)}: {error_text(err.__cause__ or err)}") from None
    return part


def _fresh_verified(url: str, window: Window) -> Any:
    try:
        with rasterio.Env(CPL_VSIL_CURL_NON_CACHED=_vsicurl(url)), rasterio.open(url) as fresh:
            part = fresh.read(1, window=window)
            verify_deflate_tiles(fresh, window)
            return part
    except (rasterio.errors.RasterioIOError, ChipReadError) as exc:
        raise TransientError(redact(str(exc))) from exc


def read_rows(
    ds: rasterio.DatasetReader, window: Window, retry: RetryPolicy | None = None
) -> np.ndarray:
    """Band 1 of ``window``. GDAL retries HTTP 429/5xx, resets and timeouts itself but not a
    body cut short (and may keep it in its cache), so a failed remote read is retried on a
    fresh, uncached handle of the same file under ``retry``; ``ChipReadError`` (naming the
    file without its query string) when the attempts run out."""
    retry = retry or RetryPolicy()
    try:
        return ds.read(1, window=window)
    except rasterio.errors.RasterioIOError as exc:
        error: BaseException = exc
    url = str(ds.name)
    if _retryable(url, error, retry):  # local files and warped views are not retried
        try:
            return call_with_retries(
                _after_first(retry), f"read {redact(url)}", lambda: _fresh_read(url, window)
            )
        except SourceError as exc:
            error = exc.__cause__ or exc
    raise ChipReadError(
        f"{redact(url)}: rows {window.row_off}-{window.row_off + window.height} unreadable "
        f"after {retry.max_attempts} attempts: {error_text(error)}"
    ) from None


def _fresh_read(url: str, window: Window) -> np.ndarray:
    try:
        with rasterio.Env(CPL_VSIL_CURL_NON_CACHED=_vsicurl(url)), rasterio.open(url) as fresh:
            return fresh.read(1, window=window)
    except rasterio.errors.RasterioIOError as exc:
        raise TransientError(redact(str(exc))) from exc


def _vsicurl(url: str) -> str:
    return url if url.startswith("/vsi") else f"/vsicurl/{url}"


def _check_inside(ds: rasterio.DatasetReader, col0: int, col1: int, row0: int, row1: int) -> None:
    if col0 < 0 or row0 < 0 or col1 > ds.width or row1 > ds.height:
        raise ChipReadError(
            f"{redact(ds.name)}: chip windows (cols {col0}-{col1}, rows {row0}-{row1}) exceed the raster "
            f"({ds.width} x {ds.height}); the item's proj:shape/proj:transform disagree with the file"
        )


def _to_chip_pixels(
    scene: Scene, chip: PlannedChip, bands: list[str], planes: list[np.ndarray]
) -> ChipPixels:
    if scene.sensor == "s1":
        image, nodata = s1_image(scene, dict(zip(bands, planes, strict=True)))
        return ChipPixels(chip, image, nodata, 0.0)
    n = len(scene.bands)
    scl = planes[n] if len(planes) > n else np.full_like(planes[0], 4, dtype=np.uint8)
    image, nodata, cloud = s2_image(scene, planes[:n], scl)
    return ChipPixels(chip, image, nodata, cloud)


def read_bands(scene: Scene) -> list[str]:
    """The assets a scene's chips are cut from: S2 bands (+ SCL), the S1 bands its channels
    read (a channel the polarisation policy fills reads none)."""
    if scene.sensor == "s1":
        return [band for band in s1_channels(scene).values() if band is not None]
    return list(scene.bands) + (["SCL"] if "SCL" in scene.assets else [])
