"""Streaming training data: one WebDataset stream per sensor, deterministic and resumable.

A sensor stream reads its tar shards (``webdataset/{sensor}-{split}-*.tar``) sequentially,
pass after pass. Pass ``p`` visits the shards in a seeded order through a seeded shuffle
buffer; under DistributedDataParallel, rank ``r`` of ``w`` keeps every ``w``-th sample
(all ranks get the same count). Per-sample randomness (caption variant, flips) is seeded
by ``(seed, sensor, pass, sample index)``, so a stream restarted at ``(pass, offset)``
yields exactly the batches an uninterrupted one would: skipped samples are not decoded.
"""

from __future__ import annotations

import json
import queue
import tarfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.corpus.webdataset import WDS_DIR, decode_image, read_webdataset_index
from pipeline.model.closp import SensorBatch
from pipeline.model.errors import ConfigError

SENSOR_IDS = {"s2": 2, "s1": 1}


@dataclass(frozen=True)
class StreamSpec:
    """What one sensor stream reads and how it draws its randomness."""

    sensor: str
    shards: tuple[Path, ...]
    count: int  # samples in the split, all ranks together
    seed: int = 0
    rank: int = 0
    world_size: int = 1
    shuffle_buffer: int = 512
    flips: bool = True

    @property
    def per_rank(self) -> int:
        return self.count // self.world_size


@dataclass(frozen=True)
class RawSample:
    index: int  # position in the pass, before the rank split and the shuffle
    key: str
    members: dict[str, bytes]


def stream_specs(
    corpus_dir: Path, sensors: Sequence[str], split: str = "train", **options: Any
) -> dict[str, StreamSpec]:
    """A ``StreamSpec`` per sensor from ``webdataset/index.json``; an error for an empty one."""
    shards = read_webdataset_index(corpus_dir)
    specs = {}
    for sensor in sensors:
        mine = [s for s in shards if s["sensor"] == sensor and s["split"] == split]
        count = sum(int(s["count"]) for s in mine)
        if count == 0:
            raise ConfigError(
                f"{corpus_dir} has no {sensor} chips in the {split!r} split; "
                f"train on other sensors (--sensors) or rebuild the corpus"
            )
        paths = tuple(Path(corpus_dir) / WDS_DIR / s["path"] for s in mine)
        specs[sensor] = StreamSpec(sensor, paths, count, **options)
    return specs


def iter_tar(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) per sample of a WebDataset tar, in file order."""
    key, members = None, {}
    with tarfile.open(path, "r") as tar:
        for info in tar:
            if not info.isfile():
                continue
            name = Path(info.name).name
            sample, _, extension = name.partition(".")
            if key is not None and sample != key:
                yield key, members
                members = {}
            key = sample
            handle = tar.extractfile(info)
            members[extension] = handle.read() if handle else b""
    if key is not None:
        yield key, members


def iter_pass(spec: StreamSpec, pass_index: int) -> Iterator[RawSample]:
    """One pass of this rank's samples: seeded shard order, rank split, shuffle buffer."""
    rng = np.random.default_rng([spec.seed, SENSOR_IDS[spec.sensor], pass_index])
    order = rng.permutation(len(spec.shards))
    limit = spec.per_rank * spec.world_size
    buffer: list[RawSample] = []
    index = 0
    for shard in order:
        for key, members in iter_tar(spec.shards[shard]):
            if index < limit and index % spec.world_size == spec.rank:
                buffer.append(RawSample(index, key, members))
                if len(buffer) >= spec.shuffle_buffer:
                    yield buffer.pop(int(rng.integers(len(buffer))))
            index += 1
    rng.shuffle(buffer)
    yield from buffer


def decode(sample: RawSample, spec: StreamSpec, pass_index: int) -> tuple[np.ndarray, str, Any]:
    """(image, caption, (lon, lat)) with the sample's own seeded caption choice and flips."""
    rng = np.random.default_rng([spec.seed, SENSOR_IDS[spec.sensor], pass_index, sample.index])
    image = decode_image(sample.members)
    record = json.loads(sample.members["json"])
    image = mask_filled_bands(image, record)
    variants = caption_variants(record)
    caption = variants[int(rng.integers(len(variants)))]
    if spec.flips:
        if rng.random() < 0.5:
            image = image[:, :, ::-1]
        if rng.random() < 0.5:
            image = image[:, ::-1, :]
    location = record.get("location", {})
    return np.ascontiguousarray(image), caption, (location.get("lon"), location.get("lat"))


def mask_filled_bands(image: np.ndarray, record: dict[str, Any]) -> np.ndarray:
    """``image`` with the bands the polarisation policy filled (``sensor.filled_bands``) set
    to NaN: the model's inputs treat NaN as missing (``channels.s1_to_model``), never as the
    -50 dB of a real, very dark surface."""
    sensor = record.get("sensor")
    if not isinstance(sensor, dict) or not sensor.get("filled_bands"):
        return image
    out = image.astype(np.float32, copy=True)
    for band in sensor["filled_bands"]:
        out[list(sensor["bands"]).index(band)] = np.nan
    return out


def caption_variants(record: dict[str, Any]) -> list[str]:
    """The distinct non-empty caption renderings of a record, in a fixed order."""
    captions = record.get("captions", {})
    variants = [captions[k] for k in sorted(captions) if isinstance(captions[k], str)]
    unique = [v for v in dict.fromkeys(variants) if v.strip()]
    if not unique:
        unique = [". ".join(sorted(record.get("labels", [])))]
    return unique


def spec_captions(spec: StreamSpec) -> list[str]:
    """Every caption variant of the stream's samples (only the JSON members are read)."""
    captions: list[str] = []
    for path in spec.shards:
        with tarfile.open(path, "r") as tar:
            for info in tar:
                if info.isfile() and info.name.endswith(".json"):
                    handle = tar.extractfile(info)
                    captions += caption_variants(json.loads(handle.read() if handle else b"{}"))
    return captions


class SensorStream:
    """Batches of one sensor, pass after pass; ``state()`` / ``restore()`` for checkpoints."""

    def __init__(self, spec: StreamSpec, batch_size: int) -> None:
        self.spec = spec
        self.batch_size = min(batch_size, spec.per_rank)
        if self.batch_size < 1:
            raise ConfigError(
                f"the {spec.sensor} training split has {spec.count} chips, fewer than the "
                f"{spec.world_size} processes; use fewer processes or a larger corpus"
            )
        self.pass_index, self.offset = 0, 0
        self._iter: Iterator[RawSample] | None = None

    @property
    def batches_per_pass(self) -> int:
        return self.spec.per_rank // self.batch_size

    def state(self) -> dict[str, int]:
        return {"pass": self.pass_index, "offset": self.offset}

    def restore(self, state: dict[str, int]) -> None:
        self.pass_index, self.offset = int(state["pass"]), int(state["offset"])
        self._iter = None

    def next_batch(self) -> SensorBatch:
        """The next full batch; a pass's last partial batch is dropped."""
        if self.offset + self.batch_size > self.spec.per_rank:
            self.pass_index, self.offset, self._iter = self.pass_index + 1, 0, None
        if self._iter is None:
            self._iter = iter_pass(self.spec, self.pass_index)
            for _ in range(self.offset):  # resume: skip without decoding
                next(self._iter)
        samples = [
            decode(next(self._iter), self.spec, self.pass_index) for _ in range(self.batch_size)
        ]
        self.offset += self.batch_size
        return collate(samples)


def collate(samples: Sequence[tuple[np.ndarray, str, Any]]) -> SensorBatch:
    images = torch.from_numpy(np.stack([s[0] for s in samples]).astype(np.float32, copy=False))
    lonlat = torch.tensor([[float(v) for v in s[2]] for s in samples], dtype=torch.float32)
    return SensorBatch(images, [s[1] for s in samples], lonlat)


class PrefetchingStream:
    """A ``SensorStream`` whose next batches are read and decoded in a background thread
    (``depth`` ahead), overlapping I/O and decoding with the training step. Batches come in
    the same order; ``state()`` is the position of the last batch handed out."""

    def __init__(self, stream: SensorStream, depth: int = 2) -> None:
        self.stream, self.depth = stream, max(1, depth)
        self.spec, self.batch_size = stream.spec, stream.batch_size
        self._state = stream.state()
        self._queue: queue.Queue[Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def batches_per_pass(self) -> int:
        return self.stream.batches_per_pass

    def state(self) -> dict[str, int]:
        return dict(self._state)

    def restore(self, state: dict[str, int]) -> None:
        self.close()
        self.stream.restore(state)
        self._state = dict(state)

    def next_batch(self) -> SensorBatch:
        if self._thread is None:
            self._start()
        assert self._queue is not None
        item = self._queue.get()
        if isinstance(item, BaseException):
            self.close()
            raise item
        batch, self._state = item
        return batch

    def _start(self) -> None:
        self._queue, self._stop = queue.Queue(self.depth), threading.Event()
        self._thread = threading.Thread(target=self._work, args=(self._queue, self._stop))
        self._thread.daemon = True
        self._thread.start()

    def _work(self, out: queue.Queue[Any], stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                item: Any = (self.stream.next_batch(), self.stream.state())
                while not stop.is_set():
                    try:
                        out.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except Exception as exc:  # handed to the consumer, raised there
            out.put(exc)

    def close(self) -> None:
        """Stop the reader thread; the stream restarts from ``state()`` when used again."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self.stream.restore(self._state)
