"""Atomic file writes: every output appears under its final name complete, or not at all;
and machine failures (disk full, read-only or unwritable output, a file where a directory
should be) turned into one clear ``StorageError`` naming the path and the fix."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import StorageError


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it onto ``final`` only on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; published files follow the umask
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(final: Path, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(final: Path, text: str) -> None:
    write_bytes_atomic(final, text.encode("utf-8"))


def write_json_atomic(final: Path, obj: Any) -> None:
    write_text_atomic(final, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def files_under(root: Path) -> list[Path]:
    """Every file under ``root`` (symlinks to files included, symlinked directories not
    entered), sorted as ``sorted(root.rglob("*"))`` sorts them: ``pathlib``'s walk took
    about 50 µs a file, and a corpus's STAC view holds one file and directory per chip."""
    found: list[Path] = []
    pending = [os.fspath(root)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif entry.is_file():
                    found.append(Path(entry.path))
    return sorted(found, key=lambda p: p.parts)


@contextlib.contextmanager
def hdf5_atomic(final: Path, **options: Any) -> Iterator[Any]:
    """Yield a new ``h5py.File`` held in memory; on success its bytes go to ``final`` through
    ``atomic_path``. HDF5 writing to a full disk itself crashes the process (a segfault in
    h5py 3 / HDF5 2.0 when a dataset is released), so only Python writes the bytes, and a full
    disk is a plain ``OSError``. The bytes are those HDF5 writes to disk (same file image)."""
    import h5py

    name = f"{Path(final).name}.{uuid.uuid4().hex}"  # identifies the in-memory file only
    # No chunk cache: every chunk is placed in the file when it is written, in write order.
    # With a cache, chunks are placed when their dataset is closed, i.e. when Python frees
    # the object, and that order (hence the file's bytes) could differ between processes.
    options.setdefault("rdcc_nbytes", 0)
    with h5py.File(name, "w", driver="core", backing_store=False, **options) as h5:
        yield h5
        h5.flush()
        image = h5.id.get_file_image()
    write_bytes_atomic(final, image)


MACHINE_FAILURES = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a path component is a file, not a directory",
    errno.EEXIST: "it exists and is not a directory",
}
FIXES = {
    errno.ENOSPC: "free some space (or write elsewhere with --out) and run again: finished "
    "work is kept and the run resumes",
    errno.EDQUOT: "free some space or raise the quota (or write elsewhere with --out) and run "
    "again: finished work is kept and the run resumes",
    errno.EROFS: "choose a writable output directory (--out or output.dir)",
    errno.EACCES: "choose an output directory you may write (--out or output.dir), or fix "
    "its permissions",
    errno.EPERM: "choose an output directory you may write (--out or output.dir), or fix "
    "its permissions",
    errno.ENOTDIR: "choose another output directory (--out or output.dir), or move that file",
    errno.EEXIST: "choose another output directory (--out or output.dir), or move that file",
}


@contextlib.contextmanager
def storage_errors(output: Path) -> Iterator[None]:
    """Turn machine failures while writing ``output`` into a ``StorageError`` saying what to
    do. ``EEXIST`` only counts for ``output`` itself or its parents (anything else is a bug)."""
    output = Path(output)
    try:
        yield
    except OSError as exc:
        code = exc.errno
        if code not in MACHINE_FAILURES or (code == errno.EEXIST and not _is_output(exc, output)):
            raise
        raise StorageError(machine_failure_message(output, exc)) from exc


def _is_output(exc: OSError, output: Path) -> bool:
    return exc.filename is not None and Path(exc.filename) in (output, *output.parents)


def machine_failure_message(output: Path, exc: OSError) -> str:
    code = exc.errno or 0
    where = f"{exc.filename}" if exc.filename else f"a file under {output}"
    return (
        f"cannot write {output}: {MACHINE_FAILURES[code]} ({where}); {FIXES[code]}. "
        "Nothing half-written was published."
    )
