"""Garbled compressed tiles in a scene's COGs: a ``ChipReadError`` naming the scene, band and
file, never nodata or wrong pixels (where the codec makes corruption detectable at all).

Bytes are garbled inside one tile's compressed data, found through the TIFF TileOffsets /
TileByteCounts (GDAL's ``BLOCK_OFFSET_x_y`` / ``BLOCK_SIZE_x_y``), never in the header.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import shutil
import threading
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil

from pipeline.archive.serve import ServerStats, _RangeHandler, serve_directory
from pipeline.chips.plan import plan_scene
from pipeline.chips.read import read_scene_chips
from pipeline.errors import ChipReadError
from pipeline.sources.base import Scene, SearchQuery
from pipeline.sources.geoparquet import GeoParquetSource


def recompress(path: Path, compress: str, **options) -> None:
    """Rewrite a COG in place with another codec (same pixels, same tiling)."""
    tmp = path.with_suffix(".tmp.tif")
    with rasterio.open(path) as src:
        profile = {**src.profile, "driver": "COG", "compress": compress, "blocksize": 256}
        for key in ("predictor", "blockxsize", "blockysize", "tiled", "interleave"):
            profile.pop(key, None)
        with rasterio.open(tmp, "w", **profile, **options) as dst:
            dst.write(src.read())
    tmp.replace(path)


@pytest.fixture(scope="module")
def scenes(tiny_archive) -> dict[str, Scene]:
    source = GeoParquetSource(tiny_archive / "items.parquet")
    query = SearchQuery(
        ("sentinel-2-l2a", "sentinel-1-grd"),
        datetime(2020, 1, 1, tzinfo=UTC),
        datetime(2023, 12, 31, tzinfo=UTC),
    )
    found = list(source.search(query))
    return {sensor: next(s for s in found if s.sensor == sensor) for sensor in ("s1", "s2")}


def _copy_scene(scene: Scene, archive: Path, to: Path) -> Scene:
    folder = Path(scene.assets[scene.bands[0]].href).parent
    shutil.copytree(archive / folder, to / folder)
    assets = {b: dataclasses.replace(a, href=str(to / a.href)) for b, a in scene.assets.items()}
    return dataclasses.replace(scene, assets=assets)


def _over_http(scene: Scene, root: Path, url: str) -> Scene:
    assets = {
        b: dataclasses.replace(a, href=a.href.replace(str(root), url))
        for b, a in scene.assets.items()
    }
    return dataclasses.replace(scene, assets=assets)


def _read(scene: Scene) -> dict[str, np.ndarray]:
    return {c.chip.key: c.image for c in read_scene_chips(scene, plan_scene(scene))}


# DEFLATE is what the demo archive and real S2 L2A / S1 COGs use; GDAL alone returns wrong
# pixels for most of these positions (measured: libtiff never checks the adler-32).
@pytest.mark.parametrize("where", [0.02, 0.3, 0.5, 0.7, 0.98])
@pytest.mark.parametrize(
    ("sensor", "band"), [("s2", "B02"), ("s2", "B05"), ("s2", "SCL"), ("s1", "VV")]
)
def test_garbled_deflate_tile_fails_the_scene_naming_it(
    scenes, tiny_archive, tmp_path, garble_tile, sensor, band, where
):
    scene = _copy_scene(scenes[sensor], tiny_archive, tmp_path)
    garble_tile(Path(scene.assets[band].href), where)
    with pytest.raises(ChipReadError) as raised:
        _read(scene)
    message = str(raised.value)
    assert scene.item_id in message and f"band {band}" in message
    assert Path(scene.assets[band].href).name in message


def test_garbled_deflate_tile_is_caught_over_http_without_a_second_download(
    scenes, tiny_archive, tmp_path, garble_tile
):
    scene = _copy_scene(scenes["s2"], tiny_archive, tmp_path)
    good = _read(scene)
    with serve_directory(tmp_path) as server:
        assert _read(_over_http(scene, tmp_path, server.url)).keys() == good.keys()
        fetched = dict(server.stats.by_path)
    for band, asset in scene.assets.items():
        size = Path(asset.href).stat().st_size
        assert fetched[asset.href.replace(str(tmp_path), "")] <= size * 1.05, band
    garble_tile(Path(scene.assets["B03"].href), 0.5)
    with serve_directory(tmp_path) as server, pytest.raises(ChipReadError, match="B03"):
        _read(_over_http(scene, tmp_path, server.url))


@pytest.mark.parametrize(
    ("compress", "options"),
    [("ZSTD", {"predictor": 2}), ("LZW", {"predictor": 2}), ("LERC", {}), ("LZMA", {})],
)
def test_other_codecs_fail_where_the_damage_breaks_the_stream(
    scenes, tiny_archive, tmp_path, garble_tile, compress, options
):
    scene = _copy_scene(scenes["s2"], tiny_archive, tmp_path)
    path = Path(scene.assets["B02"].href)
    recompress(path, compress, **options)
    garble_tile(path, 0.98 if compress in ("ZSTD", "LZW") else 0.5)
    with pytest.raises(ChipReadError, match=f"band B02.*{path.name}"):
        _read(scene)


@pytest.mark.parametrize("compress", ["LZW", "ZSTD", "NONE"])
def test_codecs_without_checksums_can_hide_damage(
    scenes, tiny_archive, tmp_path, garble_tile, compress
):
    """The documented limit: LZW, ZSTD (no frame checksum) and raw tiles whose garbled bytes
    still decode give wrong pixels; nothing in the file tells them from real ones."""
    scene = _copy_scene(scenes["s2"], tiny_archive, tmp_path)
    path = Path(scene.assets["B02"].href)
    recompress(path, compress, **({} if compress == "NONE" else {"predictor": 2}))
    good, pristine = _read(scene), path.read_bytes()
    silent = 0
    for where in (0.1, 0.3, 0.5, 0.7):
        path.write_bytes(pristine)
        garble_tile(path, where)
        with contextlib.suppress(ChipReadError):
            damaged = _read(scene)
            silent += any(not np.array_equal(good[k], damaged[k]) for k in good)
    assert silent > 0


def test_a_gdal_warning_while_decoding_fails_the_read(scenes, tiny_archive, tmp_path, garble_tile):
    """libjpeg reports some damage only as a warning ("Corrupt JPEG data"): still an error."""
    scene = _copy_scene(scenes["s2"], tiny_archive, tmp_path)
    path = Path(scene.assets["B02"].href)
    with rasterio.open(path) as src:
        pixels = (src.read(1) // 64).astype("uint8")
        profile = {**src.profile, "driver": "COG", "dtype": "uint8", "compress": "JPEG"}
        profile.update(nodata=None, blocksize=256)
        for key in ("predictor", "blockxsize", "blockysize", "tiled", "interleave"):
            profile.pop(key, None)
    path.unlink()
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels, 1)
    garble_tile(path, 0.95, nbytes=64)
    with pytest.raises(ChipReadError, match=r"GDAL warned while decoding.*JPEG"):
        _read(scene)


def test_gdal_http_retries_during_reads_are_not_taken_for_corruption(
    scenes, tiny_archive, tmp_path
):
    """GDAL warns "HTTP error code: 503 ... Retrying again" when it retries a range read: a
    transient transport fault, not damage; the chips read must equal those read without."""
    scene = _copy_scene(scenes["s2"], tiny_archive, tmp_path)
    good = _read(scene)
    failed_once: set[str] = set()

    class Flaky(_RangeHandler):  # every file's first tile read (past the header) gets a 503
        stats = ServerStats()

        def do_GET(self) -> None:
            start = (self.headers.get("Range") or "bytes=0-").split("=")[1].split("-")[0]
            if int(start or 0) >= 16384 and self.path not in failed_once:
                failed_once.add(self.path)
                self.send_error(503, "try again")
            else:
                super().do_GET()

    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Flaky, directory=str(tmp_path))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        chips = _read(_over_http(scene, tmp_path, url))
    finally:
        server.shutdown()
        server.server_close()
    assert failed_once  # some strip reads were retried by GDAL
    assert all(np.array_equal(chips[k], good[k]) for k in good)
