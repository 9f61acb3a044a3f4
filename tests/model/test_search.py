"""Embedding index, text search, filters and the contact sheet."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.corpus.queries import read_qrels
from pipeline.errors import ConfigError
from pipeline.model.embed import build_index, choose_index, embed_corpus
from pipeline.model.search import (
    CorpusIndex,
    candidate_ids,
    exact_top_k,
    haversine_km,
    load_index,
    parse_near,
    rank,
    search,
)
from pipeline.model.sheet import query_grades, render_chip, write_contact_sheet


def test_index_rows_align_with_corpus_keys(tiny_run, tiny_corpus):
    index = load_index(tiny_run)
    meta = pd.read_parquet(tiny_corpus / "metadata.parquet")
    corpus = meta[meta.split == "corpus"].sort_values(["sensor", "key"])
    assert list(index.table["key"]) == list(corpus["key"])
    assert list(index.table["id"]) == list(range(len(corpus)))
    assert index.index.ntotal == len(corpus) == index.vectors.shape[0]
    assert np.allclose(np.linalg.norm(index.vectors, axis=1), 1, atol=1e-5)
    assert index.info["kind"] == "flat" and index.info["sensors"] == {"s1": 26, "s2": 18}


def test_embedding_again_is_a_no_op(tiny_run, tiny_corpus):
    before = (tiny_run / "index" / "index.json").stat().st_mtime_ns
    embed_corpus(tiny_run, tiny_corpus)
    assert (tiny_run / "index" / "index.json").stat().st_mtime_ns == before


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_index_kinds_find_each_vector_itself(kind):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(400, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = build_index(vectors, kind)
    _, found = index.search(vectors[:20], 1)
    assert (found[:, 0] == np.arange(20)).mean() >= 0.9


def test_index_kind_follows_the_size():
    assert choose_index(1000) == "flat"
    assert choose_index(650_000) == "hnsw"


def test_search_returns_ranked_hits_with_captions(tiny_run):
    hits = search(tiny_run, "flooded farmland near a river", k=5)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    assert all(h.caption and h.sensor in ("s1", "s2") for h in hits)
    s1 = search(tiny_run, "trees", k=50, sensor="s1")
    assert len(s1) == 26 and {h.sensor for h in s1} == {"s1"}


def test_near_filters_by_distance(tiny_run):
    index = load_index(tiny_run)
    lon, lat = index.table.loc[0, ["lon", "lat"]]
    hits = search(tiny_run, "crops", k=100, near=(lon, lat), radius_km=2)
    assert hits and all(h.distance_km is not None and h.distance_km <= 2 for h in hits)
    assert len(hits) < len(index.table)


def test_filtered_rank_matches_exact_search():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    queries = rng.normal(size=(3, 8)).astype(np.float32)
    ids = np.array([3, 7, 9, 20, 41])
    scores, found = exact_top_k(vectors[ids], queries, 2, ids)
    full = queries @ vectors.T
    for row in range(3):
        assert found[row, 0] == ids[np.argmax(full[row, ids])]
        assert scores[row, 0] == pytest.approx(full[row, ids].max())


def test_rank_with_the_index_and_a_selector(tiny_run, monkeypatch):
    import pipeline.model.search as search_module

    index = load_index(tiny_run)
    ids = candidate_ids(index.table, "s2")
    query = np.asarray(index.vectors[ids[:2]])
    exact = rank(index, query, 5, ids)
    monkeypatch.setattr(search_module, "EXACT_MAX", 0)  # force the FAISS selector path
    via_faiss = rank(index, query, 5, ids)
    np.testing.assert_array_equal(exact[1], via_faiss[1])


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_selector_search_on_every_index_kind(kind, monkeypatch):
    import pipeline.model.search as search_module

    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = CorpusIndex(Path("."), build_index(vectors, kind), pd.DataFrame(), vectors, {})
    ids = np.arange(0, 300, 3, dtype=np.int64)
    monkeypatch.setattr(search_module, "EXACT_MAX", 0)
    _, found = rank(index, vectors[ids[:5]], 3, ids)
    assert np.isin(found[found >= 0], ids).all()
    assert (found[:, 0] == ids[:5]).mean() >= 0.8


def test_filters_and_coordinates():
    table = pd.DataFrame({"sensor": ["s1", "s2", "s2"], "lon": [0, 0, 10], "lat": [0, 1, 0]})
    assert candidate_ids(table) is None
    assert list(candidate_ids(table, "s2")) == [1, 2]
    assert list(candidate_ids(table, "any", near=(0, 0), radius_km=120)) == [0, 1]
    assert haversine_km(np.array([0.0]), np.array([1.0]), (0, 0))[0] == pytest.approx(111.2, 0.01)
    assert haversine_km(np.array([179.9]), np.array([0.0]), (-179.9, 0))[0] < 23
    assert parse_near("11.5,45") == (11.5, 45.0)
    with pytest.raises(ConfigError, match="LON,LAT"):
        parse_near("north")
    with pytest.raises(ConfigError, match="latitude"):
        parse_near("10,95")
    with pytest.raises(ConfigError, match="--sensor"):
        candidate_ids(table, "s3")


def test_chip_rendering():
    s2 = np.zeros((12, 4, 4), np.float32)
    s2[3] = 3000  # B04 bright: red tile
    tile = np.asarray(render_chip(s2 + np.arange(16).reshape(4, 4), "s2"))
    assert tile.shape == (4, 4, 3) and tile.dtype == np.uint8
    s1 = np.stack([np.full((4, 4), -8.0), np.full((4, 4), -15.0)]) + np.arange(16).reshape(4, 4)
    assert np.asarray(render_chip(s1.astype(np.float32), "s1")).shape == (4, 4, 3)


def test_contact_sheet_draws_full_captions_and_hit_details(tiny_run, tmp_path):
    hits = search(tiny_run, "built", k=7)
    corpus = load_index(tiny_run).corpus
    lines = write_contact_sheet(hits, corpus, tmp_path / "s.png", "built")
    meta = pd.read_parquet(corpus / "metadata.parquet").set_index("key")
    with Image.open(tmp_path / "s.png") as image:
        assert image.mode == "RGB" and image.width == 4 * 250 + 10 and image.height > 2 * 240
    assert len(lines) == 7
    for hit, drawn in zip(hits, lines, strict=True):
        text = " ".join(drawn)
        assert drawn[0].startswith(f"#{hit.rank} ") and f"{hit.score:.3f}" in drawn[0]
        assert hit.caption in text and hit.caption.split(". ")[-1] in drawn[-1]
        assert hit.key in "".join(drawn)
        row = meta.loc[hit.key]
        assert row["datetime"][:10] in text and row["place"] in text and row["country"] in text
        assert "relevant" not in text  # the title "built" is no corpus query: no marks


def test_relevance_marks_equal_the_qrels_grades(tiny_run, tmp_path):
    corpus = load_index(tiny_run).corpus
    queries = [json.loads(line) for line in (corpus / "queries.jsonl").read_text().splitlines()]
    query = next(q for q in queries if q["kind"] == "pair")
    qrels = read_qrels(corpus / "qrels" / "corpus.qrels")[query["qid"]]
    assert query_grades(corpus, query["text"]) == (query["qid"], qrels)
    assert query_grades(corpus, query["text"] + " please") is None
    hits = search(tiny_run, query["text"], k=20)
    lines = write_contact_sheet(hits, corpus, tmp_path / "s.png", query["text"], qrels)
    marks = [drawn[1] for drawn in lines]
    expected = [
        f"relevant (grade {qrels[h.key]})" if h.key in qrels else "not relevant" for h in hits
    ]
    assert marks == expected
    assert {"not relevant"} < set(marks)  # both kinds occur among the 20 hits


def test_collapse_keeps_the_best_hit_per_cell(tiny_run):
    cells = pd.read_parquet(load_index(tiny_run).corpus / "metadata.parquet").set_index("key")
    everything = search(tiny_run, "farmland under flood water", k=100)
    collapsed = search(tiny_run, "farmland under flood water", k=6, per_cell=True)
    assert len({cells.loc[h.key, "cell"] for h in everything}) < len(everything)  # repeats exist
    assert [h.rank for h in collapsed] == [1, 2, 3, 4, 5, 6]
    assert len({cells.loc[h.key, "cell"] for h in collapsed}) == 6
    assert (collapsed[0].key, collapsed[0].score) == (everything[0].key, everything[0].score)
    first_of_cell = {}
    for hit in everything:
        first_of_cell.setdefault(cells.loc[hit.key, "cell"], hit.key)
    assert [h.key for h in collapsed] == list(first_of_cell.values())[:6]
    assert all(a.score >= b.score for a, b in itertools.pairwise(collapsed))


def test_cli_search_writes_a_sheet_only_when_asked(tiny_run, tmp_path):
    before = sorted(p.relative_to(tiny_run) for p in tiny_run.rglob("*"))
    plain = CliRunner().invoke(app, ["search", "crops", "--run", str(tiny_run), "-k", "3"])
    assert plain.exit_code == 0 and "contact sheet" not in plain.output
    assert sorted(p.relative_to(tiny_run) for p in tiny_run.rglob("*")) == before
    sheet = tmp_path / "out" / "crops.png"
    args = ["search", "crops", "--run", str(tiny_run), "-k", "3", "--sheet", str(sheet)]
    asked = CliRunner().invoke(app, [*args, "--collapse-cells", "--json"])
    assert asked.exit_code == 0 and json.loads(asked.output)["sheet"] == str(sheet)
    with Image.open(sheet) as image:
        assert image.width == 3 * 250 + 10
    assert sorted(p.relative_to(tiny_run) for p in tiny_run.rglob("*")) == before


@pytest.mark.parametrize("query", ["", "   "])
def test_cli_search_rejects_an_empty_query(tiny_run, tmp_path, query):
    sheet = tmp_path / "s.png"
    result = CliRunner().invoke(
        app, ["search", query, "--run", str(tiny_run), "--sheet", str(sheet)]
    )
    assert result.exit_code == 2 and "query is empty" in result.output
    assert not sheet.exists()


def test_search_without_an_index_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="clm embed"):
        load_index(tmp_path)
