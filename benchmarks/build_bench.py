"""The build benchmark: this project's reader and whole build against a naive per-chip
rasterio reader and odc-stac (per chip, per scene), on the same scenes and chip grid served
over a byte-counting loopback range server, at 1x / 4x / 16x the scene set.

    python -m benchmarks.build_bench [--scale tiny|demo] [--multipliers 1,4,16] [--out DIR]
    make bench

Per variant and multiplier: chips/s, GET requests and bytes per chip, bytes served / file
size, peak RSS (its own process tree), whether its arrays equal the project reader's; for the
build also the per-stage time breakdown and the corpus size on disk. The headline is the
issue's acceptance number: whole-build chips/s / reader-only chips/s (target >= 0.5).
Writes ``OUT/bench.json`` and ``OUT/bench.png``; nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.chart import draw_chart
from benchmarks.measure import Measured, measure
from benchmarks.replicate import SceneSet, pick_scenes, read_items, replicate
from benchmarks.report import assemble, disk_usage, run_row
from benchmarks.variant import build_config
from pipeline.storage import write_json_atomic

log = logging.getLogger("benchmarks.build_bench")

REPO = Path(__file__).resolve().parents[1]
READER_VARIANTS = ("project_reader", "naive_rasterio", "odc_stac_chip", "odc_stac_scene")
VARIANTS = ("build", *READER_VARIANTS)
DEFAULT_SCENES = {"tiny": None, "demo": 4}  # None: all; demo 4: 2 S1 + 2 S2, ~390 chips


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.build_bench", description=__doc__)
    p.add_argument("--scale", choices=("tiny", "demo"), default="demo")
    p.add_argument(
        "--archive", type=Path, help="archive dir (default OUT/archive-SCALE, simulated if absent)"
    )
    p.add_argument("--out", type=Path, default=REPO / "demo-output" / "bench")
    p.add_argument("--multipliers", default="1,4,16", help="scene-set replications, e.g. 1,4,16")
    p.add_argument(
        "--scenes", type=int, help="base scenes taken from the archive (default: demo 10, tiny all)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="processes of every variant (the build's engine.n_workers)",
    )
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument(
        "--per-chip-max-multiplier",
        type=int,
        default=4,
        help="run the per-chip baselines (naive, odc-stac per chip) only up to this multiplier",
    )
    p.add_argument("--config", type=Path, default=REPO / "configs" / "demo.yaml")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per variant run")
    p.add_argument("--keep-corpus", action="store_true", help="keep the built corpora")
    args = p.parse_args(argv)
    args.multipliers = sorted({int(m) for m in args.multipliers.split(",")})
    args.variants = [v for v in VARIANTS if v in args.variants.split(",")]
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("stac_geoparquet").setLevel(logging.WARNING)
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    archive = ensure_archive(args.archive or args.out / f"archive-{args.scale}", args.scale)
    base = pick_scenes(
        read_items(archive / "items.parquet"), args.scenes or DEFAULT_SCENES[args.scale]
    )
    rows: list[dict[str, Any]] = []
    for m in args.multipliers:
        scene_set = replicate(archive, base, m, args.out / "served")
        scenes, bbox = search(args, archive, scene_set)
        for variant in variants_at(args, m):
            rows.append(run_variant(args, archive, scene_set, (scenes, bbox), variant))
    report = assemble(rows, settings(args, archive, base))
    write_json_atomic(args.out / "bench.json", report)
    draw_chart(report, args.out / "bench.png")
    log.info("wrote %s and %s", args.out / "bench.json", args.out / "bench.png")
    log.info("headline: %s", json.dumps(report["headline"]))
    return report


def ensure_archive(root: Path, scale: str) -> Path:
    """The simulated archive at ``root`` (``clm archive simulate --scale SCALE``), made once."""
    if not (root / "archive.json").is_file():
        from pipeline.archive.simulate import simulate_archive

        log.info("simulating the %s archive into %s", scale, root)
        simulate_archive(root, seed=0, scale=scale)
    return root.resolve()


def variants_at(args: argparse.Namespace, m: int) -> list[str]:
    per_chip = ("naive_rasterio", "odc_stac_chip")
    return [v for v in args.variants if v not in per_chip or m <= args.per_chip_max_multiplier]


def search(
    args: argparse.Namespace, archive: Path, scene_set: SceneSet
) -> tuple[Path, list[float] | None]:
    """The build's own search and selection over the scene set: the scenes every variant
    reads, and the search bbox the chip stage plans within."""
    from pipeline.sources.select import search_scenes

    spec = _spec(args, archive, scene_set, "search", args.out / "unused")
    config = build_config({**spec, "base_url": "http://127.0.0.1"})
    out = args.out / f"scenes-x{scene_set.multiplier}.parquet"
    bbox = list(config.search.bbox) if config.search.bbox else None
    return search_scenes(config, out), bbox


def run_variant(
    args: argparse.Namespace,
    archive: Path,
    scene_set: SceneSet,
    searched: tuple[Path, list[float] | None],
    variant: str,
) -> dict[str, Any]:
    corpus = args.out / f"corpus-x{scene_set.multiplier}"
    shutil.rmtree(corpus, ignore_errors=True)  # a fresh build, never a resumed one
    scenes, bbox = searched
    spec = {**_spec(args, archive, scene_set, variant, corpus), "scenes": str(scenes), "bbox": bbox}
    log.info("x%d %s ...", scene_set.multiplier, variant)
    started = time.perf_counter()
    measured: Measured = measure(spec, scene_set.root, args.timeout)
    row = run_row(variant, scene_set, scenes, measured)
    if variant == "build":
        row["corpus_bytes"] = disk_usage(corpus)
        if not args.keep_corpus:
            shutil.rmtree(corpus, ignore_errors=True)
    log.info(
        "x%d %s: %d chips, %.1f chips/s, %.2f MB/chip, peak %.0f MB (%.0f s)",
        scene_set.multiplier,
        variant,
        row["chips"],
        row["chips_per_s"],
        row["bytes_per_chip"] / 1e6,
        row["peak_rss_mb"],
        time.perf_counter() - started,
    )
    return row


def _spec(
    args: argparse.Namespace, archive: Path, scene_set: SceneSet, variant: str, corpus: Path
) -> dict[str, Any]:
    return {
        "variant": variant,
        "config": str(args.config),
        "archive": str(archive),
        "items": str(scene_set.items),
        "out": str(corpus),
        "workers": args.workers,
    }


def settings(args: argparse.Namespace, archive: Path, base: Sequence[dict]) -> dict[str, Any]:
    return {
        "scale": args.scale,
        "archive": str(archive),
        "base_scenes": len(base),
        "multipliers": args.multipliers,
        "workers": args.workers,
        "per_chip_max_multiplier": args.per_chip_max_multiplier,
        "config": str(args.config),
        "machine": {
            "cpus": _cpus(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "replication": (
            "copy k of each scene = the same COGs under another served path (rK/) and another "
            "item and datatake id; the build keeps every copy and every reader fetches it again"
        ),
    }


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
