"""Export directories outside the corpus, written whole under a temporary name, then renamed."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import ConfigError, CorpusError


def check_export_target(corpus: Path, out: Path | None, fmt: str) -> Path:
    """The export directory for ``fmt``: given, and neither the corpus nor inside it."""
    if out is None:
        raise ConfigError(
            f"`--format {fmt}` writes a separate directory; pass --out DIR (outside {corpus})"
        )
    if not (Path(corpus) / "metadata.parquet").is_file():
        raise CorpusError(
            f"{corpus} has no metadata.parquet; build the corpus first "
            "(`clm build --config CONFIG --out DIR`)"
        )
    corpus_dir, target = Path(corpus).resolve(), Path(out).resolve()
    if target == corpus_dir or corpus_dir in target.parents:
        raise ConfigError(
            f"--out {out} is inside the corpus {corpus}; the export must not change the corpus, "
            "choose a directory outside it"
        )
    return target


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``final``; on success it replaces ``final``."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
