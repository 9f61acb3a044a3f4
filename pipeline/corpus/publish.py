"""Atomic publishing: readers see the previous corpus or the new one, never a mix.

Every top-level corpus name (``metadata.parquet``, ``shards/``, ``corpus.h5``, ...,
``corpus.lock``) is a relative symlink ``NAME -> versions/current/NAME``, and
``versions/current`` is a symlink to the latest published version ``versions/vNNN/``, a
directory that never changes once it exists. A writer (holding the directory lock,
``pipeline.corpus.dirlock``):

1. ``open_staging``: ``versions/.staging/``, seeded with hard links to the current version
   (unchanged shards cost nothing) or, after an interrupted build, kept as it was (its
   finished shards are reused);
2. writes the corpus files, views and lock into the staging directory (files are replaced
   by rename, never rewritten in place, so the hard-linked versions stay untouched);
3. ``publish_staging``: if the staging tree equals the latest version nothing is published;
   otherwise it renames the staging directory to ``versions/vNNN`` (complete from that
   instant) and switches ``versions/current`` with one atomic rename of a symlink.

A failure or a kill at any point leaves the previous corpus visible and complete (for a
first build: no top-level corpus at all). A version directory that exists is complete; a
run that stopped between the rename and the switch is finished by the next writer
(``recover``).
"""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
from collections.abc import Collection
from pathlib import Path

from pipeline.corpus.dirlock import WriterLock
from pipeline.corpus.versions import (
    CURRENT_LINK,
    DIFF_FILE,
    LOCK_FILE,
    VERSIONS_DIR,
    Version,
    diff_versions,
    versions,
)
from pipeline.errors import CorpusError
from pipeline.storage import files_under, write_json_atomic

STAGING = ".staging"
SEEDING = ".seeding"


def staging_dir(corpus: Path) -> Path:
    return corpus / VERSIONS_DIR / STAGING


def current_version(corpus: Path) -> Path | None:
    current = corpus / VERSIONS_DIR / CURRENT_LINK
    return current.resolve() if current.is_dir() else None


def open_staging(held: WriterLock, resume: bool = True) -> Path:
    """The directory the next version is written into: kept from an interrupted run when
    ``resume``, else new, holding hard links to the files of the current version."""
    corpus = held.corpus
    recover(held)
    staging = staging_dir(corpus)
    if staging.is_dir() and resume:
        return staging
    for leftover in (staging, corpus / VERSIONS_DIR / SEEDING):
        if leftover.exists():
            shutil.rmtree(leftover)
    seeding = corpus / VERSIONS_DIR / SEEDING
    seeding.mkdir(parents=True)
    current = current_version(corpus)
    if current is not None:
        for path in version_files(current):
            link_file(path, seeding / path.relative_to(current))
    seeding.rename(staging)  # seeded completely, or not at all
    return staging


def version_files(version: Path) -> list[Path]:
    """The corpus files of a version directory (its ``diff.json`` excluded)."""
    return [p for p in files_under(version) if p.relative_to(version).as_posix() != DIFF_FILE]


def link_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # no hard links on this file system: copy
        shutil.copy2(source, target)


def keep_only(staging: Path, keep: Collection[str]) -> None:
    """Remove every file of ``staging`` whose relative path is not in ``keep`` (a view no
    longer configured, leftovers), then the directories left empty."""
    _prune(staging, staging, keep)


def _prune(directory: Path, staging: Path, keep: Collection[str]) -> None:
    """``keep_only`` below ``directory``: its subdirectories first, then its own entries."""
    with os.scandir(directory) as it:
        entries = list(it)
    for entry in entries:
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            _prune(path, staging, keep)
            if not any(path.iterdir()):
                path.rmdir()
        elif path.relative_to(staging).as_posix() not in keep:
            path.unlink()


def discard_temporaries(staging: Path) -> None:
    """Remove hidden entries (``.NAME.*.tmp`` files, ``.stac-staging/``) from ``staging``."""
    if not staging.is_dir():
        return
    for directory, subdirs, files in os.walk(staging):
        for name in [d for d in subdirs if d.startswith(".")]:
            subdirs.remove(name)  # not entered: removed whole
            path = Path(directory, name)
            if path.is_symlink():
                path.unlink()
            else:
                shutil.rmtree(path)
        for name in files:
            if name.startswith("."):
                Path(directory, name).unlink()


def publish_staging(held: WriterLock) -> Version:
    """Publish the staging directory as a new version, unless it equals the latest one."""
    corpus = held.corpus
    staging = staging_dir(corpus)
    if not (staging / LOCK_FILE).is_file():
        raise CorpusError(f"{staging} has no {LOCK_FILE}; nothing to publish (a bug)")
    discard_temporaries(staging)
    existing = versions(corpus)
    latest = existing[-1] if existing else None
    if latest is not None and same_tree(latest, staging):
        shutil.rmtree(staging)
        show(corpus, latest)
        return Version(latest.name, latest, False, json.loads((latest / DIFF_FILE).read_text()))
    name = f"v{_number(latest) + 1:03d}"
    diff = diff_versions(latest, staging, name)
    write_json_atomic(staging / DIFF_FILE, diff)
    final = corpus / VERSIONS_DIR / name
    staging.rename(final)  # the version is complete from this instant
    show(corpus, final)
    return Version(name, final, True, diff)


def _number(version: Path | None) -> int:
    match = re.fullmatch(r"v(\d+)", version.name) if version else None
    return int(match.group(1)) if match else 0


def same_tree(version: Path, staging: Path) -> bool:
    """Same files with the same bytes (the lock's checksums vouch for the outputs it lists)."""
    old_lock, new_lock = (version / LOCK_FILE).read_bytes(), (staging / LOCK_FILE).read_bytes()
    if old_lock != new_lock:
        return False
    old = {p.relative_to(version).as_posix(): p for p in version_files(version)}
    new = {p.relative_to(staging).as_posix(): p for p in version_files(staging)}
    if set(old) != set(new):
        return False
    checked = set(json.loads(new_lock).get("outputs", {})) | {LOCK_FILE}
    return all(
        rel in checked or os.path.samefile(old[rel], path) or filecmp.cmp(old[rel], path, False)
        for rel, path in new.items()
    )


# ---- the top level: symlinks through versions/current ----------------------------------------


def recover(held: WriterLock) -> None:
    """Finish a publish that stopped after its rename (point ``current`` at the latest
    version) and make the top-level names links into ``current`` (corpora written before
    this layout had real files there: they are replaced by links to the same content)."""
    for leftover in (held.corpus / VERSIONS_DIR).glob(".v*.tmp"):  # the previous layout
        shutil.rmtree(leftover)
    existing = versions(held.corpus)
    if existing:
        show(held.corpus, existing[-1])


def show(corpus: Path, version: Path) -> None:
    """Make ``version`` the corpus readers see: ``versions/current`` and the top-level links.

    A link to a name the current version lacks dangles, which readers see as absent: new
    names are linked before the switch and dropped ones unlinked after it, so every name
    appears or disappears with the one atomic switch of ``versions/current``."""
    names = top_level_names(version)
    for name in sorted(names):
        _link_name(corpus, name)
    _point_current(corpus / VERSIONS_DIR, version.name)
    for name in sorted(linked_names(corpus) - names):
        (corpus / name).unlink()


def top_level_names(version: Path) -> set[str]:
    return {p.name for p in version.iterdir() if p.name != DIFF_FILE and not p.name.startswith(".")}


def link_target(name: str) -> str:
    return f"{VERSIONS_DIR}/{CURRENT_LINK}/{name}"


def linked_names(corpus: Path) -> set[str]:
    return {
        p.name for p in corpus.iterdir() if p.is_symlink() and os.readlink(p) == link_target(p.name)
    }


def _point_current(root: Path, name: str) -> None:
    current = root / CURRENT_LINK
    if current.is_symlink() and os.readlink(current) == name:
        return
    _replace_with_link(current, name)


def _link_name(corpus: Path, name: str) -> None:
    path = corpus / name
    target = link_target(name)
    if path.is_symlink() and os.readlink(path) == target:
        return
    if path.is_dir() and not path.is_symlink():  # a directory of the previous layout
        aside = corpus / VERSIONS_DIR / f".previous-{name}"
        if aside.exists():
            shutil.rmtree(aside)
        path.rename(aside)
        _replace_with_link(path, target)
        shutil.rmtree(aside)
        return
    _replace_with_link(path, target)


def _replace_with_link(path: Path, target: str) -> None:
    tmp = path.with_name(f".{path.name}.link")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, path)
