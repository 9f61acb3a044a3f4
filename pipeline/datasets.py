"""A PyTorch dataset over a built corpus, in TorchGeo's conventions (without depending on it).

>>> from pipeline.datasets import CrisisLandMarkCorpus
>>> ds = CrisisLandMarkCorpus("demo-output/corpus", split="train", sensor="s2")
>>> sample = ds[0]            # {"image": (12, 120, 120) float tensor, "caption": str, ...}
>>> ds.plot(sample).save("chip.png")

Samples are dicts (TorchGeo's ``NonGeoDataset`` style): ``image`` (float32 tensor as stored:
S2 reflectance x 10000, S1 dB), ``caption``, ``label`` (multi-hot over ``LABELS``),
``key``, ``sensor``, ``timestamp``, ``crs``, and with ``return_coords=True`` also
``coords`` (2, 120, 120: pixel-centre x, y in ``crs``) and ``lonlat`` (chip centre).
``transforms`` is applied to the whole sample dict. HDF5 shards are opened lazily, once per
process, so a ``DataLoader`` with ``num_workers > 0`` gives every worker its own handles.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from pipeline.corpus.preview import chip_rgb, contact_sheet
from pipeline.corpus.webdataset import read_records_by_key
from pipeline.errors import ConfigError, CorpusError
from pipeline.labels.taxonomy import REFERENCE_LABELS

Sample = dict[str, Any]
SPLITS = {"train": "train", "corpus": "corpus", "test": "corpus"}
SENSORS = ("s2", "s1")
CAPTIONS = ("reference", "sentence", "sampled")


class CrisisLandMarkCorpus(Dataset[Sample]):
    """The chips of one split and sensor of a corpus directory (``metadata.parquet`` + shards).

    Args:
        root: the corpus directory written by ``clm build``.
        split: ``train`` or ``corpus`` (the retrieval split; ``test`` is accepted as in the
            CrisisLandMark release).
        sensor: ``s2`` or ``s1`` (optical and SAR chips are unpaired).
        caption: ``reference`` (labels joined by ". "), ``sentence``, or ``sampled``: one of
            the chip's distinct caption variants drawn with ``torch``'s generator per call.
        transforms: a callable taking and returning the sample dict.
        return_coords: also return ``coords`` and ``lonlat``.
    """

    LABELS = REFERENCE_LABELS

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        sensor: str = "s2",
        caption: str = "reference",
        transforms: Callable[[Sample], Sample] | None = None,
        return_coords: bool = False,
    ) -> None:
        _check_choice("split", split, tuple(SPLITS))
        _check_choice("sensor", sensor, SENSORS)
        _check_choice("caption", caption, CAPTIONS)
        self.root, self.sensor, self.caption = Path(root), sensor, caption
        self.split = SPLITS[split]
        self.transforms, self.return_coords = transforms, return_coords
        self.rows = _select(self.root, self.split, sensor)
        records = read_records_by_key(self.root / "records.jsonl")
        locations = [records[k]["location"] for k in self.rows["key"]]
        self.rows["lon"] = [float(loc["lon"]) for loc in locations]
        self.rows["lat"] = [float(loc["lat"]) for loc in locations]
        self.variants = _variants(self.rows, records) if caption == "sampled" else {}
        self._files: dict[str, h5py.File] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Sample:
        row = self.rows.iloc[index]
        group = self._shard(row["shard"])[row["key"]]
        sample: Sample = {
            "image": torch.from_numpy(group["image"][()].astype(np.float32)),
            "caption": self._caption(row),
            "label": self._multi_hot(row["labels"]),
            "key": row["key"],
            "sensor": self.sensor,
            "timestamp": str(group.attrs["timestamp"]),
            "crs": int(group.attrs["crs"]),
        }
        if self.return_coords:
            sample["coords"] = torch.from_numpy(group["coords"][()].astype(np.float64))
            sample["lonlat"] = torch.tensor([row["lon"], row["lat"]], dtype=torch.float64)
        return self.transforms(sample) if self.transforms else sample

    def _shard(self, name: str) -> h5py.File:
        if os.getpid() != self._pid:  # a forked worker: never share the parent's handles
            self._files, self._pid = {}, os.getpid()
        if name not in self._files:
            self._files[name] = h5py.File(self.root / "shards" / name, "r")
        return self._files[name]

    def _caption(self, row: pd.Series) -> str:
        if self.caption == "reference":
            return str(row["caption_reference"])
        if self.caption == "sentence":
            return str(row["caption"])
        options = self.variants[row["key"]]
        return options[int(torch.randint(len(options), (1,)))]

    def _multi_hot(self, labels: Any) -> torch.Tensor:
        present = set(labels)
        return torch.tensor([label in present for label in self.LABELS], dtype=torch.float32)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_files"] = {}  # open HDF5 handles do not pickle (spawned workers reopen)
        return state

    def plot(self, sample: Sample, show_titles: bool = True) -> Image.Image:
        """The chip (S2 true colour, S1 VV/VH false colour) with its caption under it."""
        image = np.asarray(sample["image"], dtype=np.float32)
        sensor = sample.get("sensor") or ("s2" if image.shape[0] >= 12 else "s1")
        caption = str(sample.get("caption", "")) if show_titles else ""
        sheet, _ = contact_sheet([(chip_rgb(image, sensor), caption)], columns=1, tile_px=360)
        return sheet


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(choices)}")


def _select(root: Path, split: str, sensor: str) -> pd.DataFrame:
    """The metadata rows of one split and sensor, in key order."""
    path = root / "metadata.parquet"
    if not path.is_file() or not (root / "records.jsonl").is_file():
        raise CorpusError(
            f"{root} has no metadata.parquet/records.jsonl; build the corpus first (`clm build`)"
        )
    columns = ["key", "sensor", "split", "shard", "labels", "caption_reference", "caption"]
    meta = pd.read_parquet(path, columns=columns)
    rows = meta[(meta["split"] == split) & (meta["sensor"] == sensor)]
    return rows.sort_values("key", kind="stable").reset_index(drop=True)


def _variants(rows: pd.DataFrame, records: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Key -> the chip's distinct non-empty captions, in a fixed order (reference first)."""
    out = {}
    for key, reference in zip(rows["key"], rows["caption_reference"], strict=True):
        captions = records[key].get("captions", {})
        texts = [str(reference), *(str(captions[k]) for k in sorted(captions))]
        out[key] = [t for t in dict.fromkeys(texts) if t.strip()]
    return out
