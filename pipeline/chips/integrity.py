"""Corrupt tiles that GDAL decodes without failing the read.

GDAL fails a read (``RasterioIOError``) when a garbled tile no longer decodes: LERC and
LZMA tiles always (they carry checksums), DEFLATE, LZW and ZSTD tiles when the damage
breaks the stream. Much damage still decodes, measured with GDAL 3.10 / libtiff 4.7:

- DEFLATE: libtiff stops inflating once it has a tile's worth of bytes, before the
  stream's adler-32, so a tile whose garbled codes still inflate is returned as wrong
  pixels (or as nodata, when they turn S1 backscatter negative).
  ``verify_deflate_tiles`` re-inflates the raw bytes of every tile a read used and checks
  the adler-32. The bytes come through GDAL's own file layer (a raw VRT over the same
  path), so a remote tile is served from GDAL's ``/vsicurl/`` cache, not downloaded twice.
- JPEG: libjpeg often only warns ("Corrupt JPEG data"); ``gdal_warnings`` collects the
  GDAL warnings a read raises so the caller fails it (all but GDAL's notices that it is
  retrying an HTTP request: transport, not content; a request that keeps failing errors).
- LZW, ZSTD (libtiff writes no frame checksum), PackBits and uncompressed tiles carry no
  checksum: damage that still decodes cannot be told from real pixels. Not detected.
"""

from __future__ import annotations

import contextlib
import html
import logging
import math
import re
import threading
import warnings
import zlib
from collections.abc import Iterator
from typing import Any

import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from pipeline.errors import ChipReadError
from pipeline.sources.redact import GDAL_LOGGERS, error_text, redact

RAW_VRT_ENV = {"GDAL_VRT_ENABLE_RAWRASTERBAND": "YES"}
_HTTP_RETRY_NOTICE = re.compile(r"Retrying again in [0-9.]+ secs")


def verify_deflate_tiles(ds: Any, window: Window) -> None:
    """Check the adler-32 of every DEFLATE tile of band 1 that ``window`` covers (the caller
    retries a remote file on fresh handles: ``chips.read._verified_rows``)."""
    if ds.tags(ns="IMAGE_STRUCTURE").get("COMPRESSION") != "DEFLATE" or not ds.files:
        return
    block_h, block_w = ds.block_shapes[0]
    rows = range(int(window.row_off) // block_h, math.ceil(_end(window, "row") / block_h))
    cols = range(int(window.col_off) // block_w, math.ceil(_end(window, "col") / block_w))
    for row in rows:
        for col in cols:
            offset = int(ds.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=1) or 0)
            size = int(ds.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=1) or 0)
            if size and not _inflates(_raw_bytes(ds.files[0], offset, size)):
                raise ChipReadError(
                    f"{redact(ds.name)}: tile (col {col}, row {row}) fails its DEFLATE checksum; "
                    "the file is corrupt: fetch it again from the provider"
                )


def _end(window: Window, axis: str) -> int:
    if axis == "row":
        return int(window.row_off + window.height)
    return int(window.col_off + window.width)


def _inflates(raw: bytes) -> bool:
    """True when ``raw`` is one complete zlib stream whose adler-32 matches."""
    inflater = zlib.decompressobj()
    try:
        inflater.decompress(raw)
        inflater.flush()
    except zlib.error:
        return False
    return inflater.eof


def _raw_bytes(path: str, offset: int, size: int) -> bytes:
    """``size`` bytes of ``path`` from ``offset``, read by GDAL (its caches, its HTTP)."""
    xml = (
        f'<VRTDataset rasterXSize="{size}" rasterYSize="1">'
        '<VRTRasterBand dataType="Byte" band="1" subClass="VRTRawRasterBand">'
        f'<SourceFilename relativetoVRT="0">{html.escape(path)}</SourceFilename>'
        f"<ImageOffset>{offset}</ImageOffset><PixelOffset>1</PixelOffset>"
        f"<LineOffset>{size}</LineOffset></VRTRasterBand></VRTDataset>"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            with rasterio.Env(**RAW_VRT_ENV), rasterio.open(xml) as raw:
                return bytes(raw.read(1)[0].tobytes())
        except RasterioIOError as exc:
            raise ChipReadError(
                f"{redact(path)}: bytes {offset}-{offset + size} unreadable: {error_text(exc)}"
            ) from None


class _Collector(logging.Handler):
    def __init__(self, thread: int, found: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.thread, self.found = thread, found

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.thread == self.thread and not _HTTP_RETRY_NOTICE.search(message):
            self.found.append(redact(message))


@contextlib.contextmanager
def gdal_warnings() -> Iterator[list[str]]:
    """The GDAL warnings (CE_Warning, logged by rasterio) this thread raises in the block."""
    found: list[str] = []
    collector = _Collector(threading.get_ident(), found)
    loggers = [logging.getLogger(name) for name in GDAL_LOGGERS]
    for logger in loggers:
        logger.addHandler(collector)
    try:
        yield found
    finally:
        for logger in loggers:
            logger.removeHandler(collector)
