"""One writer per corpus directory: an exclusive OS file lock on ``CORPUS/.writer.lock``.

``build``, ``refresh``, ``rebuild`` and ``export`` (and every stage function the DAG tasks
call) write a corpus only while holding the lock. It is an ``flock`` on the file, so the
kernel releases it when the holder exits, however it exits: there is never a stale marker
to remove by hand. The file itself only records the holder (pid, host, start time,
command) so that a second writer can say who it is waiting for; it fails at once instead
of waiting. Readers (``clm inspect``, ``clm report``, training) take no lock: publishing
switches versions atomically (``pipeline.corpus.publish``).

The lock is re-entrant within a process (``build`` holds it while its stages take it again).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import CorpusBusyError
from pipeline.storage import storage_errors

LOCK_NAME = ".writer.lock"


@dataclass(frozen=True)
class WriterLock:
    """Proof that this process holds the writer lock of ``corpus``."""

    corpus: Path


_held: dict[Path, tuple[int, int]] = {}  # resolved corpus dir -> (fd, depth)


@contextlib.contextmanager
def corpus_writer(corpus: Path) -> Iterator[WriterLock]:
    """Write ``corpus`` as its only writer; machine failures (disk full, read-only, a file in
    the way) become one ``StorageError`` naming the path and the fix."""
    with storage_errors(Path(corpus)), writer_lock(corpus) as held:
        yield held


@contextlib.contextmanager
def writer_lock(corpus: Path) -> Iterator[WriterLock]:
    """Hold the writer lock of ``corpus`` (created if needed); ``CorpusBusyError`` if taken."""
    corpus = Path(corpus)
    corpus.mkdir(parents=True, exist_ok=True)
    key = corpus.resolve()
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
    else:
        _held[key] = (_acquire(corpus / LOCK_NAME), 1)
    try:
        yield WriterLock(corpus)
    finally:
        fd, depth = _held[key]
        if depth > 1:
            _held[key] = (fd, depth - 1)
        else:
            del _held[key]
            os.close(fd)  # closing the descriptor releases the flock


def _acquire(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = read_holder(path)
        raise CorpusBusyError(busy_message(path.parent, holder), holder) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(_me(), sort_keys=True) + "\n").encode(), 0)
    return fd


def _me() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])[:300],
    }


def read_holder(path: Path) -> dict[str, Any]:
    """What the lock file says about its holder ({} while it is still being written)."""
    try:
        data = json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return dict(data) if isinstance(data, dict) else {}


def busy_message(corpus: Path, holder: dict[str, Any]) -> str:
    who = (
        f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')}"
        f" ({holder.get('command')})"
        if holder
        else "another process (it has not recorded itself yet)"
    )
    return (
        f"corpus directory {corpus} is being written by {who}; only one build, refresh, rebuild "
        "or export may write a corpus directory at a time. Wait for it to finish, or stop it "
        f"(e.g. `kill {holder.get('pid', 'PID')}` on that host): the lock is released as soon as "
        "that process exits. Or write to another directory with --out. Reading the corpus "
        "(clm inspect, clm report, training) needs no lock."
    )


def holds_lock(corpus: Path) -> bool:
    return Path(corpus).resolve() in _held
