import os

import pytest

from pipeline.errors import StorageError
from pipeline.storage import atomic_path, files_under, storage_errors, write_json_atomic


def test_atomic_write_appears_whole_with_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "out.json"
    write_json_atomic(target, {"a": 1})
    assert target.read_text().strip().startswith("{")
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_failed_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_machine_failures_become_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "corpus"
    with pytest.raises(StorageError) as caught, storage_errors(out):
        write_json_atomic(out / "manifest.json", {})
    message = str(caught.value)
    assert str(out) in message and "not a directory" in message and "--out" in message
    assert blocker.read_text() == "x"


def test_an_existing_file_at_the_output_is_named(tmp_path):
    out = tmp_path / "corpus"
    out.write_text("x")
    with pytest.raises(StorageError, match="exists and is not a directory"), storage_errors(out):
        out.mkdir(parents=True, exist_ok=True)


def test_other_os_errors_are_not_disguised(tmp_path):
    with pytest.raises(FileNotFoundError), storage_errors(tmp_path):
        (tmp_path / "missing").read_text()
    (tmp_path / "inner").mkdir()
    with pytest.raises(FileExistsError), storage_errors(tmp_path / "other"):
        (tmp_path / "inner").mkdir()  # EEXIST elsewhere than the output: a bug, not the machine


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_files_under_lists_what_a_sorted_rglob_of_files_lists(tmp_path):
    """Same files, same order (names sorting differently as strings and as path parts,
    hidden entries, symlinks to files, to directories and broken ones)."""
    for rel in ("a/x.json", "a-b/x.json", "a.b/y", "a/b/c/d.h5", ".hidden/z", "top.txt", "é/ü"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    (tmp_path / "empty").mkdir()
    (tmp_path / "a" / "link-to-file").symlink_to(tmp_path / "top.txt")
    (tmp_path / "link-to-dir").symlink_to(tmp_path / "a", target_is_directory=True)
    (tmp_path / "a" / "broken").symlink_to(tmp_path / "nowhere")
    expected = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert files_under(tmp_path) == expected
    assert tmp_path / "a" / "link-to-file" in expected  # the case is really exercised
