"""A build survives a hostile network: through a fault-injecting proxy (429 with Retry-After,
503, resets, truncated bodies, timeouts, on range GETs and on HEADs) it gives, byte for byte,
the corpus and ``corpus.lock`` of a build through the same proxy with the faults off."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import requests
from fault_proxy import FAULT_KINDS, FaultSchedule, fault_proxy
from typer.testing import CliRunner

from pipeline.archive.serve import serve_directory
from pipeline.build import BuildPaths, stage_search
from pipeline.chips.plan import plan_scene
from pipeline.chips.read import read_scene_chips
from pipeline.cli import app
from pipeline.config import load_config
from pipeline.corpus.lock import LOCK_FILE, fingerprint_inputs, read_lock
from pipeline.schemas import schema_errors
from pipeline.sources.base import Scene, SearchQuery
from pipeline.sources.fingerprint import UnverifiableAssetError, fingerprint
from pipeline.sources.geoparquet import GeoParquetSource
from pipeline.sources.select import read_scenes
from pipeline.sources.settings import RetryPolicy

FAST = RetryPolicy(max_attempts=6, backoff_s=0.01, backoff_max_s=0.05, jitter_s=0.01, timeout_s=1.0)
ASSET = "scenes/sentinel-1-grd"  # a folder of the tiny archive's S1 scenes


@pytest.fixture(scope="module")
def storage(tiny_archive):
    """The tiny archive on a loopback range server (the proxies' upstream)."""
    with serve_directory(tiny_archive) as server:
        yield server


def _an_asset(storage) -> str:
    return next(p for p in storage.root.rglob("*.tif") if ASSET in p.as_posix()).as_posix()


def _url(base: str, storage, path: str) -> str:
    return f"{base}/{Path(path).relative_to(storage.root).as_posix()}"


# ---- fingerprints --------------------------------------------------------------------------


def test_head_faults_of_every_kind_are_retried(storage):
    path = _an_asset(storage)
    clean = fingerprint(_url(storage.url, storage, path), FAST)
    schedule = FaultSchedule(seed=1, rate=1.0, budget=len(FAULT_KINDS), delay_s=1.5)
    with fault_proxy(storage.url, schedule) as proxy:
        assert fingerprint(_url(proxy.url, storage, path), FAST) == clean
    assert schedule.injected("HEAD") == dict.fromkeys(FAULT_KINDS, 1)
    assert clean["size"] == Path(path).stat().st_size


def test_429_waits_for_retry_after(storage):
    schedule = FaultSchedule(rate=1.0, kinds=("429",), budget=1, retry_after="1")
    patient = RetryPolicy(max_attempts=2, backoff_s=0.01, backoff_max_s=5.0, jitter_s=0.0)
    with fault_proxy(storage.url, schedule) as proxy:
        started = time.monotonic()
        fingerprint(_url(proxy.url, storage, _an_asset(storage)), patient)
        assert time.monotonic() - started >= 1.0


def test_exhausted_head_retries_name_the_asset_without_its_query(storage):
    schedule = FaultSchedule(rate=1.0, kinds=("503",))
    with fault_proxy(storage.url, schedule) as proxy:
        url = _url(proxy.url, storage, _an_asset(storage)) + "?se=2030&sig=SECRET"
        with pytest.raises(UnverifiableAssetError) as failure:
            fingerprint(url, FAST)
    message = str(failure.value)
    assert url.split("?")[0] in message and "still failing after 6 attempts" in message
    assert "HTTP 503" in message and "SECRET" not in message
    assert schedule.requests["HEAD"] == FAST.max_attempts


def test_a_missing_remote_file_is_missing_not_unverifiable(storage):
    assert fingerprint(f"{storage.url}/no/such.tif", FAST) == {"missing": True}
    response = requests.head(f"{storage.url}/no/such.tif", timeout=5)
    assert response.status_code == 404


# ---- chip reads ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene(tiny_archive) -> Scene:
    query = SearchQuery(
        ("sentinel-2-l2a",), datetime(2022, 1, 1, tzinfo=UTC), datetime(2022, 12, 31, tzinfo=UTC)
    )
    return next(iter(GeoParquetSource(tiny_archive / "items.parquet").search(query)))


def _chips(scene: Scene, base: str) -> dict[str, np.ndarray]:
    assets = {b: dataclasses.replace(a, href=f"{base}/{a.href}") for b, a in scene.assets.items()}
    located = dataclasses.replace(scene, assets=assets)
    return {c.chip.key: c.image for c in read_scene_chips(located, plan_scene(located), FAST)}


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_chip_reads_recover_from_each_fault_kind(storage, scene, kind):
    reference = _chips(scene, storage.url)
    schedule = FaultSchedule(seed=3, rate=0.3, kinds=(kind,), delay_s=1.5)
    with fault_proxy(storage.url, schedule) as proxy:
        chips = _chips(scene, proxy.url)
    assert schedule.counts[("GET", kind)] and schedule.counts[("HEAD", kind)]
    assert chips.keys() == reference.keys() and len(chips) > 0
    assert all(np.array_equal(chips[k], reference[k]) for k in reference)


# ---- builds --------------------------------------------------------------------------------


def _config(run_config, tiny_archive, out: Path, base: str, s1_only=False, **source) -> Path:
    retry = {k: getattr(FAST, k) for k in ("max_attempts", "backoff_s", "backoff_max_s")}
    retry |= {"jitter_s": FAST.jitter_s, "timeout_s": FAST.timeout_s}
    search = {"collections": ["sentinel-1-grd"], "datetime": "2020-01-01/2023-12-31"}
    return run_config(
        out.parent / f"{out.name}.yaml",
        tiny_archive,
        out,
        source={"kind": "geoparquet", "asset_base": base, "retry": retry, **source},
        **({"search": search} if s1_only else {}),  # fewer bands: a quicker build
    )


def _build(config: Path) -> subprocess.CompletedProcess[str]:
    """``clm build`` in its own process (GDAL's /vsicurl cache is per process)."""
    clm = str(Path(sys.executable).parent / "clm")
    return subprocess.run(
        [clm, "build", "--config", str(config)], capture_output=True, text=True, timeout=600
    )


def _said(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def _corpus_files(corpus: Path) -> dict[str, bytes]:
    lock = read_lock(corpus / LOCK_FILE)
    return {name: (corpus / name).read_bytes() for name in [*lock["outputs"], LOCK_FILE]}


def test_scenes_skipped_by_the_chip_stage_are_locked_as_they_are(
    storage, tiny_archive, run_config, tmp_path
):
    """``chips.on_error: skip`` already marks such scenes missing: their dead assets must not
    fail the lock, they are recorded as unverifiable (the others still fail the build)."""
    out = tmp_path / "corpus"
    schedule = FaultSchedule(rate=1.0, kinds=("503",), user_agent="python-requests")
    with fault_proxy(storage.url, schedule) as proxy:
        config = load_config(_config(run_config, tiny_archive, out, proxy.url, s1_only=True))
        scenes = stage_search(config)
        ids = [s.item_id for s in read_scenes(scenes)]
        work = BuildPaths(out).work
        (work / "failed_scenes.json").write_text(json.dumps(dict.fromkeys(ids[1:], "gone")))
        with pytest.raises(UnverifiableAssetError, match=f"scene {ids[0]} band"):
            fingerprint_inputs(config, scenes, work)
        (work / "failed_scenes.json").write_text(json.dumps(dict.fromkeys(ids, "gone")))
        inputs = fingerprint_inputs(config, scenes, work)
    listed = json.loads((work / "unverifiable_inputs.json").read_text())
    assert {u["subject"] for u in listed} == set(ids) and listed == inputs.unverifiable()


@pytest.mark.slow
def test_a_build_through_faults_equals_the_fault_free_build(
    storage, tiny_archive, run_config, tmp_path
):
    schedule = FaultSchedule(seed=7, rate=0.15, delay_s=1.5, enabled=False)
    with fault_proxy(storage.url, schedule) as proxy:
        clean = _build(_config(run_config, tiny_archive, tmp_path / "clean", proxy.url))
        assert clean.returncode == 0, _said(clean)[-3000:]
        assert not schedule.counts and schedule.requests["HEAD"] and schedule.requests["GET"]
        schedule.enabled = True
        faulty = _build(_config(run_config, tiny_archive, tmp_path / "faulty", proxy.url))
        assert faulty.returncode == 0, _said(faulty)[-3000:]
    print("faults injected:", dict(schedule.counts), "requests:", dict(schedule.requests))
    for method in ("GET", "HEAD"):  # every kind of fault really happened, to both
        assert all(schedule.injected(method).values()), (method, schedule.injected(method))
    expected, found = _corpus_files(tmp_path / "clean"), _corpus_files(tmp_path / "faulty")
    assert found.keys() == expected.keys() and "manifest.json" in found
    assert [name for name in expected if found[name] != expected[name]] == []
    lock = read_lock(tmp_path / "faulty" / LOCK_FILE)
    assets = [a for item in lock["items"] for a in item["assets"].values()]
    assert assets and all(a["size"] > 0 and "unverifiable" not in a for a in assets)


def test_a_build_whose_fingerprints_keep_failing_fails_naming_the_asset(
    storage, tiny_archive, run_config, tmp_path
):
    out = tmp_path / "corpus"
    schedule = FaultSchedule(rate=1.0, kinds=("503",), user_agent="python-requests")
    with fault_proxy(storage.url, schedule) as proxy:
        result = _build(_config(run_config, tiny_archive, out, proxy.url, s1_only=True))
    said = _said(result)
    assert result.returncode == 2, said[-3000:]
    assert "cannot fingerprint scene" in said and proxy.url in said
    assert "source.on_unverifiable: record" in said
    assert not (out / LOCK_FILE).exists() and not (out / "manifest.json").exists()


def test_with_on_unverifiable_record_lock_manifest_and_summary_say_so(
    storage, tiny_archive, run_config, tmp_path
):
    out = tmp_path / "corpus"
    schedule = FaultSchedule(rate=1.0, kinds=("503",), user_agent="python-requests")
    with fault_proxy(storage.url, schedule) as proxy:
        config = _config(
            run_config, tiny_archive, out, proxy.url, s1_only=True, on_unverifiable="record"
        )
        result = _build(config)
        assert result.returncode == 0, _said(result)[-3000:]
        schedule.enabled = False  # the sources answer again: still no identity to claim
        rebuilt = CliRunner().invoke(
            app, ["rebuild", "--lock", str(out / LOCK_FILE), "--out", str(tmp_path / "again")]
        )
    lock = json.loads((out / LOCK_FILE).read_text())
    assert schema_errors(lock, "lock.v1.schema.json") == []
    assets = {(item["id"], band): a for item in lock["items"] for band, a in item["assets"].items()}
    assert assets and all(set(a) == {"href", "unverifiable"} for a in assets.values())
    assert all("HTTP 503" in a["unverifiable"] for a in assets.values())
    next(iter(assets.values()))["size"] = 1  # an unverifiable input pins no bytes at all
    assert schema_errors(lock, "lock.v1.schema.json")
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {(u["subject"], u["detail"]) for u in manifest["unverifiable_inputs"]}
    assert listed == set(assets)
    assert f"UNVERIFIABLE: {len(assets)} input(s)" in result.stdout
    assert rebuilt.exit_code != 0 and "locked unverifiable" in rebuilt.output
