"""Retrieval queries from the label space, and TREC qrels with graded relevance.

Queries (``queries.jsonl``): every reference label that occurs in the retrieval split,
every label pair that co-occurs on at least ``min_support`` chips (both in the reference
caption format, e.g. ``"crops. flooded area"``), and a natural-language paraphrase of
each (``"farmland under flood water"``). Crisis labels are labels like the others; a
query's ``crisis`` field names the crisis label it contains, for per-crisis reporting.

Relevance of a chip with labels L to a query with labels Q (``relevance``):
grade 2 when every query label is on the chip (Q ⊆ L), grade 1 when some are
(multi-label queries only), otherwise not relevant (not listed).

``qrels/corpus.qrels`` covers the whole retrieval split; ``qrels/corpus-s1.qrels`` and
``qrels/corpus-s2.qrels`` one sensor each. Lines are ``qid 0 docid grade``.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import CorpusError
from pipeline.labels.taxonomy import CRISIS_LABELS, REFERENCE_LABELS
from pipeline.storage import write_text_atomic

QUERIES_NAME = "queries.jsonl"
QRELS_DIR = "qrels"
RETRIEVAL_SPLIT = "corpus"
QREL_SETS = ("all", "s1", "s2")

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
    kind: str  # "single" | "pair" | "paraphrase"
    crisis: str | None = None


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


def generate_queries(label_sets: Iterable[Sequence[str]], min_support: int = 5) -> list[Query]:
    """Single labels present, label pairs on >= ``min_support`` chips, and their paraphrases."""
    sets = [frozenset(s) for s in label_sets]
    singles = Counter(label for s in sets for label in s)
    pairs = Counter(p for s in sets for p in itertools.combinations(sorted(s), 2))
    combos: list[tuple[str, ...]] = [(label,) for label in REFERENCE_LABELS if singles[label] > 0]
    combos += [p for p in sorted(pairs) if pairs[p] >= min_support]
    queries = [_query(labels, reference_text(labels), _kind(labels)) for labels in combos]
    queries += [_query(labels, paraphrase(labels), "paraphrase") for labels in combos]
    return [
        Query(f"q{i:04d}", q.text, q.labels, q.kind, q.crisis) for i, q in enumerate(queries, 1)
    ]


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


def build_qrels(
    queries: Sequence[Query], chips: pd.DataFrame
) -> dict[str, dict[str, dict[str, int]]]:
    """Qrel set (``all``, ``s1``, ``s2``) -> qid -> key -> grade, from ``key, sensor, labels``.

    Same grades as ``relevance``, computed on label bit masks so large corpora stay fast.
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
        for name in QREL_SETS:
            hit = grades > 0 if name == "all" else (grades > 0) & (sensors == name)
            if hit.any():
                qrels[name][query.qid] = dict(
                    zip(keys[hit].tolist(), grades[hit].tolist(), strict=True)
                )
    return qrels


def _all(chips: pd.DataFrame) -> set[str]:
    return {label for labels in chips["labels"] for label in labels}


def write_queries(corpus_dir: Path, min_support: int = 5) -> list[Path]:
    """Write ``queries.jsonl`` and ``qrels/*.qrels`` for the retrieval split; returns the paths."""
    corpus_dir = Path(corpus_dir)
    chips = retrieval_chips(corpus_dir)
    queries = generate_queries(chips["labels"], min_support)
    qrels = build_qrels(queries, chips)
    written = [corpus_dir / QUERIES_NAME]
    lines = [json.dumps(asdict(q), sort_keys=True) for q in queries]
    write_text_atomic(written[0], "\n".join(lines) + "\n")
    for name in QREL_SETS:
        path = qrels_path(corpus_dir, name)
        write_text_atomic(path, format_qrels(qrels[name]))
        written.append(path)
    return written


def retrieval_chips(corpus_dir: Path) -> pd.DataFrame:
    """key, sensor, labels of the retrieval split, sorted by key."""
    path = Path(corpus_dir) / "metadata.parquet"
    if not path.is_file():
        raise CorpusError(f"{path} is missing; build the corpus first (`clm build`)")
    meta = pd.read_parquet(path, columns=["key", "sensor", "split", "labels"])
    chips = meta[meta["split"] == RETRIEVAL_SPLIT].sort_values("key").reset_index(drop=True)
    if chips.empty:
        raise CorpusError(f"{path} has no chips in the {RETRIEVAL_SPLIT!r} split; rebuild")
    chips["labels"] = [list(labels) for labels in chips["labels"]]
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
    return [Query(**{**row, "labels": tuple(row["labels"])}) for row in rows]


def ensure_queries(corpus_dir: Path, min_support: int = 5) -> list[Query]:
    """The corpus queries, generating them (and the qrels) when absent or older than the corpus."""
    corpus_dir = Path(corpus_dir)
    queries = corpus_dir / QUERIES_NAME
    metadata = corpus_dir / "metadata.parquet"
    current = queries.is_file() and all(qrels_path(corpus_dir, n).is_file() for n in QREL_SETS)
    if not current or queries.stat().st_mtime < metadata.stat().st_mtime:
        write_queries(corpus_dir, min_support)
    return read_queries(corpus_dir)
