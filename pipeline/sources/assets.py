"""Resolve asset hrefs at read time: absolute URLs pass through, relative ones are joined
to the archive's base (a URL, a directory, or a loopback server started for the block).
``asset_location`` says where the bytes of an href live, for fingerprints: the chip stage
(keying its work files) and ``corpus.lock`` (recording the inputs) both use it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipeline.archive.serve import serve_directory


@dataclass(frozen=True)
class Resolver:
    """Joins relative hrefs to ``base`` (picklable, so worker processes can use it)."""

    base: str

    def __call__(self, href: str) -> str:
        if "://" in href or href.startswith("/"):
            return href
        if "://" in self.base:
            return self.base.rstrip("/") + "/" + href
        return str(Path(self.base) / href)


@contextlib.contextmanager
def asset_resolver(asset_base: str, archive_root: Path) -> Iterator[Resolver]:
    """Yield a resolver; ``asset_base == "serve"`` serves ``archive_root`` over HTTP meanwhile."""
    if asset_base != "serve":
        yield Resolver(asset_base)
        return
    with serve_directory(archive_root) as server:
        yield Resolver(server.url)


def asset_location(href: str, asset_base: str, archive_root: Path) -> str:
    """Where the bytes behind ``href`` live: a URL or a local path. With ``asset_base:
    serve`` that is the file under ``archive_root``, not the loopback URL of one run."""
    return Resolver(str(archive_root) if asset_base == "serve" else asset_base)(href)
