"""``clm annotate`` end to end on 5,000 lon/lat chip footprints over the demo archive.

    python benchmarks/annotate_footprints.py ARCHIVE [--out annotate-bench.json] [--n 5000]

ARCHIVE is a demo archive (``clm archive simulate --out DIR --seed 0``). The footprints are
the lon/lat outlines of 1.2 km grid cells around each AOI of the archive (a 24 x 24 cell area
centred on the AOI's 10 x 10 labelled cells, so most cells are covered by its CORINE and
Dynamic World products and some only partly or not at all), with seeded random dates and
sensors, several per cell as a real chip set has. The command runs as a subprocess with the
demo recipe (``configs/demo.yaml``: CORINE, Dynamic World, the EMS events); the JSON holds
the wall time and the counts. Nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer

from pipeline.chips.grid import CHIP_SIZE_M

REPO = Path(__file__).resolve().parent.parent
AREA_CELLS = 24


def footprints(archive: Path, n: int, seed: int = 0) -> gpd.GeoDataFrame:
    """``n`` lon/lat footprints with ``datetime``, ``sensor`` and ``key``."""
    meta = json.loads((archive / "archive.json").read_text())
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    aois = meta["aois"]
    for i in range(n):
        aoi = aois[i % len(aois)]
        minx, miny, maxx, _ = aoi["bounds"]
        pad = (AREA_CELLS * CHIP_SIZE_M - (maxx - minx)) / 2
        col = int((minx - pad) // CHIP_SIZE_M) + int(rng.integers(AREA_CELLS))
        row = int((miny - pad) // CHIP_SIZE_M) + int(rng.integers(AREA_CELLS))
        day = np.datetime64("2021-06-01") + int(rng.integers(480))
        rows.append(
            {
                "key": f"bench-{i:05d}",
                "datetime": f"{day}T10:30:00Z",
                "sensor": ["Sentinel-1A", "sentinel-2", "S2B", "s1"][int(rng.integers(4))],
                "geometry": _outline(aoi["epsg"], col, row),
            }
        )
    return gpd.GeoDataFrame(rows, crs="EPSG:4326")


def _outline(epsg: int, col: int, row: int) -> Any:
    to_ll = Transformer.from_crs(epsg, 4326, always_xy=True)
    x0, y0 = col * CHIP_SIZE_M, row * CHIP_SIZE_M
    xs, ys = to_ll.transform(
        [x0, x0 + CHIP_SIZE_M, x0 + CHIP_SIZE_M, x0], [y0, y0, y0 + CHIP_SIZE_M, y0 + CHIP_SIZE_M]
    )
    return shapely.Polygon(zip(np.round(xs, 8), np.round(ys, 8), strict=True))


def run(archive: Path, n: int, folder: Path) -> dict[str, Any]:
    chips = folder / "footprints.gpkg"
    frame = footprints(archive, n)
    frame.to_file(chips, driver="GPKG")
    out = folder / "records.jsonl"
    command = [sys.executable, "-c", "from pipeline.cli import app; app()", "--quiet"]
    command += ["annotate", "--chips", str(chips), "--config", str(REPO / "configs/demo.yaml")]
    command += ["--archive", str(archive), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=REPO)
    seconds = time.perf_counter() - start
    records = [json.loads(line) for line in out.read_text().splitlines()]
    covered = sum(r["land_use"]["nodata_fraction"] < 1.0 for r in records)
    return {
        "footprints": n,
        "distinct_cells": int(frame.geometry.normalize().to_wkb().nunique()),
        "records": len(records),
        "records_with_corine": covered,
        "records_with_crisis": sum(bool(r["crisis"]) for r in records),
        "seconds": round(seconds, 2),
        "ms_per_footprint": round(1000 * seconds / n, 3),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--out", type=Path, default=Path("annotate-bench.json"))
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="clm-annotate-bench-") as tmp:
        result = run(args.archive.resolve(), args.n, Path(tmp))
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
