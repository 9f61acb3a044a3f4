"""Text-to-image search over a run's index (``clm search``), with an optional contact sheet.

    load_index -> encode the query (+ the --near location prior) -> candidate_ids (sensor,
    radius) -> rank -> hits -> write_contact_sheet (S2 as RGB from B04/B03/B02, S1 as
    VV / VH / VV-VH false colour)

``--near LON,LAT`` with a run that has a location encoder (GeoCLOSP) is a soft prior: a chip
scores cos(text, image) + w * cos(location, image), i.e. the query vector is the text
embedding plus ``w`` times the location embedding (``geo_prior_rank``; w = ``near_weight``,
default ``GEO_PRIOR_WEIGHT``). Nothing is excluded unless ``radius_km`` is given too. Runs
without a location encoder (CLOSP) can only filter: ``--near`` keeps the chips within
``radius_km`` (default ``DEFAULT_RADIUS_KM``) and leaves their order as the text gives it.

Filtered searches over at most ``EXACT_MAX`` candidates are exact (a dot product over the
stored embeddings); larger ones go through the FAISS index with an id selector.

``per_cell=True`` (``clm search --collapse-cells``) keeps only the best hit of each grid cell
(the corpus ``cell`` column: UTM zone, column, row), so the same place on other dates or from
the other sensor does not fill the list; it ranks ``CELL_OVERFETCH`` x k candidates, widening
until k cells are found or the candidates run out, and renumbers the kept hits 1..k.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError
from pipeline.model.run import INDEX_DIR

EXACT_MAX = 100_000
EARTH_RADIUS_KM = 6371.0088
DEFAULT_RADIUS_KM = 50.0
GEO_PRIOR_WEIGHT = 1.0
SENSOR_FILTERS = ("any", "s1", "s2")
CELL_OVERFETCH = 4


@dataclass(frozen=True)
class CorpusIndex:
    folder: Path
    index: Any  # faiss.Index
    table: pd.DataFrame  # row i = FAISS id i
    vectors: np.ndarray  # (N, D) float32, memory-mapped
    info: dict[str, Any]

    @property
    def corpus(self) -> Path:
        return Path(self.info["corpus"])


@dataclass(frozen=True)
class Hit:
    rank: int
    key: str
    sensor: str
    score: float
    caption: str
    sentence: str
    lon: float
    lat: float
    distance_km: float | None = None


def load_index(run_dir: Path) -> CorpusIndex:
    """The index a run's ``clm embed`` wrote; a clear error when there is none."""
    import faiss

    folder = Path(run_dir) / INDEX_DIR
    if not (folder / "index.json").is_file():
        raise ConfigError(
            f"{folder} holds no index; build it with `clm embed --run {run_dir}` first"
        )
    return CorpusIndex(
        folder=folder,
        index=faiss.read_index(str(folder / "index.faiss")),
        table=pd.read_parquet(folder / "keys.parquet"),
        vectors=np.load(folder / "embeddings.npy", mmap_mode="r"),
        info=json.loads((folder / "index.json").read_text()),
    )


def parse_near(text: str | None) -> tuple[float, float] | None:
    """``"LON,LAT"`` in degrees -> (lon, lat); an error naming the expected form."""
    if not text:
        return None
    try:
        lon, lat = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--near {text!r}: give LON,LAT in degrees, e.g. 11.9,45.4") from None
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ConfigError(f"--near {text!r}: longitude must be in [-180, 180], latitude [-90, 90]")
    return lon, lat


def haversine_km(lon: np.ndarray, lat: np.ndarray, near: tuple[float, float]) -> np.ndarray:
    lon1, lat1 = np.radians(lon), np.radians(lat)
    lon2, lat2 = np.radians(near[0]), np.radians(near[1])
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a)))


def candidate_ids(
    table: pd.DataFrame,
    sensor: str = "any",
    near: tuple[float, float] | None = None,
    radius_km: float = DEFAULT_RADIUS_KM,
) -> np.ndarray | None:
    """FAISS ids passing the sensor and distance filters; ``None`` when nothing is filtered."""
    if sensor not in SENSOR_FILTERS:
        raise ConfigError(f"--sensor {sensor!r}: use any, s1 or s2")
    if sensor == "any" and near is None:
        return None
    keep = np.ones(len(table), dtype=bool)
    if sensor != "any":
        keep &= table["sensor"].to_numpy() == sensor
    if near is not None:
        keep &= haversine_km(table["lon"].to_numpy(), table["lat"].to_numpy(), near) <= radius_km
    return np.flatnonzero(keep).astype(np.int64)


def rank(
    index: CorpusIndex, queries: np.ndarray, k: int, ids: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids), each (Q, k') with k' = min(k, candidates), best first."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    total = len(index.table) if ids is None else len(ids)
    k = min(k, total)
    if k == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    if ids is not None and len(ids) <= EXACT_MAX:
        return exact_top_k(np.asarray(index.vectors[ids]), queries, k, ids)
    if ids is None:
        scores, found = index.index.search(queries, k)
        return scores, found
    scores, found = index.index.search(queries, k, params=selector_params(index.index, ids))
    return scores, found


def selector_params(index: Any, ids: np.ndarray) -> Any:
    """FAISS search parameters restricting ``index`` to ``ids`` (typed per index kind)."""
    import faiss

    selector = faiss.IDSelectorBatch(ids)
    if isinstance(index, faiss.IndexIVF):
        return faiss.SearchParametersIVF(sel=selector, nprobe=index.nprobe)  # type: ignore[call-arg]
    if isinstance(index, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW(sel=selector, efSearch=index.hnsw.efSearch)  # type: ignore[attr-defined]
        return params
    return faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]


def geo_prior_rank(
    index: CorpusIndex,
    text_vectors: np.ndarray,
    location_vectors: np.ndarray,
    k: int,
    ids: np.ndarray | None = None,
    weight: float = GEO_PRIOR_WEIGHT,
) -> tuple[np.ndarray, np.ndarray]:
    """``rank`` by cos(text, image) + ``weight`` * cos(location, image): one inner product
    with the combined query vector, so every index kind serves it."""
    combined = np.asarray(text_vectors, np.float32) + weight * np.asarray(location_vectors)
    return rank(index, np.ascontiguousarray(combined, dtype=np.float32), k, ids)


def exact_top_k(
    vectors: np.ndarray, queries: np.ndarray, k: int, ids: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top ``k`` of ``vectors`` (ties: lower row first)."""
    scores = queries @ vectors.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(scores, order, axis=1)
    return top, (order if ids is None else ids[order])


def search(
    run_dir: Path,
    query: str,
    k: int = 20,
    sensor: str = "any",
    near: tuple[float, float] | None = None,
    radius_km: float | None = None,
    near_weight: float = GEO_PRIOR_WEIGHT,
    per_cell: bool = False,
) -> list[Hit]:
    """The ``k`` best chips for ``query`` in the run's index (see the module notes on ``near``
    and ``per_cell``)."""
    import torch

    from pipeline.model.run import load_trained_model

    if k < 1:
        raise ConfigError(f"-k must be at least 1, got {k}")
    if not query.strip():
        raise ConfigError("the query is empty: give words to look for, e.g. 'flooded farmland'")
    if radius_km is not None and radius_km <= 0:
        raise ConfigError(f"--radius-km must be positive, got {radius_km}")
    index = load_index(run_dir)
    model = load_trained_model(run_dir)
    prior = near is not None and model.location_encoder is not None and near_weight != 0
    if near is not None and not prior and radius_km is None:
        radius_km = DEFAULT_RADIUS_KM
    with torch.no_grad():
        vector = model.encode_text([query]).float().numpy()
        where = model.encode_location(torch.tensor([near])).float().numpy() if prior else None
    ids = candidate_ids(index.table, sensor, near if radius_km else None, radius_km or 0.0)

    def top(n: int) -> list[Hit]:
        if where is not None:
            scores, found = geo_prior_rank(index, vector, where, n, ids, near_weight)
        else:
            scores, found = rank(index, vector, n, ids)
        return hits_from(index.table, scores[0], found[0], near)

    return best_per_cell(top, k, corpus_cells(index.corpus)) if per_cell else top(k)


def best_per_cell(top: Callable[[int], list[Hit]], k: int, cells: Mapping[str, str]) -> list[Hit]:
    """The best hit of each of the ``k`` best cells: ``top(n)`` (the n best hits) widened
    ``CELL_OVERFETCH`` times at a go until k cells are found or the candidates run out."""
    fetch = k * CELL_OVERFETCH
    while True:
        hits = top(fetch)
        kept = one_per_cell(hits, cells)
        if len(kept) >= k or len(hits) < fetch:
            return kept[:k]
        fetch *= CELL_OVERFETCH


def corpus_cells(corpus_dir: Path) -> dict[str, str]:
    """Chip key -> grid cell, from the corpus metadata."""
    meta = pd.read_parquet(Path(corpus_dir) / "metadata.parquet", columns=["key", "cell"])
    return dict(zip(meta["key"], meta["cell"], strict=True))


def one_per_cell(hits: Sequence[Hit], cell_of: Mapping[str, str]) -> list[Hit]:
    """The first (best) hit of each cell, in order, renumbered from 1."""
    seen: set[str] = set()
    kept: list[Hit] = []
    for hit in hits:
        cell = cell_of.get(hit.key, hit.key)
        if cell not in seen:
            seen.add(cell)
            kept.append(replace(hit, rank=len(kept) + 1))
    return kept


def hits_from(
    table: pd.DataFrame, scores: np.ndarray, ids: np.ndarray, near: tuple[float, float] | None
) -> list[Hit]:
    rows = table.iloc[[i for i in ids if i >= 0]]
    distances = haversine_km(rows["lon"].to_numpy(), rows["lat"].to_numpy(), near) if near else None
    hits = []
    for n, (row, score) in enumerate(zip(rows.itertuples(), scores, strict=False)):
        distance = None if distances is None else round(float(distances[n]), 2)
        values = (row.key, row.sensor, float(score), row.caption, row.sentence)
        hits.append(Hit(n + 1, *values, float(row.lon), float(row.lat), distance))
    return hits


def format_hits(hits: Sequence[Hit]) -> str:
    lines = [f"{'#':>3}  {'sensor':6} {'score':>6}  {'key':70} caption"]
    for hit in hits:
        where = f"  ({hit.distance_km:.1f} km)" if hit.distance_km is not None else ""
        lines.append(
            f"{hit.rank:>3}  {hit.sensor:6} {hit.score:6.3f}  {hit.key:70} {hit.caption}{where}"
        )
    return "\n".join(lines)
