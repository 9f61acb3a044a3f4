"""Run one variant in a child process while a byte-counting range server serves the scenes.

Each run gets a fresh loopback server (``pipeline.archive.serve``) over the replicated scene
set, so its request and byte counts are its own, and the child's process tree (the variant
and its worker processes; the server's threads live in this process, outside it) is sampled for its resident memory every ``SAMPLE_S`` seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from pipeline.archive.serve import serve_directory

SAMPLE_S = 0.1
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Measured:
    result: dict[str, Any]  # what the variant reported (seconds, chips, hashes, ...)
    requests: int  # GET requests the server answered (HEADs are not counted)
    bytes_served: int
    peak_tree_rss_bytes: int  # sum over the variant's processes, sampled


def measure(spec: dict[str, Any], served_root: Path, timeout_s: float) -> Measured:
    """Serve ``served_root``, run ``python -m benchmarks.variant`` on ``spec`` (plus the
    server's URL), return its result with the server's counts and the peak memory."""
    with serve_directory(served_root) as server, tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps({**spec, "base_url": server.url}))
        child = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.variant", str(spec_path), str(out_path)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": _pythonpath()},
        )
        peak = _sample_until_done(child, timeout_s)
        if child.returncode != 0:
            raise RuntimeError(f"variant {spec['variant']} failed (exit {child.returncode})")
        result = json.loads(out_path.read_text())
        stats = server.stats
        return Measured(result, stats.requests, stats.bytes_sent, peak)


def _pythonpath() -> str:
    parts = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return os.pathsep.join(dict.fromkeys(parts))


def _sample_until_done(child: subprocess.Popen, timeout_s: float) -> int:
    """Peak of the summed RSS of ``child`` and its descendants until it exits."""
    peak = 0
    deadline = time.monotonic() + timeout_s
    proc = psutil.Process(child.pid)
    while child.poll() is None:
        if time.monotonic() > deadline:
            child.kill()
            child.wait()
            raise TimeoutError(f"variant pid {child.pid} ran over {timeout_s:.0f} s")
        peak = max(peak, tree_rss(proc))
        time.sleep(SAMPLE_S)
    return peak


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of ``proc`` and all its descendants (0 for those already gone)."""
    total = 0
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for p in family:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total
