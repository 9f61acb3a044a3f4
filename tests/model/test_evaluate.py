"""Retrieval metrics: checked against hand computation, baselines, the report."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.corpus.queries import Query
from pipeline.model.evaluate import (
    METRICS,
    evaluate_run,
    format_report,
    headline,
    oracle_runs,
    per_query_scores,
    query_groups,
    saved_report,
)

QRELS = {"q1": {"a": 2, "b": 1, "c": 1}, "q2": {"d": 1}}
RUN = {"q1": ["b", "x", "a", "y", "c"], "q2": ["x", "d"]}


def ndcg(ranked, judged, k):
    """nDCG@k with linear gains and a log2(rank + 1) discount (trec_eval's definition)."""
    dcg = sum(judged.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(judged.values(), reverse=True)[:k]
    return dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal))


def average_precision(ranked, judged):
    hits, total = 0, 0.0
    for i, doc in enumerate(ranked, 1):
        if judged.get(doc, 0) > 0:
            hits += 1
            total += hits / i
    return total / len(judged)


def test_metrics_agree_with_hand_computation():
    ranking = {
        q: {doc: float(len(docs) - i) for i, doc in enumerate(docs)} for q, docs in RUN.items()
    }
    scores = per_query_scores(QRELS, ranking)
    assert list(scores.columns) == list(METRICS)
    for q, docs in RUN.items():
        judged = QRELS[q]
        assert scores.loc[q, "ndcg@10"] == pytest.approx(ndcg(docs, judged, 10))
        assert scores.loc[q, "map@1000"] == pytest.approx(average_precision(docs, judged))
        found = sum(1 for d in docs[:10] if d in judged)
        assert scores.loc[q, "recall@10"] == pytest.approx(found / len(judged))
    assert scores.loc["q2", "recall@10"] == 1.0
    # and the numbers themselves, worked out on paper
    assert scores.loc["q1", "ndcg@10"] == pytest.approx(2.386853 / 3.130930, abs=1e-5)
    assert scores.loc["q1", "map@1000"] == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert scores.loc["q2", "ndcg@10"] == pytest.approx(1 / math.log2(3))


def test_oracle_ranks_full_matches_first():
    table = pd.DataFrame(
        {
            "key": ["k0", "k1", "k2", "k3"],
            "sensor": ["s1", "s2", "s1", "s2"],
            "labels": [["trees"], ["crops", "water"], ["crops"], ["crops", "water", "built"]],
        }
    )
    queries = [Query("q0001", "crops. water", ("crops", "water"), "pair")]
    ranking = oracle_runs(table, queries)["all"]["q0001"]
    order = sorted(ranking, key=ranking.get, reverse=True)
    assert order[:3] == ["k1", "k3", "k2"]
    assert list(oracle_runs(table, queries)["s1"]["q0001"]) == ["k2", "k0"]


def test_a_query_missing_from_the_ranking_scores_zero():
    scores = per_query_scores(QRELS, {"q1": {"a": 1.0}})
    assert scores.loc["q2"].tolist() == [0.0] * len(METRICS)
    assert scores.loc["q1", "recall@10"] == pytest.approx(1 / 3)


def test_query_groups():
    queries = [
        Query("q1", "crops", ("crops",), "single"),
        Query("q2", "burned area", ("burned area",), "single", "burned area"),
        Query("q3", "land burned by a wildfire", ("burned area",), "paraphrase", "burned area"),
    ]
    assert query_groups(queries) == {
        "all": ["q1", "q2", "q3"],
        "land cover": ["q1"],
        "burned area": ["q2", "q3"],
        "paraphrase": ["q3"],
    }


def test_evaluate_run_reports_closp_and_baselines(tiny_run):
    report = evaluate_run(tiny_run, random_seeds=2, log=False)
    assert set(report["sets"]) == {"all", "s1", "s2"}
    for table in report["sets"].values():
        entry = table["all"]
        assert entry["oracle"]["ndcg@1000"] == pytest.approx(1.0)
        for method in ("closp", "random", "oracle"):
            assert set(entry[method]) == set(METRICS)
            assert all(0 <= v <= 1 for v in entry[method].values())
    assert saved_report(tiny_run) == report
    text = format_report(report)
    assert "nDCG@1000" in text and "oracle" in text and "flooded area" in text
    assert set(headline(report)) == {
        f"{s}/{m}" for s in ("all", "s1", "s2") for m in ("closp", "random", "oracle")
    }
    assert np.isfinite(list(headline(report).values())).all()
