"""A build survives a hostile network: through a fault-injecting proxy (429 with Retry-After,
503, resets, truncated bodies, timeouts, on range GETs and on HEADs) it gives, byte for byte,
the corpus and ``corpus.lock`` of a build through the same proxy with the faults off."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
from fault_proxy import FAULT_KINDS, FaultSchedule, fault_proxy
from typer.testing import CliRunner

from pipeline.archive.serve import serve_directory
from pipeline.cli import app
from pipeline.corpus.lock import LOCK_FILE, read_lock
from pipeline.schemas import schema_errors
from pipeline.sources.fingerprint import UnverifiableAssetError, fingerprint
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


# ---- builds --------------------------------------------------------------------------------


def _config(run_config, tiny_archive, out: Path, base: str, **source) -> Path:
    retry = {k: getattr(FAST, k) for k in ("max_attempts", "backoff_s", "backoff_max_s")}
    retry |= {"jitter_s": FAST.jitter_s, "timeout_s": FAST.timeout_s}
    return run_config(
        out.parent / f"{out.name}.yaml",
        tiny_archive,
        out,
        source={"kind": "geoparquet", "asset_base": base, "retry": retry, **source},
    )


def _build(config: Path):
    return CliRunner().invoke(app, ["build", "--config", str(config)])


def _corpus_files(corpus: Path) -> dict[str, bytes]:
    lock = read_lock(corpus / LOCK_FILE)
    return {name: (corpus / name).read_bytes() for name in [*lock["outputs"], LOCK_FILE]}


@pytest.mark.slow
def test_a_build_through_faults_equals_the_fault_free_build(
    storage, tiny_archive, run_config, tmp_path
):
    schedule = FaultSchedule(seed=7, rate=0.15, delay_s=1.5, enabled=False)
    with fault_proxy(storage.url, schedule) as proxy:
        clean = _build(_config(run_config, tiny_archive, tmp_path / "clean", proxy.url))
        assert clean.exit_code == 0, clean.output
        assert not schedule.counts and schedule.requests["HEAD"] and schedule.requests["GET"]
        schedule.enabled = True
        faulty = _build(_config(run_config, tiny_archive, tmp_path / "faulty", proxy.url))
        assert faulty.exit_code == 0, faulty.output
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
        result = _build(_config(run_config, tiny_archive, out, proxy.url))
    assert result.exit_code != 0
    assert "cannot fingerprint scene" in result.output and proxy.url in result.output
    assert "source.on_unverifiable: record" in result.output
    assert not (out / LOCK_FILE).exists() and not (out / "manifest.json").exists()


def test_with_on_unverifiable_record_lock_manifest_and_summary_say_so(
    storage, tiny_archive, run_config, tmp_path
):
    out = tmp_path / "corpus"
    schedule = FaultSchedule(rate=1.0, kinds=("503",), user_agent="python-requests")
    with fault_proxy(storage.url, schedule) as proxy:
        config = _config(run_config, tiny_archive, out, proxy.url, on_unverifiable="record")
        result = _build(config)
        assert result.exit_code == 0, result.output
        schedule.enabled = False  # the sources answer again: still no identity to claim
        rebuilt = CliRunner().invoke(
            app, ["rebuild", "--lock", str(out / LOCK_FILE), "--out", str(tmp_path / "again")]
        )
    lock = json.loads((out / LOCK_FILE).read_text())
    assert schema_errors(lock, "lock.v1.schema.json") == []
    assets = {(item["id"], band): a for item in lock["items"] for band, a in item["assets"].items()}
    assert assets and all(set(a) == {"href", "unverifiable"} for a in assets.values())
    assert all("HTTP 503" in a["unverifiable"] for a in assets.values())
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {(u["subject"], u["detail"]) for u in manifest["unverifiable_inputs"]}
    assert listed == set(assets)
    assert f"UNVERIFIABLE: {len(assets)} input(s)" in result.output
    assert rebuilt.exit_code != 0 and "locked unverifiable" in rebuilt.output
