"""Shard compression by measurement: write speed, read speed and size of the corpus shards
under every candidate HDF5 filter, on the chips of a built corpus.

    python benchmarks/shard_compression.py CORPUS [--out shard-compression.json] [--every 1]
        [--repeats 3] [--candidates blosc-zstd-1-bit,blosc-zstd-3-bit]

For each candidate the chips of every shard of ``CORPUS`` (every ``--every``-th chip) are
written into an in-memory HDF5 file exactly as the corpus stage writes a shard (a group per
key: ``image`` and ``coords``, one chunk per dataset) and the file image is kept; then every
``image`` is read back as the reference loader does (``f[key]["image"][:]``). Reported per
candidate: MB/s of raw image + coords written and read (median of ``--repeats``), the size
relative to the raw bytes and bytes per chip. Nothing is asserted; the table goes to
``docs/corpus-format.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np

from pipeline.compression import CANDIDATES, ShardCompression


def chips_of(shard: Path, every: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    with h5py.File(shard, "r") as h5:
        keys = list(h5)[::every]
        return [(k, h5[k]["image"][()], h5[k]["coords"][()]) for k in keys]


def write_image(
    chips: Sequence[tuple[str, np.ndarray, np.ndarray]], codec: ShardCompression
) -> bytes:
    name = f"bench-{uuid.uuid4().hex}"
    # As ``pipeline.storage.hdf5_atomic`` writes a shard: in memory, without a chunk cache.
    with h5py.File(
        name, "w", driver="core", backing_store=False, track_order=True, rdcc_nbytes=0
    ) as h5:
        for key, image, coords in chips:
            group = h5.create_group(key)
            group.create_dataset("image", data=image, **codec.dataset_options(image.shape))
            group.create_dataset("coords", data=coords, **codec.dataset_options(coords.shape))
        h5.flush()
        return bytes(h5.id.get_file_image())


def read_back(image: bytes, keys: Sequence[str]) -> float:
    """Seconds to read every ``image`` from the file image (through a file on tmpfs-like memory)."""
    start = time.perf_counter()
    with h5py.File(_BytesFile(image), "r") as h5:
        for key in keys:
            h5[key]["image"][:]
    return time.perf_counter() - start


class _BytesFile:
    """A file-like object over bytes, for h5py's Python file driver."""

    def __init__(self, data: bytes) -> None:
        import io

        self._buf = io.BytesIO(data)
        self.read, self.seek, self.tell = self._buf.read, self._buf.seek, self._buf.tell
        self.readinto = self._buf.readinto

    def write(self, data: bytes) -> int:  # pragma: no cover - read-only use
        raise OSError("read-only")

    def flush(self) -> None:
        pass

    def truncate(self, size: int | None = None) -> int:  # pragma: no cover
        raise OSError("read-only")


def measure(
    corpus: Path, every: int, repeats: int, names: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    shards = sorted((corpus / "shards").glob("*.h5"))
    rows = []
    for name in names or list(CANDIDATES):
        codec = CANDIDATES[name]
        write_s = [0.0] * repeats
        read_s = [0.0] * repeats
        size = raw = chips = 0
        for shard in shards:
            group = chips_of(shard, every)
            chips += len(group)
            raw += sum(i.nbytes + c.nbytes for _, i, c in group)
            for r in range(repeats):
                start = time.perf_counter()
                image = write_image(group, codec)
                write_s[r] += time.perf_counter() - start
                read_s[r] += read_back(image, [k for k, _, _ in group])
            size += len(image)
        w, rd = statistics.median(write_s), statistics.median(read_s)
        row = {
            "candidate": name,
            "filter": codec.describe(),
            "chips": chips,
            "write_mb_s": round(raw / w / 1e6, 1),
            "read_mb_s": round(raw / rd / 1e6, 1),
            "ratio": round(size / raw, 4),
            "bytes_per_chip": round(size / chips),
        }
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| candidate | size / raw | KB per chip | write MB/s | read MB/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['candidate']} | {r['ratio']:.3f} | {r['bytes_per_chip'] / 1000:.0f} | "
            f"{r['write_mb_s']:.0f} | {r['read_mb_s']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--out", type=Path, default=Path("shard-compression.json"))
    parser.add_argument("--every", type=int, default=1, help="use every n-th chip of a shard")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--candidates", help="comma-separated recipe names (default: all)", default=None
    )
    args = parser.parse_args(argv)
    names = args.candidates.split(",") if args.candidates else None
    if names and (unknown := sorted(set(names) - set(CANDIDATES))):
        parser.error(f"unknown recipes {unknown}; choose from {', '.join(CANDIDATES)}")
    rows = measure(args.corpus, args.every, args.repeats, names)
    args.out.write_text(
        json.dumps(
            {"hdf5plugin": hdf5plugin.version, "h5py": h5py.__version__, "rows": rows}, indent=2
        )
        + "\n"
    )
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
