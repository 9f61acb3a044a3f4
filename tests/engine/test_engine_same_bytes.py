"""The same corpus, byte for byte, whatever runs the work: the tiny archive built on one thread
of the build process, on a Dask ``LocalCluster`` of 2 worker processes, and on a separately
started ``dask scheduler`` + ``dask worker`` pair (real CLIs, the worker in another directory)
addressed by ``CLM_DASK_SCHEDULER``.

Compared: every published file (the current version: shards, views, manifest, lock, ...),
``work/chips.parquet`` and ``work/records.jsonl``. Not compared: the per-scene work files
``work/chips/*.h5`` (their compressed chips reach the shards, which are compared) and the
writer lock (pid and time of the writer)."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.build import build
from pipeline.config import load_config
from pipeline.engine.settings import SCHEDULER_ENV

pytestmark = pytest.mark.slow
DASK = Path(sys.executable).parent / "dask"
WORK_COMPARED = ("work/chips.parquet", "work/records.jsonl")


def corpus_files(corpus: Path) -> dict[str, bytes]:
    """Every published file (through the ``current`` version) and the compared work files."""
    published = (corpus / "versions" / "current").resolve()
    files = {
        p.relative_to(published).as_posix(): p.read_bytes()
        for p in sorted(published.rglob("*"))
        if p.is_file()
    }
    files.update({name: (corpus / name).read_bytes() for name in WORK_COMPARED})
    return files


def build_with(run_config, archive: Path, out: Path, engine: dict) -> dict[str, bytes]:
    output = {"dir": str(out), "shard_size": 8, "webdataset_shard_size": 8}
    path = run_config(out.parent / f"{out.name}.yaml", archive, out, engine=engine, output=output)
    build(load_config(path))
    return corpus_files(out)


@pytest.fixture(scope="module")
def serial_corpus(tiny_archive, run_config, tmp_path_factory) -> dict[str, bytes]:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(SCHEDULER_ENV, raising=False)
        out = tmp_path_factory.mktemp("serial") / "corpus"
        return build_with(run_config, tiny_archive, out, {"kind": "serial"})


def assert_same(files: dict[str, bytes], reference: dict[str, bytes]) -> None:
    assert sorted(files) == sorted(reference)
    assert len(reference) > 20 and any(n.startswith("shards/") for n in reference)
    differing = [name for name in reference if files[name] != reference[name]]
    assert not differing


def test_local_cluster_of_two_workers_writes_the_serial_bytes(
    serial_corpus, tiny_archive, run_config, tmp_path, monkeypatch, caplog
):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    caplog.set_level(logging.INFO, "pipeline.engine")
    files = build_with(run_config, tiny_archive, tmp_path / "corpus", {"n_workers": 2})
    assert "Dask LocalCluster: 2 worker process(es)" in caplog.text
    assert_same(files, serial_corpus)


@contextlib.contextmanager
def external_cluster(tmp_path: Path) -> Iterator[str]:
    """``dask scheduler`` on a free loopback port and ``dask worker`` (2 processes) started in
    their own directory; stopped (only these processes) when the block ends."""
    info, logs = tmp_path / "scheduler.json", tmp_path / "logs"
    elsewhere = tmp_path / "worker-home"
    logs.mkdir()
    elsewhere.mkdir()
    procs: list[subprocess.Popen] = []
    try:
        procs.append(
            _start(
                [
                    DASK,
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    info,
                ],
                logs / "s.log",
                tmp_path,
            )
        )
        address = _address(info, procs[0], logs / "s.log")
        procs.append(
            _start(
                [
                    DASK,
                    "worker",
                    address,
                    "--nworkers",
                    "2",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--local-directory",
                    elsewhere / "dask",
                ],
                logs / "w.log",
                elsewhere,
            )
        )
        _wait_for_workers(address, 2, logs / "w.log")  # both joined before the build looks
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
            if proc.poll() is None:
                proc.kill()


def _start(command: list, log: Path, cwd: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen([str(c) for c in command], stdout=out, stderr=out, cwd=cwd)


def _wait_for_workers(address: str, n: int, log: Path) -> None:
    from distributed import Client

    with Client(address, timeout=60) as client:
        try:
            client.wait_for_workers(n, timeout=120)
        except TimeoutError:
            raise AssertionError(log.read_text()) from None


def _address(info: Path, scheduler: subprocess.Popen, log: Path) -> str:
    deadline = time.monotonic() + 120
    while not info.is_file() or not info.read_text().strip():
        assert scheduler.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    return str(json.loads(info.read_text())["address"])


def test_external_scheduler_and_worker_write_the_serial_bytes(
    serial_corpus, tiny_archive, run_config, tmp_path, monkeypatch, caplog
):
    with external_cluster(tmp_path) as address:
        monkeypatch.setenv(SCHEDULER_ENV, address)  # the config names no scheduler
        caplog.set_level(logging.INFO, "pipeline.engine")
        files = build_with(run_config, tiny_archive, tmp_path / "corpus", {})
    assert f"Dask scheduler {address} (from {SCHEDULER_ENV}): 2 worker(s)" in caplog.text
    assert_same(files, serial_corpus)


def test_the_workers_hand_their_asset_fingerprints_to_the_lock(
    tiny_archive, run_config, tmp_path, monkeypatch
):
    """Worker processes hash the local assets to key their work files and hand the
    fingerprints on (``work/asset_fingerprints.json``, by item and band), so the build
    process hashes no asset a second time for ``corpus.lock``."""
    import hashlib
    import json
    from collections import OrderedDict

    from pipeline.build import stage_chips, stage_search
    from pipeline.chips.stage import taken_fingerprints_path
    from pipeline.sources import fingerprint as fingerprints
    from pipeline.sources.assets import asset_location
    from pipeline.sources.select import read_scenes

    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    monkeypatch.setattr(fingerprints, "_HASHES", OrderedDict())  # forget earlier builds
    out = tmp_path / "corpus"
    config = load_config(
        run_config(tmp_path / "run.yaml", tiny_archive, out, engine={"n_workers": 2})
    )
    scenes = read_scenes(stage_search(config))
    src = config.source
    stage_chips(config, out / "work" / "scenes.parquet")
    taken = json.loads(taken_fingerprints_path(out / "work").read_text())
    assert set(taken) == {s.item_id for s in scenes}
    for scene in scenes:
        for band, asset in scene.assets.items():
            path = Path(asset_location(asset.href, src.asset_base, src.items.parent))
            assert (
                taken[scene.item_id][band]["sha256"]
                == hashlib.sha256(path.read_bytes()).hexdigest()
            )
    assert not fingerprints._HASHES, "the build process hashed assets itself"
