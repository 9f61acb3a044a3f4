"""Machine failures on real mounts: a full disk (a small tmpfs), a read-only file system, an
output path that is a file. Each gives ``clm`` exit 2 with one message naming the path and
the fix (no traceback), leaves no temporary, and never a half-published corpus: the previous
corpus stays complete, and a first build shows nothing that looks finished.

We run as root (``chmod`` cannot make a directory unwritable for root), so the tests mount
tmpfs file systems; they need the right to mount and skip with that reason without it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import CORPUS_VIEWS
from pipeline.corpus.dirlock import LOCK_NAME
from pipeline.corpus.drift import check_outputs
from pipeline.corpus.lock import LOCK_FILE, read_lock
from pipeline.corpus.versions import versions

MiB = 1 << 20


@pytest.fixture
def tmpfs(tmp_path):
    """Factory: ``mount(name, size_bytes) -> mount point``; every mount is undone afterwards."""
    mounted: list[Path] = []

    def mount(name: str, size: int) -> Path:
        point = tmp_path / name
        point.mkdir()
        result = _mount(["-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)])
        if result.returncode != 0 and os.geteuid() != 0:
            pytest.skip(f"mounting a tmpfs needs root: {result.stderr.strip()}")
        assert result.returncode == 0, result.stderr
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


def _mount(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


def remount(point: Path, options: str) -> None:
    result = _mount(["-o", f"remount,{options}", str(point)])
    assert result.returncode == 0, result.stderr


def used_bytes(point: Path) -> int:
    st = os.statvfs(point)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def disk_bytes(folder: Path) -> int:
    """Bytes ``folder`` takes on disk (each hard-linked file once)."""
    seen, total = set(), 0
    for path in folder.rglob("*"):
        st = path.lstat()
        if path.is_file() and not path.is_symlink() and st.st_ino not in seen:
            seen.add(st.st_ino)
            total += st.st_blocks * 512
    return total


def clm(*args: str) -> subprocess.CompletedProcess:
    exe = str(Path(sys.executable).parent / "clm")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=600)


def config_for(run_config, archive: Path, out: Path, name: str, **output) -> Path:
    base = {
        "dir": str(out),
        "shard_size": 8,
        "webdataset_shard_size": 8,
        "views": list(CORPUS_VIEWS),
    }
    return run_config(out.parent.parent / f"{name}.yaml", archive, out, output=base | output)


def assert_clear_failure(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    for word in words:
        assert word in result.stderr, result.stderr


def assert_no_temporaries(corpus: Path) -> None:
    left = [p for p in corpus.rglob(".*") if p.name not in (LOCK_NAME, ".staging")]
    assert not left, f"temporaries left behind: {left}"


def visible_names(corpus: Path) -> set[str]:
    """Top-level corpus names a reader can open (a dangling link is absent)."""
    return {p.name for p in corpus.iterdir() if p.exists()} - {"work", "versions", LOCK_NAME}


def assert_intact(corpus: Path, lock_bytes: bytes) -> None:
    """The published corpus is the previous one, complete and consistent."""
    assert (corpus / LOCK_FILE).read_bytes() == lock_bytes
    assert check_outputs(read_lock(corpus / LOCK_FILE), corpus) == []
    assert [v.name for v in versions(corpus)] == ["v001"]


def test_full_disk_mid_publish_keeps_the_previous_corpus(
    tmpfs, tiny_corpus, tiny_archive, run_config
):
    """A rebuild with another split (every view rewritten) on a disk with room for half of
    what it publishes: exit 2, and the previous corpus is what readers still see."""
    point = tmpfs("disk", 256 * MiB)
    corpus = point / "corpus"
    shutil.copytree(tiny_corpus, corpus, symlinks=True)
    publish = disk_bytes(tiny_corpus / "versions" / "v001") - disk_bytes(tiny_corpus / "shards")
    remount(point, f"size={used_bytes(point) + publish // 2}")
    config = config_for(run_config, tiny_archive, corpus, "resplit", train_fraction=0.3)

    result = clm("build", "--config", str(config))

    assert_clear_failure(result, "no space left on the device", str(corpus), "free some space")
    assert_intact(corpus, (tiny_corpus / LOCK_FILE).read_bytes())
    assert (corpus / "versions" / ".staging" / "metadata.parquet").is_file(), "failed in publish"
    assert_no_temporaries(corpus)


@pytest.mark.slow
def test_full_disk_then_room_again_resumes(tmpfs, tiny_corpus, tiny_archive, run_config):
    point = tmpfs("disk", 256 * MiB)
    corpus = point / "corpus"
    shutil.copytree(tiny_corpus, corpus, symlinks=True)
    publish = disk_bytes(tiny_corpus / "versions" / "v001") - disk_bytes(tiny_corpus / "shards")
    remount(point, f"size={used_bytes(point) + publish // 2}")
    config = config_for(run_config, tiny_archive, corpus, "resplit", train_fraction=0.3)
    assert_clear_failure(clm("build", "--config", str(config)), "no space left")

    remount(point, f"size={256 * MiB}")
    result = clm("build", "--config", str(config))

    assert result.returncode == 0, result.stderr[-3000:]
    assert [v.name for v in versions(corpus)] == ["v001", "v002"]
    assert check_outputs(read_lock(corpus / LOCK_FILE), corpus) == []
    v1 = corpus / "versions" / "v001"
    assert check_outputs(read_lock(v1 / LOCK_FILE), v1) == [], "v001 never changes"
    assert read_lock(corpus / LOCK_FILE)["recipe"]["output"]["train_fraction"] == 0.3


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["chips", "publish"])
def test_first_build_on_a_full_disk_shows_nothing_finished(
    stage, tmpfs, tiny_corpus, tiny_archive, run_config
):
    """Room for half the chip work files (fails in the chip stage), or for the work area and
    half the corpus (fails while publishing); then, with room, the build resumes to the
    corpus of a clean build."""
    work = disk_bytes(tiny_corpus / "work")
    corpus_size = disk_bytes(tiny_corpus / "versions" / "v001")
    size = work // 2 if stage == "chips" else work + corpus_size // 2
    point = tmpfs("disk", size)
    corpus = point / "corpus"
    config = config_for(run_config, tiny_archive, corpus, "first")

    result = clm("build", "--config", str(config))

    assert_clear_failure(result, "no space left on the device", str(corpus))
    assert visible_names(corpus) == set(), "nothing may look built"
    assert versions(corpus) == []
    assert (corpus / "work" / "chips.parquet").is_file() == (stage == "publish")
    assert_no_temporaries(corpus)

    remount(point, f"size={256 * MiB}")
    assert clm("build", "--config", str(config)).returncode == 0
    assert (corpus / LOCK_FILE).read_bytes() == (tiny_corpus / LOCK_FILE).read_bytes()


def test_read_only_output_keeps_the_previous_corpus(tmpfs, tiny_corpus, tiny_archive, run_config):
    point = tmpfs("ro", 256 * MiB)
    corpus = point / "corpus"
    shutil.copytree(tiny_corpus, corpus, symlinks=True)
    remount(point, "ro")
    config = config_for(run_config, tiny_archive, corpus, "resplit", train_fraction=0.3)

    for args in (
        ("build", "--config", str(config)),
        ("refresh", "--config", str(config)),
        ("export", "--corpus", str(corpus), "--format", "stac"),
        ("rebuild", "--lock", str(corpus / LOCK_FILE)),
    ):
        result = clm(*args)
        assert_clear_failure(result, "read-only", str(corpus), "writable output directory")
    assert_intact(corpus, (tiny_corpus / LOCK_FILE).read_bytes())


def test_first_build_into_a_read_only_mount(tmpfs, tiny_archive, run_config):
    point = tmpfs("ro", 1 * MiB)
    remount(point, "ro")
    config = config_for(run_config, tiny_archive, point / "corpus", "first")
    result = clm("build", "--config", str(config))
    assert_clear_failure(result, "read-only", str(point / "corpus"))
    assert list(point.iterdir()) == []


@pytest.mark.parametrize("where", ["is-a-file", "parent-is-a-file"])
def test_output_path_that_is_a_file(where, tiny_archive, run_config, tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("not a corpus")
    out = blocker if where == "is-a-file" else blocker / "corpus"
    config = run_config(tmp_path / "run.yaml", tiny_archive, out)
    result = clm("build", "--config", str(config))
    assert_clear_failure(result, str(out if where == "is-a-file" else blocker), "--out")
    assert "not a directory" in result.stderr
    assert blocker.read_text() == "not a corpus"
