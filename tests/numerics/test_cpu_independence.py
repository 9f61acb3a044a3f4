"""Corpus bytes do not depend on the CPU: the same run with SIMD dispatch restricted gives
the same bits.

Each check runs the real pipeline code twice in subprocesses: once free (NumPy's
AVX2/AVX-512 kernels, glibc's FMA variants of exp/log/pow/sin..., OpenBLAS's kernel
for this CPU) and once restricted to the x86-64 baseline (``NPY_DISABLE_CPU_FEATURES``,
``GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA,...``, ``OPENBLAS_CORETYPE=Prescott``).
A fingerprint of ``np.log10``/``np.exp``/matmul proves the restriction changes the
bits those libraries produce; the pipeline outputs must not change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GLIBC_HWCAPS = "-AVX2,-FMA,-AVX,-FMA4,-AVX512F,-AVX2_Usable,-FMA_Usable,-AVX_Usable,-FMA4_Usable"

FINGERPRINT = """
import hashlib, json, numpy as np
rng = np.random.default_rng(7)
x32 = rng.uniform(1e-6, 10.0, 100_000).astype(np.float32)
x64 = rng.uniform(-50.0, 50.0, 100_000)
a, b = rng.random((64, 40), dtype=np.float32), rng.random((40, 12), dtype=np.float32)
digest = lambda v: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()[:16]
print(json.dumps({"log10_f32": digest(np.log10(x32)), "exp_f32": digest(np.exp(x32)),
                  "exp_f64": digest(np.exp(x64)), "sgemm": digest(a @ b)}))
"""

S1_CHIP = """
import sys
from datetime import datetime
import numpy as np
from pipeline.chips.grid import ChipGeometry
from pipeline.chips.plan import PlannedChip
from pipeline.chips.read import read_scene_chips
from pipeline.sources.base import BandAsset, BandValues, Scene
vv, vh, out, unit = sys.argv[1:5]
cell = ChipGeometry(32632, 10, 20)
values = BandValues(unit=unit)
scene = Scene("s1-cpu", "sentinel-1-grd", "s1", "sentinel-1a", datetime(2021, 1, 1), 32632,
              (0.0, 0.0, 0.0, 0.0), {},
              {"VV": BandAsset(vv, values=values), "VH": BandAsset(vh, values=values)})
[pixels] = read_scene_chips(scene, [PlannedChip("s1-cpu_10_20", "s1-cpu", cell)])
np.save(out, pixels.image)
"""


def restricted_env() -> dict[str, str]:
    """Environment overrides that bring NumPy, glibc and OpenBLAS to baseline x86-64 code."""
    found = [name for name in __cpu_dispatch__ if __cpu_features__.get(name)]
    return {
        "NPY_DISABLE_CPU_FEATURES": " ".join(found),
        "GLIBC_TUNABLES": f"glibc.cpu.hwcaps={GLIBC_HWCAPS}",
        "OPENBLAS_CORETYPE": "Prescott",
    }


def run_python(code: str, args: list[str], restricted: bool, cwd: Path) -> str:
    """Run ``code`` with this checkout's ``pipeline`` in a fresh interpreter; its stdout."""
    env = {k: v for k, v in os.environ.items() if k not in restricted_env()}
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")])
    if restricted:
        env.update(restricted_env())
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def restriction_bites(tmp_path_factory) -> dict[str, bool]:
    """Which library results change under the restriction (the test is void if none do)."""
    cwd = tmp_path_factory.mktemp("fingerprint")
    free = json.loads(run_python(FINGERPRINT, [], False, cwd))
    restricted = json.loads(run_python(FINGERPRINT, [], True, cwd))
    changed = {name: free[name] != restricted[name] for name in free}
    if not any(changed.values()):
        pytest.skip("this CPU has no SIMD/FMA paths beyond the x86-64 baseline to restrict")
    return changed


def test_restriction_changes_numpy_float32_kernels(restriction_bites):
    # float32 log10 changes only where NumPy has an AVX-512 (SVML) kernel for it; float32
    # exp/log/sin/cos have AVX2 kernels too
    assert restriction_bites["log10_f32"] or restriction_bites["exp_f32"], restriction_bites


@pytest.mark.parametrize("unit", ["linear_power", "linear_amplitude"])
def test_s1_db_chip_is_the_same_with_and_without_simd(tmp_path, s1_bands, restriction_bites, unit):
    vv, vh = s1_bands
    images = []
    for restricted in (False, True):
        out = tmp_path / f"db-{restricted}.npy"
        run_python(S1_CHIP, [str(vv), str(vh), str(out), unit], restricted, tmp_path)
        images.append(np.load(out))
    free, restricted_image = images
    assert free.dtype == np.float32 and free.shape == (2, 120, 120)
    assert np.isfinite(free).all()
    diff = int((free.view(np.uint32) != restricted_image.view(np.uint32)).sum())
    assert diff == 0, f"{diff} of {free.size} dB values differ between CPU dispatch paths"


SIMULATOR_ARRAYS = """
import hashlib, json
import numpy as np
from pipeline.archive.aoi import prepare_aoi
from pipeline.archive.optical import render_s2
from pipeline.archive.radar import render_s1
from pipeline.archive.scenes import plan_scenes
from pipeline.archive.sites import tiny_sites
digests = {}
digest = lambda a: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]
for site in [s for s in tiny_sites() if s.name == "portugal"]:
    state, full = prepare_aoi(site, 0)
    digests[site.name + "/truth"] = digest(full.clc)
    digests[site.name + "/texture"] = digest(state.texture)
    for scene in plan_scenes(site):
        if scene.sensor == "s2":
            render = render_s2(state, scene)
            arrays = {**render.bands, "SCL": render.scl}
        else:
            render = render_s1(state, scene)
            arrays = {"vv": render.vv, "vh": render.vh}
        digests.update({f"{scene.item_id}/{k}": digest(v) for k, v in arrays.items()})
print(json.dumps(digests))
"""


def test_simulated_scenes_are_the_same_bits_with_and_without_simd(tmp_path, restriction_bites):
    """Truth map, texture and every rendered band of the tiny archive's wildfire AOI (arrays,
    no files; the slow test below covers both AOIs and the corpus built from them)."""
    free = json.loads(run_python(SIMULATOR_ARRAYS, [], False, tmp_path))
    restricted = json.loads(run_python(SIMULATOR_ARRAYS, [], True, tmp_path))
    assert len(free) > 20 and free.keys() == restricted.keys()
    differ = sorted(name for name in free if free[name] != restricted[name])
    assert not differ, f"{len(differ)} of {len(free)} simulated arrays differ: {differ[:8]}"


TINY_BUILD = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from conftest import write_run_config
from pipeline.archive.simulate import simulate_archive
from pipeline.build import build
from pipeline.config import load_config
root = Path(sys.argv[1])
simulate_archive(root / "archive", seed=0, scale="tiny")
config = write_run_config(root / "run.yaml", root / "archive", root / "corpus")
build(load_config(config))
"""


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file's bytes, except the writer lock (it holds the writer's pid and start time).
    The chip work files count too: their compressed chunks are copied into the shards."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".writer.lock"
    }


@pytest.mark.slow
def test_tiny_archive_and_corpus_are_the_same_bytes_with_and_without_simd(
    tmp_path, restriction_bites
):
    """Simulate the tiny archive and build its corpus twice in one directory (so paths in
    the outputs agree): every COG, STAC item, shard, record and metadata file must match."""
    work = tmp_path / "run"
    trees = {}
    for restricted in (False, True):
        run_python(TINY_BUILD, [str(work), str(PROJECT_ROOT / "tests")], restricted, tmp_path)
        trees[restricted] = tree_bytes(work)
        work.rename(tmp_path / f"run-{'restricted' if restricted else 'free'}")
    free, restricted_tree = trees[False], trees[True]
    assert sorted(free) == sorted(restricted_tree)
    assert any(name.endswith(".tif") for name in free) and any(".h5" in n for n in free)
    differ = [name for name in free if free[name] != restricted_tree[name]]
    assert not differ, f"{len(differ)} of {len(free)} files differ: {differ[:10]}"
