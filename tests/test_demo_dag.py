"""Slow: the demo archive at full size, built by the clm_build_corpus DAG through Airflow.

This is what `make demo` does; it checks the size promise (>= ~3000 chips) and the
chip-level physics of the simulated archive on a corpus large enough for statistics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from pipeline.archive.simulate import simulate_archive

    base = tmp_path_factory.mktemp("demo")
    simulate_archive(base / "archive", seed=0, scale="demo")
    home = base / "airflow"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
    }
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    conf = {
        "config": str(ROOT / "configs" / "demo.yaml"),
        "archive": str(base / "archive"),
        "out": str(base / "corpus"),
    }
    run = subprocess.run(
        [airflow, "dags", "test", "clm_build_corpus", "-c", json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "state=success" in run.stdout + run.stderr
    return base / "corpus"


def test_demo_corpus_is_big_enough(demo):
    manifest = json.loads((demo / "manifest.json").read_text())
    kept = {s: v["kept"] for s, v in manifest["chips"].items()}
    assert kept["s1"] + kept["s2"] >= 3000, kept
    assert (
        manifest["labels"]["s1"]["flooded area"] > 0 and manifest["labels"]["s2"]["burned area"] > 0
    )


def test_water_chips_are_darker_than_forest_chips_in_nir_and_vv(demo):
    records = {
        r["key"]: r for r in map(json.loads, (demo / "records.jsonl").read_text().splitlines())
    }

    def pure(key: str, cls: str) -> bool:
        r = records[key]
        return not r["crisis"] and r["land_cover"]["fractions"].get(cls, 0) >= 0.5

    means: dict[tuple[str, str], list[float]] = {}
    for shard in sorted((demo / "shards").glob("*.h5")):
        with h5py.File(shard, "r") as h5:
            for key in h5:
                sensor = records[key]["sensor"]["sensor"]
                band = 7 if sensor == "s2" else 0  # B08 (NIR) / VV
                for cls in ("water", "trees"):
                    if pure(key, cls):
                        means.setdefault((sensor, cls), []).append(
                            float(h5[key]["image"][band].mean())
                        )
    for sensor in ("s1", "s2"):
        water, trees = means[(sensor, "water")], means[(sensor, "trees")]
        assert len(water) >= 3 and len(trees) >= 3
        assert np.mean(water) < np.mean(trees) - (5 if sensor == "s1" else 1000), (
            sensor,
            np.mean(water),
            np.mean(trees),
        )
