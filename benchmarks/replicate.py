"""The scene set of a benchmark run, replicated ``m`` times so the work really multiplies.

Copy ``k`` of a scene is the same COGs served under another path (``rK/...``, a symlink to
the archive root inside the served directory) and another item id (``ID-xK``) and datatake
id, so the build's selection keeps every copy (it drops reprocessings of one datatake) and
every reader fetches every copy's bytes again: GDAL caches by URL, and the range server
counts the bytes of each path. Labels, crisis events and chip grid are the archive's own, so
copy ``k`` yields the same arrays as copy 0 under other chip keys.

Replication, not a bigger simulated archive, keeps the per-chip work constant across the
multipliers (same landscapes, same cloud and nodata mix, same kept fraction), so time and
memory from 1x to 16x measure the scaling of the code alone.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import stac_geoparquet.arrow

from pipeline.storage import atomic_path

DATATAKE_KEYS = ("s2:datatake_id", "s1:datatake_id")


@dataclass(frozen=True)
class SceneSet:
    """A replicated scene set: ``items`` (stac-geoparquet) served from ``root``."""

    root: Path
    items: Path
    multiplier: int
    item_ids: tuple[str, ...]
    asset_bytes: int  # the size of every COG the items reference, copies counted


def read_items(parquet: Path) -> list[dict[str, Any]]:
    """The STAC items of a stac-geoparquet file, as dicts, in file order."""
    table = pq.read_table(parquet)
    return list(stac_geoparquet.arrow.stac_table_to_items(table))


def pick_scenes(items: Sequence[dict[str, Any]], count: int | None) -> list[dict[str, Any]]:
    """``count`` items, as many of each collection as can be, spread evenly over each
    collection's items (sorted by id: areas and dates); all items when ``count`` is None."""
    ordered = sorted(items, key=lambda i: (i["collection"], i["id"]))
    if count is None or count >= len(ordered):
        return ordered
    groups = [
        [i for i in ordered if i["collection"] == c]
        for c in dict.fromkeys(i["collection"] for i in ordered)
    ]
    picked = []
    for n, group in enumerate(groups):
        share = count // len(groups) + (n < count % len(groups))
        step = len(group) / max(1, share)
        picked += [group[int(k * step)] for k in range(min(share, len(group)))]
    return picked


def replicate(archive: Path, items: Sequence[dict[str, Any]], m: int, root: Path) -> SceneSet:
    """Write ``root/items-xM.parquet`` with ``m`` copies of ``items``, servable from ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    copies = [_copy(item, k) for k in range(m) for item in items]
    for k in range(m):
        link = root / f"r{k}"
        if not link.exists():
            link.symlink_to(archive.resolve(), target_is_directory=True)
    path = root / f"items-x{m}.parquet"
    table = stac_geoparquet.arrow.parse_stac_items_to_arrow(copies)
    with atomic_path(path) as tmp:
        stac_geoparquet.arrow.to_parquet(table, tmp)
    size = sum((archive / a["href"]).stat().st_size for i in items for a in i["assets"].values())
    return SceneSet(root, path, m, tuple(i["id"] for i in copies), size * m)


def _copy(item: dict[str, Any], k: int) -> dict[str, Any]:
    """Copy ``k`` of ``item``: hrefs under ``rK/``, id and datatake id suffixed for k > 0."""
    out = copy.deepcopy(item)
    for asset in out["assets"].values():
        asset["href"] = f"r{k}/{asset['href']}"
    if k:
        out["id"] = f"{item['id']}-x{k}"
        props = out["properties"]
        for key in DATATAKE_KEYS:  # a prefix: the baseline suffix (_N04.00) stays last
            if props.get(key):
                props[key] = f"x{k}-{props[key]}"
    return out
