"""Retrieval queries from the label space and graded TREC qrels."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from pipeline.corpus.queries import (
    Query,
    build_qrels,
    ensure_queries,
    format_qrels,
    generate_queries,
    paraphrase,
    qrels_path,
    read_qrels,
    read_queries,
    relevance,
    write_queries,
)
from pipeline.errors import CorpusError
from pipeline.labels.taxonomy import REFERENCE_LABELS

SETS = [["crops", "water"]] * 3 + [["crops", "flooded area"]] * 5 + [["trees"], ["built", "trees"]]


def test_singles_pairs_with_support_and_paraphrases():
    queries = generate_queries(SETS, min_support=3)
    texts = [q.text for q in queries]
    singles = [q for q in queries if q.kind == "single"]
    assert [q.text for q in singles] == ["water", "trees", "crops", "built", "flooded area"]
    assert [q.text for q in queries if q.kind == "pair"] == ["crops. flooded area", "crops. water"]
    assert len([q for q in queries if q.kind == "paraphrase"]) == 7
    assert "farmland under flood water" in texts
    assert len({q.qid for q in queries}) == len(queries)
    flood = next(q for q in queries if q.text == "crops. flooded area")
    assert flood.crisis == "flooded area" and flood.labels == ("crops", "flooded area")


def test_paraphrases_read_naturally():
    assert paraphrase(["crops", "flooded area"]) == "farmland under flood water"
    assert paraphrase(["built", "trees"]) == "a town next to forest"
    assert paraphrase(["burned area"]) == "land burned by a wildfire"


@pytest.mark.parametrize(
    ("query", "chip", "grade"),
    [
        (["crops"], ["crops", "water"], 2),
        (["crops"], ["water"], 0),
        (["crops", "flooded area"], ["crops", "flooded area", "built"], 2),
        (["crops", "flooded area"], ["crops"], 1),
        (["crops", "flooded area"], ["trees"], 0),
    ],
)
def test_relevance_grades(query, chip, grade):
    assert relevance(query, chip) == grade


def chips_frame(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = [
        sorted(rng.choice(REFERENCE_LABELS, size=rng.integers(1, 4), replace=False).tolist())
        for _ in range(n)
    ]
    return pd.DataFrame(
        {
            "key": [f"k{i:03d}" for i in range(n)],
            "sensor": ["s1" if i % 3 else "s2" for i in range(n)],
            "labels": labels,
        }
    )


def test_vectorised_qrels_match_the_scalar_grading():
    chips = chips_frame()
    queries = generate_queries(chips["labels"], min_support=2)
    qrels = build_qrels(queries, chips)
    for query, (key, sensor, labels) in itertools.product(
        queries, zip(chips.key, chips.sensor, chips.labels, strict=True)
    ):
        grade = relevance(query.labels, labels)
        assert qrels["all"].get(query.qid, {}).get(key, 0) == grade
        assert qrels[sensor].get(query.qid, {}).get(key, 0) == grade


def test_trec_format_round_trip(tmp_path):
    qrels = {"q0002": {"b": 1, "a": 2}, "q0001": {"c": 2}}
    text = format_qrels(qrels)
    assert text.splitlines() == ["q0001 0 c 2", "q0002 0 a 2", "q0002 0 b 1"]
    path = tmp_path / "x.qrels"
    path.write_text(text)
    assert read_qrels(path) == qrels
    path.write_text("q1 0 a\n")
    with pytest.raises(CorpusError, match="expected 'qid 0 docid grade'"):
        read_qrels(path)


def test_write_queries_for_the_retrieval_split(tmp_path):
    chips = chips_frame(60)
    chips["split"] = ["train" if i % 5 == 0 else "corpus" for i in range(60)]
    chips.to_parquet(tmp_path / "metadata.parquet")
    written = write_queries(tmp_path, min_support=2)
    assert [p.name for p in written] == [
        "queries.jsonl",
        "corpus.qrels",
        "corpus-s1.qrels",
        "corpus-s2.qrels",
    ]
    queries = read_queries(tmp_path)
    assert all(isinstance(q, Query) and isinstance(q.labels, tuple) for q in queries)
    judged = {doc for docs in read_qrels(qrels_path(tmp_path, "all")).values() for doc in docs}
    assert judged <= set(chips[chips.split == "corpus"].key)
    s1 = read_qrels(qrels_path(tmp_path, "s1"))
    assert {d for docs in s1.values() for d in docs} <= set(chips[chips.sensor == "s1"].key)
    assert ensure_queries(tmp_path) == queries


def test_missing_inputs_are_clear_errors(tmp_path):
    with pytest.raises(CorpusError, match="build the corpus first"):
        write_queries(tmp_path)
    with pytest.raises(CorpusError, match="write_queries"):
        read_queries(tmp_path)
