"""Golden records: caption records and renderings of a handful of chips of the tiny archive.

A diff here is a change in what the corpus says about its images: review it, then
regenerate with ``CLM_UPDATE_GOLDEN=1 pytest tests/captions/test_golden.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipeline.build import build
from pipeline.config import load_config

GOLDEN = Path(__file__).parent / "golden" / "tiny_records.json"


def _pick(records: list[dict]) -> list[dict]:
    """A stable handful: first S1 and S2 chips, one per crisis phase and hazard."""
    chosen: dict[str, dict] = {}
    for r in records:
        chosen.setdefault(f"sensor:{r['sensor']['sensor']}", r)
        for c in r["crisis"]:
            chosen.setdefault(f"{c['hazard']}:{c['phase']}:{r['sensor']['sensor']}", r)
    return [chosen[k] for k in sorted(chosen)]


def test_golden_records(tiny_archive, tmp_path, run_config):
    config = load_config(run_config(tmp_path / "run.yaml", tiny_archive, tmp_path / "corpus"))
    build(config)
    records = [
        json.loads(line)
        for line in (tmp_path / "corpus" / "records.jsonl").read_text().splitlines()
    ]
    got = _pick(records)
    if os.environ.get("CLM_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    if not GOLDEN.exists():
        pytest.fail(f"{GOLDEN} is missing; generate it with CLM_UPDATE_GOLDEN=1")
    expected = json.loads(GOLDEN.read_text())
    assert [r["key"] for r in got] == [r["key"] for r in expected]
    for g, e in zip(got, expected, strict=True):
        assert g == e, f"record {g['key']} changed"
