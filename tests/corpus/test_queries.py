"""Retrieval queries from the label space and graded TREC qrels."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from pipeline.corpus.queries import (
    Query,
    build_qrels,
    ensure_queries,
    format_qrels,
    generate_queries,
    location_queries,
    location_relevance,
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


def located_chips() -> pd.DataFrame:
    """Hand-built chips in three countries: a flood near Padova (a0-a2 and a4 in the event
    window), forest in Finland and Portugal, olive groves (223) in Portugal only (2 of 21
    chips: rare), vineyards (221) in Italy and Portugal, and twelve Finnish lake chips."""
    rows = [  # key, sensor, labels, country, place, events, land use, lon, lat, datetime
        ("a0", "s1", ["crops", "flooded area"], "Italy", "Padova", ["EMSR1"], [211], 11.9, 45.4, "2021-11-20"),
        ("a1", "s2", ["crops", "flooded area"], "Italy", "Padova", ["EMSR1"], [211], 11.9, 45.4, "2021-11-22"),
        ("a2", "s1", ["flooded area", "water"], "Italy", "Noventa", ["EMSR1"], [512], 11.9, 45.4, "2021-11-20"),
        ("a3", "s1", ["crops", "flooded area"], "Italy", "Padova", [], [211], 11.9, 45.4, "2020-05-01"),
        ("a4", "s2", ["crops"], "Italy", "Padova", ["EMSR1"], [211, 221], 11.9, 45.4, "2021-11-22"),
        ("f0", "s1", ["trees"], "Finland", "Tampere", [], [312], 23.7, 61.5, "2021-06-07"),
        ("f1", "s2", ["trees", "water"], "Finland", "Tampere", [], [312], 23.7, 61.5, "2021-06-07"),
        ("p0", "s1", ["trees"], "Portugal", "Pedrogao", [], [223, 221], -8.2, 39.9, "2022-06-30"),
        ("p1", "s2", ["crops", "trees"], "Portugal", "Pedrogao", [], [223], -8.2, 39.9, "2022-06-30"),
    ]  # fmt: skip
    rows += [
        (f"w{i}", "s1", ["water"], "Finland", "Tampere", [], [312, 512], 23.7, 61.5, "2021-06-07")
        for i in range(12)
    ]
    columns = ["key", "sensor", "labels", "country", "place", "crisis_events"]
    columns += ["labels_land_use", "lon", "lat", "datetime"]
    return pd.DataFrame(rows, columns=columns)


def test_location_queries_name_place_and_time():
    chips = located_chips()
    queries = location_queries(chips, min_support=2)
    texts = {q.text: q for q in queries}
    flood = texts["land under flood water near Padova in November 2021"]
    assert flood.kind == "event" and flood.event == "EMSR1" and flood.crisis == "flooded area"
    assert flood.near == pytest.approx((11.9, 45.4))
    assert texts["farmland under flood water near Padova in November 2021"].labels == (
        "crops",
        "flooded area",
    )
    assert {q.text for q in queries if q.kind == "region"} == {
        "forest in Finland",
        "forest in Portugal",
        "farmland in Italy",
        "a lake or river in Finland",
    }  # one Portuguese farmland chip and one Italian water chip: below min_support
    rare = [q for q in queries if q.kind == "rare"]
    assert [(q.text, q.land_use, q.country) for q in rare] == [
        ("olive groves in Portugal", 223, "Portugal")
    ]  # vineyards are in two countries: not region-specific
    assert location_queries(chips[["key", "sensor", "labels"]]) == []


@pytest.mark.parametrize(
    ("text", "grades"),
    [
        # the event's post-event chips only: a3 is flooded crops at Padova, but another time
        ("land under flood water near Padova in November 2021", {"a0": 2, "a1": 2, "a2": 2}),
        ("farmland under flood water near Padova in November 2021", {"a0": 2, "a1": 2, "a2": 1, "a4": 1}),
        ("forest in Portugal", {"p0": 2, "p1": 2}),  # not the Finnish forest
        ("olive groves in Portugal", {"p0": 2, "p1": 2}),
    ],
)  # fmt: skip
def test_location_grades_on_a_hand_built_case(text, grades):
    chips = located_chips()
    queries = generate_queries(chips["labels"], min_support=2, chips=chips)
    query = next(q for q in queries if q.text == text)
    assert query.located
    got = {row.key: location_relevance(query, row._asdict()) for row in chips.itertuples()}
    assert {k: g for k, g in got.items() if g} == grades
    qrels = build_qrels(queries, chips)
    assert qrels["all"][query.qid] == grades
    s1 = {k: g for k, g in grades.items() if chips.set_index("key").sensor[k] == "s1"}
    assert qrels["s1"][query.qid] == s1


def test_location_queries_follow_the_general_ones_and_round_trip(tmp_path):
    import shapely

    chips = located_chips()
    chips["split"] = "corpus"
    chips["geometry"] = shapely.to_wkb(
        [
            shapely.box(x - 0.01, y - 0.01, x + 0.01, y + 0.01)
            for x, y in zip(chips.lon, chips.lat, strict=True)
        ]
    )
    chips.drop(columns=["lon", "lat"]).to_parquet(tmp_path / "metadata.parquet")
    write_queries(tmp_path, min_support=2)
    queries = read_queries(tmp_path)
    kinds = [q.kind for q in queries]
    assert kinds.index("event") > max(i for i, k in enumerate(kinds) if k == "paraphrase")
    olive = next(q for q in queries if q.kind == "rare")
    assert olive.near == pytest.approx((-8.2, 39.9), abs=1e-4) and isinstance(olive.near, tuple)
    lines = (tmp_path / "queries.jsonl").read_text().splitlines()
    assert set(json.loads(lines[0])) == {"qid", "text", "labels", "kind", "crisis"}
    judged = read_qrels(qrels_path(tmp_path, "all"))
    assert judged[olive.qid] == {"p0": 2, "p1": 2}
