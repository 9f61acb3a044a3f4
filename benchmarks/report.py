"""The benchmark's JSON: one row per (variant, multiplier), the arrays compared with the
project reader's, the scaling from the smallest to the largest multiplier, and the headline
(whole-build chips/s / reader-only chips/s, the issue's acceptance number)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.measure import Measured
from benchmarks.replicate import SceneSet
from pipeline.chips.read import read_bands
from pipeline.sources.select import read_scenes

TARGET_RATIO = 0.5  # issue 12: whole build >= 0.5x the reader-only chips/s
TARGET_MEMORY_GROWTH = 1.2  # peak memory flat within 20 % from 1x to 16x
MB = 1e6


def run_row(variant: str, scene_set: SceneSet, scenes: Path, measured: Measured) -> dict[str, Any]:
    """One variant at one multiplier: rates, traffic, memory (``hashes`` kept for ``assemble``)."""
    result = measured.result
    chips, seconds = max(1, result["chips"]), result["seconds"]
    selected = read_scenes(scenes)
    file_bytes = served_file_bytes(scene_set.root, selected)
    row = {
        "variant": variant,
        "multiplier": scene_set.multiplier,
        "scenes": len(selected),
        "chips": result["chips"],
        "seconds": round(seconds, 3),
        "chips_per_s": round(result["chips"] / seconds, 2) if seconds else 0.0,
        "ms_per_chip": round(1000 * seconds / chips, 3),
        "requests": measured.requests,
        "requests_per_chip": round(measured.requests / chips, 4),
        "bytes_served": measured.bytes_served,
        "bytes_per_chip": round(measured.bytes_served / chips),
        "file_bytes": file_bytes,
        "bytes_vs_file_size": round(measured.bytes_served / file_bytes, 4) if file_bytes else None,
        "peak_rss_mb": round(measured.peak_tree_rss_bytes / MB, 1),
        "max_process_rss_mb": round(result["max_process_rss_bytes"] / MB, 1),
        "hashes": result["hashes"],
    }
    for key in ("kept_chips", "stages"):
        if key in result:
            row[key] = result[key]
    if "stages" in result and result.get("kept_chips"):
        per_kept = {
            k: 1000 * v / result["kept_chips"] for k, v in result["stages"]["seconds"].items()
        }
        row["ms_per_kept_chip_by_stage"] = {k: round(v, 3) for k, v in per_kept.items()}
    return row


def served_file_bytes(root: Path, scenes: Iterable[Any]) -> int:
    """Size of every COG the readers read (each band and SCL of each selected scene)."""
    return sum((root / s.assets[b].href).stat().st_size for s in scenes for b in read_bands(s))


def assemble(rows: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    for row in rows:
        row["arrays"] = compare_arrays(row, rows)
    for row in rows:
        row.pop("hashes")
    return {
        "headline": headline(rows),
        "settings": settings,
        "runs": rows,
        "scaling": scaling(rows),
        "all_arrays_identical": all(r["arrays"]["identical"] for r in rows),
        "notes": NOTES,
    }


def compare_arrays(row: dict[str, Any], rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """This run's chip hashes against the project reader's at the same multiplier (the build
    against its kept chips only: it keeps no pixels of rejected chips)."""
    ref = _find(rows, "project_reader", row["multiplier"])
    if ref is None:
        return {
            "identical": False,
            "reference": None,
            "compared": 0,
            "mismatched": [],
            "missing": [],
        }
    ours, theirs = row["hashes"], ref["hashes"]
    keys = sorted(ours) if row["variant"] == "build" else sorted(set(ours) | set(theirs))
    missing = [k for k in keys if k not in ours or k not in theirs]
    mismatched = [k for k in keys if k in ours and k in theirs and ours[k] != theirs[k]]
    return {
        "identical": not missing and not mismatched and bool(keys),
        "reference": "project_reader",
        "compared": len(keys),
        "mismatched": mismatched[:20],
        "mismatched_count": len(mismatched),
        "missing": missing[:20],
        "missing_count": len(missing),
    }


def headline(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Whole build / reader-only chips/s per multiplier; the value at the largest multiplier
    where both ran is the acceptance number (start-up costs matter least there)."""
    ratios = {}
    for m in sorted({r["multiplier"] for r in rows}):
        build, reader = _find(rows, "build", m), _find(rows, "project_reader", m)
        if build and reader and reader["chips_per_s"]:
            ratios[f"x{m}"] = round(build["chips_per_s"] / reader["chips_per_s"], 4)
    value = ratios[max(ratios, key=lambda k: int(k[1:]))] if ratios else None
    growth = scaling(rows).get("build", {}).get("peak_rss_growth")
    return {
        "build_vs_reader_chips_per_s": value,
        "at_multiplier": max((int(k[1:]) for k in ratios), default=None),
        "by_multiplier": ratios,
        "target": TARGET_RATIO,
        "meets_target": value is not None and value >= TARGET_RATIO,
        "build_peak_rss_growth": growth,
        "memory_target": TARGET_MEMORY_GROWTH,
    }


def scaling(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per variant: seconds, chips/s and peak RSS at each multiplier, and the growth from the
    smallest to the largest multiplier (time should grow like the work, memory not at all)."""
    out: dict[str, Any] = {}
    for variant in dict.fromkeys(r["variant"] for r in rows):
        runs = sorted((r for r in rows if r["variant"] == variant), key=lambda r: r["multiplier"])
        first, last = runs[0], runs[-1]
        work = last["multiplier"] / first["multiplier"]
        out[variant] = {
            "multipliers": [r["multiplier"] for r in runs],
            "seconds": [r["seconds"] for r in runs],
            "chips_per_s": [r["chips_per_s"] for r in runs],
            "peak_rss_mb": [r["peak_rss_mb"] for r in runs],
            "work_growth": work,
            "time_growth": round(last["seconds"] / first["seconds"], 3)
            if first["seconds"]
            else None,
            "peak_rss_growth": round(last["peak_rss_mb"] / first["peak_rss_mb"], 3)
            if first["peak_rss_mb"]
            else None,
            **marginal_costs(runs),
        }
    return out


def marginal_costs(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Seconds per extra chip between the two largest multipliers (start-up, label loading and
    other fixed costs cancel out) and the fixed seconds that leaves at the smallest; for the
    build also per stage. What a projection to many more chips should use."""
    if len(runs) < 2 or runs[-1]["chips"] == runs[-2]["chips"]:
        return {}
    a, b = runs[-2], runs[-1]
    extra = b["chips"] - a["chips"]
    per_chip = (b["seconds"] - a["seconds"]) / extra
    out: dict[str, Any] = {
        "marginal_ms_per_chip": round(1000 * per_chip, 3),
        "fixed_seconds": round(runs[0]["seconds"] - per_chip * runs[0]["chips"], 2),
    }
    if "stages" in b and "stages" in a:
        sa, sb = a["stages"]["seconds"], b["stages"]["seconds"]
        out["marginal_ms_per_chip_by_stage"] = {
            k: round(1000 * (sb[k] - sa.get(k, 0.0)) / extra, 3) for k in sb
        }
    return out


def _find(rows: Sequence[dict[str, Any]], variant: str, m: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["variant"] == variant and r["multiplier"] == m), None)


def disk_usage(corpus: Path) -> dict[str, Any]:
    """Bytes on disk (allocated blocks, each inode once) of the corpus directory, and of each
    part of the published corpus (``shards``, ``webdataset``, ``stac``, ``work``, ...; the
    top-level links into ``versions/`` followed); ``versions`` keeps what no part holds."""
    if not corpus.is_dir():
        return {"total": 0, "parts": {}, "shards": 0, "total_vs_shards": None}
    seen: set[tuple[int, int]] = set()
    entries = sorted(corpus.iterdir(), key=lambda p: (p.name == "versions", p.name))
    parts = {p.name: _du(p.resolve(), seen) for p in entries}
    total, shards = sum(parts.values()), parts.get("shards", 0)
    return {
        "total": total,
        "parts": {k: v for k, v in parts.items() if v},
        "shards": shards,
        "total_vs_shards": round(total / shards, 3) if shards else None,
    }


def _du(path: Path, seen: set[tuple[int, int]]) -> int:
    paths = [path, *path.rglob("*")] if path.is_dir() else [path]
    total = 0
    for p in paths:
        st = os.lstat(p)
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


NOTES = {
    "chips": "planned chips read (kept and rejected); the build keeps pixels of kept chips only",
    "chips_per_s": "chips / wall seconds of the variant, its worker start-up included",
    "requests": "HTTP GET requests answered by the loopback range server (HEADs not counted)",
    "bytes_vs_file_size": "bytes served / size of every COG read (1.0 = each file fetched once)",
    "peak_rss_mb": "peak of the summed RSS of the variant's process tree, sampled every 0.1 s",
    "max_process_rss_mb": "largest single-process ru_maxrss of the variant or its workers",
    "arrays": "SHA-256 of each chip's converted pixels against the project reader's",
}
