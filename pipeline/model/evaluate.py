"""Text-to-image retrieval quality of a run (``clm evaluate``), next to two baselines.

    ensure_queries (queries.jsonl, qrels/) -> load_index -> closp_runs | random_runs |
    oracle_runs -> score (ir-measures) -> per sensor, per query group -> metrics.json + table

Rankings are scored with ir-measures (trec_eval through pytrec_eval) against the graded
qrels (``pipeline.corpus.queries``): nDCG@10/100/1000 (trec_eval: linear gains, log2
discount), mAP@1000 (AP over the top 1000, any grade >= 1 relevant) and Recall@10/100/1000, for the S1 index, the S2 index and both together ("all"). Groups:
every general query, land-cover queries, each crisis type, the paraphrased queries, and
the location-dependent queries (``location`` and one group per kind).
Baselines: ``random`` ranks by seeded random scores (mean over seeds); ``oracle``
ranks by label overlap with each chip's caption labels (location queries: by their
grade), the upper bound. A run with a location encoder (GeoCLOSP) is also scored as
``closp+near``: location queries ranked with their place as a soft prior
(``pipeline.model.search.geo_prior_rank``), the other queries as ``closp``. Every run is
also scored as ``closp+radius``: location queries ranked among the chips within
``DEFAULT_RADIUS_KM`` of their place only (the hard filter any model can use).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pipeline.corpus.queries import (
    LOCATION_KINDS,
    QREL_SETS,
    Query,
    ensure_queries,
    qrels_path,
    read_qrels,
)
from pipeline.errors import CorpusError
from pipeline.model.closp import CLOSP
from pipeline.model.errors import ConfigError
from pipeline.model.run import load_trained_model, read_metrics, update_metrics
from pipeline.model.search import (
    DEFAULT_RADIUS_KM,
    CorpusIndex,
    candidate_ids,
    geo_prior_rank,
    load_index,
    rank,
)
from pipeline.model.tracking import tracker_for_run

METRICS = ("ndcg@10", "ndcg@100", "ndcg@1000", "map@1000", "recall@10", "recall@100", "recall@1000")
MEASURES = {  # our names -> ir-measures (trec_eval) names
    "ndcg@10": "nDCG@10", "ndcg@100": "nDCG@100", "ndcg@1000": "nDCG@1000", "map@1000": "AP@1000",
    "recall@10": "R@10", "recall@100": "R@100", "recall@1000": "R@1000",
}  # fmt: skip
HEADERS = ("nDCG@10", "nDCG@100", "nDCG@1000", "mAP@1000", "R@10", "R@100", "R@1000")
DEPTH = 1000
METHODS = ("closp", "closp+near", "closp+radius", "random", "oracle")
NEAR, RADIUS = "closp+near", "closp+radius"
LOCATION_GROUP = "location"

Ranking = dict[str, dict[str, float]]  # qid -> key -> score


def evaluate_run(
    run_dir: Path, corpus_dir: Path | None = None, random_seeds: int = 5, log: bool = True
) -> dict[str, Any]:
    """Score the run's index on the corpus queries; writes the ``retrieval`` metrics section."""
    index = load_index(run_dir)
    corpus_dir = Path(corpus_dir) if corpus_dir else index.corpus
    queries = ensure_queries(corpus_dir)
    qrels = {name: read_qrels(qrels_path(corpus_dir, name)) for name in QREL_SETS}
    for judged in qrels.values():
        check_judged(judged, index.table)
    model = load_trained_model(run_dir)
    vectors = encode_queries(model, queries)
    closp = closp_runs(index, queries, vectors)
    runs = {
        "closp": [closp],
        "random": [random_runs(index.table, queries, seed) for seed in range(random_seeds)],
        "oracle": [oracle_runs(index.table, queries, qrels["all"])],
    }
    places = encode_places(model, queries)
    if places is not None:
        runs[NEAR] = [near_runs(index, queries, vectors, places, closp)]
    runs[RADIUS] = [radius_runs(index, queries, vectors, closp)]
    report = {
        "corpus": str(corpus_dir),
        "queries": len(queries),
        "depth": DEPTH,
        "grading": "2 = chip has every query label, 1 = some (multi-label queries)",
        "sets": {name: score_set(qrels[name], runs, name, queries) for name in QREL_SETS},
    }
    update_metrics(run_dir, "retrieval", report)
    if log:
        log_to_tracker(run_dir, report)
    return report


@torch.no_grad()
def encode_queries(model: CLOSP, queries: Sequence[Query]) -> np.ndarray:
    texts = [q.text for q in queries]
    model.text_encoder.warm_cache(texts)  # batched: much faster than one query at a time
    return model.encode_text(texts).float().cpu().numpy()


@torch.no_grad()
def encode_places(model: CLOSP, queries: Sequence[Query]) -> dict[str, np.ndarray] | None:
    """qid -> location embedding of the place a query names; ``None`` without a location encoder."""
    if model.location_encoder is None:
        return None
    located = [q for q in queries if q.near is not None]
    if not located:
        return {}
    lonlat = torch.tensor([q.near for q in located], dtype=torch.float32)
    encoded = model.encode_location(lonlat).float().cpu().numpy()
    return {q.qid: row for q, row in zip(located, encoded, strict=True)}


def near_runs(
    index: CorpusIndex,
    queries: Sequence[Query],
    vectors: np.ndarray,
    places: Mapping[str, np.ndarray],
    closp: Mapping[str, Ranking],
) -> dict[str, Ranking]:
    """``closp`` with the location prior for the queries that name a place."""
    keys = index.table["key"].to_numpy()
    rows = [i for i, q in enumerate(queries) if q.qid in places]
    runs = {name: dict(ranking) for name, ranking in closp.items()}
    if not rows:
        return runs
    located = [queries[i] for i in rows]
    where = np.stack([places[q.qid] for q in located])
    for name in QREL_SETS:
        _, ids = geo_prior_rank(index, vectors[rows], where, DEPTH, sensor_ids(index.table, name))
        runs[name].update(_ranking(located, keys, ids))
    return runs


def sensor_ids(table: pd.DataFrame, name: str) -> np.ndarray | None:
    """FAISS ids of one qrel set's documents (``None``: every document)."""
    if name == "all":
        return None
    return np.flatnonzero(table["sensor"].to_numpy() == name).astype(np.int64)


def closp_runs(
    index: CorpusIndex, queries: Sequence[Query], vectors: np.ndarray
) -> dict[str, Ranking]:
    """Qrel set -> the model's top ``DEPTH`` per query."""
    keys = index.table["key"].to_numpy()
    runs = {}
    for name in QREL_SETS:
        _, ids = rank(index, vectors, DEPTH, sensor_ids(index.table, name))
        runs[name] = _ranking(queries, keys, ids)
    return runs


def random_runs(table: pd.DataFrame, queries: Sequence[Query], seed: int) -> dict[str, Ranking]:
    rng = np.random.default_rng(seed)
    scores = rng.random((len(queries), len(table)), dtype=np.float32)
    return _runs_from_scores(table, queries, scores)


def radius_runs(
    index: CorpusIndex,
    queries: Sequence[Query],
    vectors: np.ndarray,
    closp: Mapping[str, Ranking],
    radius_km: float = DEFAULT_RADIUS_KM,
) -> dict[str, Ranking]:
    """``closp`` with the queries that name a place ranked among the chips near it only."""
    keys = index.table["key"].to_numpy()
    runs = {name: dict(ranking) for name, ranking in closp.items()}
    for row, query in enumerate(queries):
        if query.near is None:
            continue
        for name in QREL_SETS:
            sensor = "any" if name == "all" else name
            ids = candidate_ids(index.table, sensor, query.near, radius_km)
            _, found = rank(index, vectors[row : row + 1], DEPTH, ids)
            runs[name].update(_ranking([query], keys, found))
    return runs


def oracle_runs(
    table: pd.DataFrame,
    queries: Sequence[Query],
    judged: Mapping[str, Mapping[str, int]] | None = None,
) -> dict[str, Ranking]:
    """Rank by caption-label overlap: shared labels first, then Jaccard similarity; location
    queries by their grade in ``judged`` (their scope is not in the captions' labels)."""
    names = sorted({label for labels in table["labels"] for label in labels} | _labels(queries))
    bits = {label: 1 << i for i, label in enumerate(names)}
    masks = np.array([sum(bits[label] for label in set(ls)) for ls in table["labels"]], np.int64)
    scores = np.zeros((len(queries), len(table)), dtype=np.float32)
    for row, query in enumerate(queries):
        wanted = sum(bits[label] for label in set(query.labels))
        shared = np.bitwise_count(masks & wanted).astype(np.float32)
        union = np.bitwise_count(masks | wanted).astype(np.float32)
        scores[row] = shared + shared / np.maximum(union, 1)
        if query.located and judged is not None:
            grades = judged.get(query.qid, {})
            scores[row] = [grades.get(key, 0) for key in table["key"]]
    return _runs_from_scores(table, queries, scores)


def _labels(queries: Sequence[Query]) -> set[str]:
    return {label for query in queries for label in query.labels}


def _runs_from_scores(
    table: pd.DataFrame, queries: Sequence[Query], scores: np.ndarray
) -> dict[str, Ranking]:
    keys = table["key"].to_numpy()
    runs = {}
    for name in QREL_SETS:
        ids = sensor_ids(table, name)
        subset = scores if ids is None else scores[:, ids]
        order = top_k(subset, min(DEPTH, subset.shape[1]))
        runs[name] = _ranking(queries, keys, order if ids is None else ids[order])
    return runs


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` highest scores per row, best first."""
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))
    best = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, best, axis=1)


def _ranking(queries: Sequence[Query], keys: np.ndarray, ids: np.ndarray) -> Ranking:
    """qid -> key -> score, the score being the reversed rank position: ties in the
    underlying scores keep the order given (trec_eval would break them by doc id)."""
    return {
        query.qid: {str(keys[i]): float(len(row) - pos) for pos, i in enumerate(row) if i >= 0}
        for query, row in zip(queries, ids, strict=True)
    }


def check_judged(qrels: Mapping[str, Mapping[str, int]], table: pd.DataFrame) -> None:
    """An error when the index lacks a judged chip (index and qrels from different corpora)."""
    keys = set(table["key"])
    missing = {key for docs in qrels.values() for key in docs if key not in keys}
    if missing:
        raise CorpusError(
            f"{len(missing)} judged chips (e.g. {sorted(missing)[0]}) are not in the index; "
            "re-run `clm embed` on this corpus"
        )


def per_query_scores(qrels: Mapping[str, Mapping[str, int]], ranking: Ranking) -> pd.DataFrame:
    """Metrics per query (rows: the qids of ``qrels``; columns: ``METRICS``); a query the
    ranking misses scores 0."""
    import ir_measures

    measures = {ir_measures.parse_measure(MEASURES[m]): m for m in METRICS}
    scores = pd.DataFrame(0.0, index=sorted(qrels), columns=list(METRICS))
    for metric in ir_measures.iter_calc(list(measures), qrels, ranking):
        scores.loc[metric.query_id, measures[metric.measure]] = metric.value
    return scores


def query_groups(queries: Sequence[Query]) -> dict[str, list[str]]:
    """Group name -> qids: all (general queries), land cover, each crisis label present,
    paraphrases; then location (every location-dependent query) and one group per kind."""
    general = [q for q in queries if not q.located]
    groups = {"all": [q.qid for q in general]}
    groups["land cover"] = [q.qid for q in general if q.crisis is None]
    for crisis in sorted({q.crisis for q in general if q.crisis}):
        groups[crisis] = [q.qid for q in general if q.crisis == crisis]
    groups["paraphrase"] = [q.qid for q in general if q.kind == "paraphrase"]
    groups[LOCATION_GROUP] = [q.qid for q in queries if q.located]
    for kind in LOCATION_KINDS:
        groups[f"{LOCATION_GROUP}: {kind}"] = [q.qid for q in queries if q.kind == kind]
    return {name: qids for name, qids in groups.items() if qids}


def score_set(
    qrels: Mapping[str, Mapping[str, int]],
    runs: Mapping[str, Sequence[Mapping[str, Ranking]]],
    name: str,
    queries: Sequence[Query],
) -> dict[str, Any]:
    """Group -> method -> mean metric (random: mean over seeds), for one qrel set."""
    tables = {
        method: sum(per_query_scores(qrels, r[name]) for r in seeded) / len(seeded)
        for method, seeded in runs.items()
    }
    judged = set(qrels)
    result: dict[str, Any] = {}
    for group, qids in query_groups(queries).items():
        present = [q for q in qids if q in judged]
        if not present:
            continue
        located = group.startswith(LOCATION_GROUP)
        result[group] = {"queries": len(present)} | {
            method: {m: round(float(t.loc[present, m].mean()), 4) for m in METRICS}
            for method, t in tables.items()
            if method not in (NEAR, RADIUS) or located
        }
    return result


def format_report(report: Mapping[str, Any], groups: Sequence[str] | None = None) -> str:
    """The metric table: per set and query group, CLOSP next to the baselines."""
    widths = "{:<6} {:<17} {:>4}  {:<10}" + " {:>9}" * len(HEADERS)
    lines = [
        f"Text-to-image retrieval, {report['queries']} queries over {report['corpus']} "
        f"(relevance: {report['grading']})",
        widths.format("index", "queries", "n", "method", *HEADERS),
    ]
    for name, table in report["sets"].items():
        for group, entry in table.items():
            if groups is not None and group not in groups:
                continue
            for n, method in enumerate(m for m in METHODS if m in entry):
                head = (name, group, entry["queries"]) if n == 0 else ("", "", "")
                values = [f"{entry[method][m]:.4f}" for m in METRICS]
                lines.append(widths.format(*head, method, *values))
    return "\n".join(lines)


def log_to_tracker(run_dir: Path, report: Mapping[str, Any]) -> None:
    tracker = tracker_for_run(run_dir)
    flat = {
        f"{name}/{group}/{metric}".replace(": ", "/").replace(" ", "_").replace("@", "_at_"): entry[
            "closp"
        ][metric]
        for name, table in report["sets"].items()
        for group, entry in table.items()
        for metric in METRICS
    }
    tracker.log_metrics(flat, step=0)


def saved_report(run_dir: Path) -> dict[str, Any]:
    """The ``retrieval`` section a previous ``evaluate_run`` wrote."""
    report = read_metrics(run_dir).get("retrieval")
    if not report:
        raise ConfigError(f"{run_dir}/metrics.json has no retrieval report; run `clm evaluate`")
    return dict(report)


def headline(report: Mapping[str, Any]) -> dict[str, float]:
    """nDCG@1000 over all queries per index for CLOSP and the baselines (a small XCom)."""
    return {
        f"{name}/{method}": table["all"][method]["ndcg@1000"]
        for name, table in report["sets"].items()
        if "all" in table
        for method in METHODS
        if method in table["all"]
    }
