"""The GPU readiness check in its tiny CPU mode, as a real subprocess, so it cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def test_gpu_check_runs_in_tiny_cpu_mode_and_writes_its_json(tiny_corpus, tmp_path):
    out = tmp_path / "gpu-check.json"
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1])}
    command = [sys.executable, str(SCRIPT), str(tiny_corpus), "--tiny", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert (
        report["tiny"] and report["device"] == "cpu" and report["model_config"] == "closp-tiny-cnn"
    )
    assert set(report["phases"]) == {"frozen", "unfrozen"}
    frozen, unfrozen = report["phases"]["frozen"], report["phases"]["unfrozen"]
    assert len(frozen["loss"]) == 4 and all(loss > 0 for loss in frozen["loss"])
    assert frozen["samples_per_s"] > 0 and unfrozen["median_step_s"] > 0
    assert unfrozen["trainable_parameters"] > frozen["trainable_parameters"]  # + the transformer
    assert report["peak_memory_mb"] > 0
    bf16 = report["amp_agreement"]["bfloat16"]
    assert bf16["supported"] and 0.9 < bf16["min_row_cosine"] <= 1.0 + 1e-6
    assert bf16["max_abs_embedding_diff"] > 0  # bf16 really ran: not bit-identical to fp32
    assert "report:" in result.stdout
