"""Retrieval queries from the label space, and TREC qrels with graded relevance.

Queries (``queries.jsonl``): every reference label that occurs in the retrieval split,
every label pair that co-occurs on at least ``min_support`` chips (both in the reference
caption format, e.g. ``"crops. flooded area"``), and a natural-language paraphrase of
each (``"farmland under flood water"``). Crisis labels are labels like the others; a
query's ``crisis`` field names the crisis label it contains, for per-crisis reporting.

Relevance of a chip with labels L to a query with labels Q (``relevance``):
grade 2 when every query label is on the chip (Q ⊆ L), grade 1 when some are
(multi-label queries only), otherwise not relevant (not listed).

Location-dependent queries (``location_queries``; kinds ``event``, ``region``, ``rare``) name
a place and, for crisis events, a time: ``"farmland under flood water near Padova in November
2021"`` (a crisis event: its post-event chips), ``"forest in Portugal"`` (a land-cover label
restricted to a country where it is found, when other countries have it too) and ``"olive
groves in Portugal"`` (a CORINE land-use class found in one country only and on at most
``RARE_MAX_FRACTION`` of the chips). Each carries ``near``, the (lon, lat) centre of the
chips of the place it names (where a user would point), for models with a location encoder.
A chip outside the query's scope (another country; not a post-event chip of the event) is
not relevant whatever its labels; inside it, the grades above apply (``rare``: grade 2 when
the chip has the land-use class). See ``location_relevance``.

``qrels/corpus.qrels`` covers the whole retrieval split; ``qrels/corpus-s1.qrels`` and
``qrels/corpus-s2.qrels`` one sensor each. Lines are ``qid 0 docid grade``.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import CorpusError
from pipeline.labels.taxonomy import (
    CRISIS_LABELS,
    LAND_COVER_LABELS,
    REFERENCE_LABELS,
    clc_by_code,
)
from pipeline.storage import write_text_atomic

QUERIES_NAME = "queries.jsonl"
QRELS_DIR = "qrels"
RETRIEVAL_SPLIT = "corpus"
QREL_SETS = ("all", "s1", "s2")
LOCATION_KINDS = ("event", "region", "rare")
LOCATION_COLUMNS = ("place", "country", "crisis_events", "labels_land_use", "lon", "lat")
RARE_MAX_FRACTION = 0.1
BASE_FIELDS = ("qid", "text", "labels", "kind", "crisis")

PHRASES = {
    "water": "a lake or river",
    "trees": "forest",
    "grass": "grassland",
    "flooded vegetation": "wetland",
    "crops": "farmland",
    "shrub and scrub": "shrubland",
    "built": "a town",
    "bare": "bare ground",
    "snow and ice": "snow and ice",
}
CRISIS_PHRASES = {  # (alone, as a modifier of a land-cover phrase)
    "flooded area": ("land under flood water", "under flood water"),
    "earthquake damage": ("buildings damaged by an earthquake", "damaged by an earthquake"),
    "burned area": ("land burned by a wildfire", "burned by a wildfire"),
}


@dataclass(frozen=True)
class Query:
    qid: str
    text: str
    labels: tuple[str, ...]
    kind: str  # "single" | "pair" | "paraphrase" | "event" | "region" | "rare"
    crisis: str | None = None
    near: tuple[float, float] | None = None  # (lon, lat) of the place a location query names
    country: str | None = None  # scope: only chips in this country are relevant
    event: str | None = None  # scope: only post-event chips of this crisis event
    land_use: int | None = None  # ``rare``: the CORINE level-3 code asked for

    @property
    def located(self) -> bool:
        return self.kind in LOCATION_KINDS

    def to_json(self) -> str:
        """One ``queries.jsonl`` line; location fields only when set (general lines unchanged)."""
        row = {k: v for k, v in asdict(self).items() if k in BASE_FIELDS or v is not None}
        return json.dumps(row, sort_keys=True)

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Query:
        near = row.get("near")
        return cls(**{**row, "labels": tuple(row["labels"]), "near": tuple(near) if near else None})


def reference_text(labels: Iterable[str]) -> str:
    """Labels in the reference caption format: sorted names joined by '. '."""
    return ". ".join(sorted(labels))


def paraphrase(labels: Sequence[str]) -> str:
    """A natural-language query: ``farmland under flood water``, ``forest next to a town``."""
    cover = [PHRASES.get(label, label) for label in sorted(labels) if label in PHRASES]
    crisis = [CRISIS_PHRASES[label] for label in sorted(labels) if label in CRISIS_PHRASES]
    text = " next to ".join(cover)
    if crisis and not text:
        return " and ".join(alone for alone, _ in crisis)
    return " ".join([text, *(modifier for _, modifier in crisis)])


def generate_queries(
    label_sets: Iterable[Sequence[str]],
    min_support: int = 5,
    chips: pd.DataFrame | None = None,
) -> list[Query]:
    """Single labels present, label pairs on >= ``min_support`` chips, and their paraphrases;
    then, when ``chips`` has the location columns, the location-dependent queries."""
    sets = [frozenset(s) for s in label_sets]
    singles = Counter(label for s in sets for label in s)
    pairs = Counter(p for s in sets for p in itertools.combinations(sorted(s), 2))
    combos: list[tuple[str, ...]] = [(label,) for label in REFERENCE_LABELS if singles[label] > 0]
    combos += [p for p in sorted(pairs) if pairs[p] >= min_support]
    queries = [_query(labels, reference_text(labels), _kind(labels)) for labels in combos]
    queries += [_query(labels, paraphrase(labels), "paraphrase") for labels in combos]
    if chips is not None:
        queries += location_queries(chips, min_support)
    return [replace(q, qid=f"q{i:04d}") for i, q in enumerate(queries, 1)]


def _kind(labels: Sequence[str]) -> str:
    return "single" if len(labels) == 1 else "pair"


def _query(labels: Sequence[str], text: str, kind: str) -> Query:
    crisis = next((label for label in labels if label in CRISIS_LABELS.values()), None)
    return Query("", text, tuple(sorted(labels)), kind, crisis)


def relevance(query_labels: Iterable[str], chip_labels: Iterable[str]) -> int:
    """2 if the chip has every query label, 1 if some (multi-label queries), else 0."""
    wanted, have = set(query_labels), set(chip_labels)
    shared = len(wanted & have)
    if wanted and shared == len(wanted):
        return 2
    return 1 if shared and len(wanted) > 1 else 0


def location_queries(chips: pd.DataFrame, min_support: int = 5) -> list[Query]:
    """Crisis events by place and month, land cover by country, rare regional land use.

    ``chips`` needs ``labels`` and ``LOCATION_COLUMNS``; without them there are none."""
    if not set(LOCATION_COLUMNS) <= set(chips.columns) or chips.empty:
        return []
    return [
        *event_queries(chips, min_support),
        *region_queries(chips, min_support),
        *rare_queries(chips, min_support),
    ]


def event_queries(chips: pd.DataFrame, min_support: int = 5) -> list[Query]:
    """Per crisis event: its crisis label, and that label on the event's commonest land
    cover, ``near <place> in <month of the first post-event chip>``."""
    queries = []
    for event in sorted({e for events in chips["crisis_events"] for e in events}):
        members = chips[[event in events for events in chips["crisis_events"]]]
        crisis = _most_common(
            label for ls in members["labels"] for label in ls if _is_crisis(label)
        )
        if crisis is None:
            continue
        hit = members[[crisis in ls for ls in members["labels"]]]
        month = pd.Timestamp(min(members["datetime"])).strftime("%B %Y")
        where = f"near {_most_common(hit['place'])} in {month}"
        scope = {"near": _centre(hit), "event": event, "crisis": crisis}
        queries.append(
            Query("", f"{CRISIS_PHRASES[crisis][0]} {where}", (crisis,), "event", **scope)
        )
        cover = Counter(label for ls in hit["labels"] for label in ls if label in PHRASES)
        if cover and cover.most_common(1)[0][1] >= min_support:
            labels = tuple(sorted((cover.most_common(1)[0][0], crisis)))
            queries.append(Query("", f"{paraphrase(labels)} {where}", labels, "event", **scope))
    return queries


def region_queries(chips: pd.DataFrame, min_support: int = 5) -> list[Query]:
    """A land-cover label in one country, where other countries have it too."""
    queries = []
    for label in LAND_COVER_LABELS:
        has = chips[[label in ls for ls in chips["labels"]]]
        counts = has["country"].value_counts()
        if len(counts) < 2:
            continue
        for country in sorted(counts[counts >= min_support].index):
            near = _centre(chips[chips["country"] == country])
            text = f"{PHRASES[label]} in {country}"
            queries.append(Query("", text, (label,), "region", near=near, country=country))
    return queries


def rare_queries(chips: pd.DataFrame, min_support: int = 5) -> list[Query]:
    """CORINE land-use classes found in one country only, on few chips."""
    codes = Counter(int(c) for codes in chips["labels_land_use"] for c in set(codes))
    queries = []
    for code, count in sorted(codes.items()):
        if not min_support <= count <= RARE_MAX_FRACTION * len(chips):
            continue
        has = chips[[code in set(map(int, cs)) for cs in chips["labels_land_use"]]]
        if has["country"].nunique() != 1:
            continue
        country = has["country"].iloc[0]
        text = f"{clc_by_code(code).name.lower()} in {country}"
        near = _centre(chips[chips["country"] == country])
        queries.append(Query("", text, (), "rare", near=near, country=country, land_use=code))
    return queries


def _is_crisis(label: str) -> bool:
    return label in CRISIS_LABELS.values()


def _most_common(values: Iterable[Any]) -> Any:
    counts = Counter(values)
    return min(counts, key=lambda v: (-counts[v], v)) if counts else None


def _centre(chips: pd.DataFrame) -> tuple[float, float]:
    return (round(float(chips["lon"].mean()), 5), round(float(chips["lat"].mean()), 5))


def location_relevance(query: Query, chip: Mapping[str, Any]) -> int:
    """Grade of a chip (``labels``, ``country``, ``crisis_events``, ``labels_land_use``) for
    a location query: 0 outside its scope, else the label grade (rare: has the class)."""
    if query.country is not None and chip["country"] != query.country:
        return 0
    if query.event is not None and query.event not in chip["crisis_events"]:
        return 0
    if query.land_use is not None:
        return 2 if query.land_use in {int(c) for c in chip["labels_land_use"]} else 0
    return relevance(query.labels, chip["labels"])


def build_qrels(
    queries: Sequence[Query], chips: pd.DataFrame
) -> dict[str, dict[str, dict[str, int]]]:
    """Qrel set (``all``, ``s1``, ``s2``) -> qid -> key -> grade, from ``key, sensor, labels``
    (and the location columns for location queries).

    Same grades as ``relevance`` / ``location_relevance``, computed on label bit masks so
    large corpora stay fast.
    """
    bits = {label: 1 << i for i, label in enumerate(sorted({*REFERENCE_LABELS, *_all(chips)}))}
    masks = np.array([sum(bits[label] for label in set(ls)) for ls in chips["labels"]], np.int64)
    keys, sensors = np.asarray(chips["key"]), np.asarray(chips["sensor"])
    qrels: dict[str, dict[str, dict[str, int]]] = {name: {} for name in QREL_SETS}
    for query in queries:
        wanted = sum(bits[label] for label in set(query.labels))
        shared = np.bitwise_count(masks & wanted)
        grades = np.where(shared == len(set(query.labels)), 2, np.where(shared > 0, 1, 0))
        if len(query.labels) == 1:
            grades = np.where(grades == 2, 2, 0)
        if query.located:
            grades = np.where(_in_scope(query, chips), grades, 0)
        for name in QREL_SETS:
            hit = grades > 0 if name == "all" else (grades > 0) & (sensors == name)
            if hit.any():
                qrels[name][query.qid] = dict(
                    zip(keys[hit].tolist(), grades[hit].tolist(), strict=True)
                )
    return qrels


def _in_scope(query: Query, chips: pd.DataFrame) -> np.ndarray:
    keep = np.ones(len(chips), dtype=bool)
    if query.country is not None:
        keep &= chips["country"].to_numpy() == query.country
    if query.event is not None:
        keep &= np.array([query.event in events for events in chips["crisis_events"]], bool)
    if query.land_use is not None:
        code = query.land_use
        keep &= np.array([code in set(map(int, cs)) for cs in chips["labels_land_use"]], bool)
    return keep


def _all(chips: pd.DataFrame) -> set[str]:
    return {label for labels in chips["labels"] for label in labels}


def write_queries(corpus_dir: Path, min_support: int = 5) -> list[Path]:
    """Write ``queries.jsonl`` and ``qrels/*.qrels`` for the retrieval split; returns the paths."""
    corpus_dir = Path(corpus_dir)
    chips = retrieval_chips(corpus_dir)
    queries = generate_queries(chips["labels"], min_support, chips)
    qrels = build_qrels(queries, chips)
    written = [corpus_dir / QUERIES_NAME]
    lines = [q.to_json() for q in queries]
    write_text_atomic(written[0], "\n".join(lines) + "\n")
    for name in QREL_SETS:
        path = qrels_path(corpus_dir, name)
        write_text_atomic(path, format_qrels(qrels[name]))
        written.append(path)
    return written


def retrieval_chips(corpus_dir: Path) -> pd.DataFrame:
    """key, sensor, labels (and, when recorded, place, country, crisis events, land use,
    datetime and the chip centre lon/lat) of the retrieval split, sorted by key."""
    import pyarrow.parquet as pq

    path = Path(corpus_dir) / "metadata.parquet"
    if not path.is_file():
        raise CorpusError(f"{path} is missing; build the corpus first (`clm build`)")
    wanted = ["key", "sensor", "split", "labels", *LOCATION_COLUMNS, "datetime", "geometry"]
    present = set(pq.read_schema(path).names)
    meta = pd.read_parquet(path, columns=[c for c in wanted if c in present])
    chips = meta[meta["split"] == RETRIEVAL_SPLIT].sort_values("key").reset_index(drop=True)
    if chips.empty:
        raise CorpusError(f"{path} has no chips in the {RETRIEVAL_SPLIT!r} split; rebuild")
    for column in ("labels", "crisis_events", "labels_land_use"):
        if column in chips:
            chips[column] = [list(values) for values in chips[column]]
    if "geometry" in chips:
        import shapely

        centres = shapely.centroid(shapely.from_wkb(chips.pop("geometry").to_numpy()))
        chips["lon"], chips["lat"] = shapely.get_x(centres), shapely.get_y(centres)
    return chips


def qrels_path(corpus_dir: Path, name: str) -> Path:
    suffix = "" if name == "all" else f"-{name}"
    return Path(corpus_dir) / QRELS_DIR / f"{RETRIEVAL_SPLIT}{suffix}.qrels"


def format_qrels(qrels: Mapping[str, Mapping[str, int]]) -> str:
    """TREC qrels text: ``qid 0 docid grade`` per line, sorted by qid and docid."""
    return "".join(
        f"{qid} 0 {doc} {grade}\n"
        for qid in sorted(qrels)
        for doc, grade in sorted(qrels[qid].items())
    )


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4:
            raise CorpusError(f"{path}:{number}: expected 'qid 0 docid grade', got {line!r}")
        qrels.setdefault(parts[0], {})[parts[2]] = int(parts[3])
    return qrels


def read_queries(corpus_dir: Path) -> list[Query]:
    path = Path(corpus_dir) / QUERIES_NAME
    if not path.is_file():
        raise CorpusError(
            f"{path} is missing; generate it with pipeline.corpus.queries.write_queries "
            "(`clm evaluate` does so when it is absent)"
        )
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [Query.from_json(row) for row in rows]


def ensure_queries(corpus_dir: Path, min_support: int = 5) -> list[Query]:
    """The corpus queries, generating them (and the qrels) when absent or older than the corpus
    (into a new published version when ``corpus_dir`` holds published versions)."""
    corpus_dir = Path(corpus_dir)
    queries = corpus_dir / QUERIES_NAME
    metadata = corpus_dir / "metadata.parquet"
    current = queries.is_file() and all(qrels_path(corpus_dir, n).is_file() for n in QREL_SETS)
    if not current or queries.stat().st_mtime < metadata.stat().st_mtime:
        from pipeline.corpus.export import export_view
        from pipeline.corpus.publish import current_version

        if current_version(corpus_dir) is None:
            write_queries(corpus_dir, min_support)
        else:  # part of the clm-hdf5 view: a new published version, under the writer lock
            export_view(corpus_dir, "clm-hdf5")
    return read_queries(corpus_dir)
