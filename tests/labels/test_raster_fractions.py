"""Area-weighted class fractions of categorical rasters over chip squares."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer

from pipeline.chips.grid import ChipGeometry
from pipeline.errors import ChipReadError, ConfigError
from pipeline.labels.raster_fractions import fractions_from_raster

CHIP = ChipGeometry(32632, col=10, row=20)  # bounds (12000, 24000, 13200, 25200)


def from_origin(west: float, north: float, xsize: float, ysize: float) -> Affine:
    return Affine(xsize, 0.0, west, 0.0, -ysize, north)


def write_tif(path: Path, data: np.ndarray, transform, epsg: int, nodata=None) -> str:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype,
        crs=f"EPSG:{epsg}",
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(data, 1)
    return str(path)


@pytest.fixture
def offset_raster(tmp_path: Path) -> str:
    """100 m pixels, grid shifted 50 m west and 50 m north of the chip grid.

    Columns 0-5 are class 1, columns 6-13 class 2, row 0 is nodata (255) and
    pixel (row 5, col 3) is class 3.
    """
    data = np.full((14, 14), 2, dtype=np.uint8)
    data[:, :6] = 1
    data[0, :] = 255
    data[5, 3] = 3
    return write_tif(tmp_path / "offset.tif", data, from_origin(11950, 25250, 100, 100), 32632)


def hand_fractions() -> tuple[dict[int, float], float]:
    # Chip x-extent 1200 m: col 0 overlaps 50 m, cols 1-11 100 m, col 12 50 m (same in y).
    # Class 1: cols 0-5 -> 50 + 500 = 550 m wide; class 2: cols 6-12 -> 600 + 50 = 650 m.
    # Row 0 (nodata) covers the top 50 m, so valid height is 1150 m.
    # Pixel (5, 3) is a full 100 x 100 m square inside the class-1 columns.
    area = 1200.0 * 1200.0
    return {
        1: (550 * 1150 - 100 * 100) / area,
        2: 650 * 1150 / area,
        3: 100 * 100 / area,
    }, 50 * 1200 / area


@pytest.mark.parametrize("method", ["auto", "exact", "warp"])
def test_offset_grid_matches_hand_computation(offset_raster: str, method: str) -> None:
    fractions, nodata = fractions_from_raster(
        offset_raster, CHIP, nodata_values=[255], method=method
    )
    expected, expected_nodata = hand_fractions()
    assert fractions.keys() == expected.keys()
    for value, frac in expected.items():
        assert fractions[value] == pytest.approx(frac, abs=1e-9)
    assert nodata == pytest.approx(expected_nodata, abs=1e-9)
    assert sum(fractions.values()) + nodata == pytest.approx(1.0)


def test_value_map_renames_and_drops_unmapped(offset_raster: str) -> None:
    fractions, nodata = fractions_from_raster(
        offset_raster, CHIP, nodata_values=[255], value_map={1: 100, 2: 100}
    )
    expected, expected_nodata = hand_fractions()
    assert fractions == {100: pytest.approx(expected[1] + expected[2])}
    assert nodata == pytest.approx(expected_nodata + expected[3])


def test_dataset_nodata_is_honoured(tmp_path: Path) -> None:
    data = np.zeros((12, 12), dtype=np.uint8)
    data[:, 6:] = 7
    href = write_tif(tmp_path / "nd.tif", data, from_origin(12000, 25200, 100, 100), 32632, 0)
    fractions, nodata = fractions_from_raster(href, CHIP)
    assert fractions == {7: pytest.approx(0.5)}
    assert nodata == pytest.approx(0.5)


def test_chip_partly_outside_raster(tmp_path: Path) -> None:
    data = np.full((12, 6), 4, dtype=np.uint8)  # covers x 12000-12600 only
    href = write_tif(tmp_path / "half.tif", data, from_origin(12000, 25200, 100, 100), 32632)
    for method in ("exact", "warp"):
        fractions, nodata = fractions_from_raster(href, CHIP, method=method)
        assert fractions == {4: pytest.approx(0.5)}
        assert nodata == pytest.approx(0.5)


def test_chip_fully_outside_raster(tmp_path: Path) -> None:
    data = np.full((4, 4), 4, dtype=np.uint8)
    href = write_tif(tmp_path / "far.tif", data, from_origin(50000, 90000, 100, 100), 32632)
    for method in ("exact", "warp"):
        assert fractions_from_raster(href, CHIP, method=method) == ({}, 1.0)


def _expected_by_polygons(data, transform, src_epsg: int, chip: ChipGeometry) -> dict[int, float]:
    """Independent check: each source pixel as a densified polygon projected to the chip CRS."""
    tr = Transformer.from_crs(src_epsg, chip.epsg, always_xy=True)

    def to_chip(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(tr.transform(xy[:, 0], xy[:, 1]))

    square = shapely.box(*chip.bounds)
    out: dict[int, float] = {}
    for row in range(data.shape[0]):
        for col in range(data.shape[1]):
            x0, y0 = transform @ (col, row)
            x1, y1 = transform @ (col + 1, row + 1)
            pixel = shapely.segmentize(shapely.box(x0, y1, x1, y0), 10.0)
            area = shapely.transform(pixel, to_chip).intersection(square).area
            if area > 0:
                value = int(data[row, col])
                out[value] = out.get(value, 0.0) + area / square.area
    return out


def test_different_crs_against_projected_pixel_polygons(tmp_path: Path) -> None:
    chip = ChipGeometry(32632, col=547, row=4191)  # near Verona, UTM 32N
    to_laea = Transformer.from_crs(32632, 3035, always_xy=True)
    xs, ys = to_laea.transform([chip.bounds[0], chip.bounds[2]], [chip.bounds[1], chip.bounds[3]])
    x0 = np.floor(min(xs) / 100) * 100 - 300
    y0 = np.ceil(max(ys) / 100) * 100 + 300
    rows, cols = np.mgrid[0:20, 0:20]
    data = ((cols // 3 + rows // 2) % 3 + 1).astype(np.uint8)
    transform = from_origin(x0, y0, 100, 100)
    href = write_tif(tmp_path / "laea.tif", data, transform, 3035)
    fractions, nodata = fractions_from_raster(href, chip)
    expected = _expected_by_polygons(data, transform, 3035, chip)
    assert nodata == pytest.approx(0.0, abs=1e-9)
    assert fractions.keys() == expected.keys()
    for value, frac in expected.items():
        assert fractions[value] == pytest.approx(frac, abs=0.002)


def test_exact_method_refuses_other_crs(tmp_path: Path) -> None:
    data = np.ones((4, 4), dtype=np.uint8)
    href = write_tif(tmp_path / "laea.tif", data, from_origin(0, 0, 100, 100), 3035)
    with pytest.raises(ConfigError, match="exact"):
        fractions_from_raster(href, CHIP, method="exact")


def test_missing_file_raises_with_href(tmp_path: Path) -> None:
    with pytest.raises(ChipReadError, match=r"nope\.tif"):
        fractions_from_raster(str(tmp_path / "nope.tif"), CHIP)


_RANGE_SERVER = """
import http.server, re, sys
from pathlib import Path

class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        match = re.match(r"bytes=(\\d+)-(\\d*)", self.headers.get("Range", ""))
        if match:
            start = int(match[1])
            end = min(int(match[2] or len(body) - 1), len(body) - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
            body = body[start : end + 1]
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

server = http.server.ThreadingHTTPServer(
    ("127.0.0.1", 0), lambda *a: Handler(*a, directory=sys.argv[1])
)
print(server.server_port, flush=True)
server.serve_forever()
"""


@pytest.fixture
def range_server(tmp_path: Path):
    """A static file server with HTTP Range support (GDAL /vsicurl/), in its own process."""
    script = tmp_path / "range_server.py"
    script.write_text(_RANGE_SERVER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_http_url(offset_raster: str, range_server: str) -> None:
    url = f"{range_server}/{Path(offset_raster).name}"
    fractions, nodata = fractions_from_raster(url, CHIP, nodata_values=[255])
    expected, expected_nodata = hand_fractions()
    assert fractions == {k: pytest.approx(v) for k, v in expected.items()}
    assert nodata == pytest.approx(expected_nodata)
