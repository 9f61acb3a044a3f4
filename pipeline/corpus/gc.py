"""Releasing chip pixels from the work area once the published corpus holds them.

A scene's work files (``work/chips/<item>.<inputs>.h5`` with the kept chips' pixels and
``.json`` with every chip row) let a rerun or a refresh resume without reading the scene
again. After a successful publish the pixels are a second copy of what the shards hold, so
(``output.work_chips: release``, the default, or ``clm gc CORPUS``) each pixel file whose
kept chips are all in the current version, with the same pixel checksums, is replaced by a
small stub marked ``released``. The rows file stays: the chip stage still resumes the
scene, and the shard writer copies those chips' compressed chunks from the published shards
(``pipeline.corpus.shards.ChipSources``). Nothing else in the work area is touched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import pandas as pd

from pipeline.chips.extract import RELEASED_ATTR
from pipeline.compression import COMPRESSION_ATTR
from pipeline.corpus.dirlock import WriterLock, corpus_writer
from pipeline.corpus.publish import current_version
from pipeline.errors import CorpusError
from pipeline.storage import hdf5_atomic


@dataclass(frozen=True)
class Released:
    files: int  # pixel files replaced by stubs now
    chips: int  # kept chips whose pixels they held
    bytes: int  # bytes freed
    kept: int  # pixel files left (a chip not, or not identically, in the published corpus)


def gc_corpus(corpus: Path) -> Released:
    """``clm gc CORPUS``: release the work pixels of a built corpus (takes the writer lock)."""
    corpus = Path(corpus)
    if current_version(corpus) is None:
        raise CorpusError(
            f"{corpus} holds no published corpus (no versions/current); nothing to release"
        )
    with corpus_writer(corpus) as held:
        return release_work_chips(held, corpus / "work" / "chips")


def release_work_chips(held: WriterLock, chip_dir: Path) -> Released:
    """Replace every work pixel file whose chips the current version holds by a stub."""
    version = current_version(held.corpus)
    if version is None or not chip_dir.is_dir():
        return Released(0, 0, 0, 0)
    meta = pd.read_parquet(version / "metadata.parquet", columns=["key", "pixel_sha256"])
    published = dict(zip(meta["key"], meta["pixel_sha256"], strict=True))
    files = chips = freed = kept = 0
    for path in sorted(chip_dir.glob("*.h5")):
        if path.name.startswith(".") or _is_released(path):
            continue
        rows = _kept_rows(path.with_suffix(".json"))
        if rows is None or any(published.get(k) != sha for k, sha in rows.items()):
            kept += 1
            continue
        size = path.stat().st_size
        _write_stub(path, len(rows))
        files, chips, freed = files + 1, chips + len(rows), freed + size - path.stat().st_size
    return Released(files, chips, freed, kept)


def _is_released(path: Path) -> bool:
    try:
        with h5py.File(path, "r") as h5:
            return bool(h5.attrs.get(RELEASED_ATTR, False))
    except OSError:  # unreadable: not ours to judge, the chip stage re-cuts it
        return True


def _kept_rows(rows_path: Path) -> dict[str, str] | None:
    """Key -> pixel checksum of the scene's kept chips; None without a rows file."""
    if not rows_path.is_file():
        return None
    rows = json.loads(rows_path.read_text())
    return {r["key"]: r["pixel_sha256"] for r in rows if r["rejected"] is None}


def _write_stub(path: Path, chips: int) -> None:
    with h5py.File(path, "r") as h5:
        recipe = h5.attrs.get(COMPRESSION_ATTR)
    with hdf5_atomic(path) as stub:
        stub.attrs[RELEASED_ATTR] = True
        stub.attrs["chips"] = chips
        if recipe is not None:
            stub.attrs[COMPRESSION_ATTR] = recipe
