"""Incremental refresh: build on the first half of the archive's dates, refresh when the second
half appears; the result equals a full build, earlier versions stay readable, and a refresh
with nothing new changes nothing."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pipeline.build import refresh
from pipeline.config import load_config
from pipeline.corpus.drift import check_outputs
from pipeline.corpus.lock import LOCK_FILE, read_lock
from pipeline.corpus.refresh import merged_scenes, plan_refresh
from pipeline.corpus.versions import versions
from pipeline.sources.select import read_scenes

CUT = "2022-01-01"  # the tiny archive: Veneto (flood) in Nov 2021, Portugal (fire) in Jun-Jul 2022


def as_it_was_before(archive, cut: str) -> None:
    """Rewrite the archive's item table and event list as they stood at ``cut``."""
    table = pq.read_table(archive / "items.parquet")
    when = pa.scalar(datetime.fromisoformat(cut).replace(tzinfo=UTC), table["datetime"].type)
    pq.write_table(table.filter(pc.less(table["datetime"], when)), archive / "items.parquet")
    meta = json.loads((archive / "archive.json").read_text())
    meta["events"] = [e for e in meta["events"] if e["event_date"] < cut]
    (archive / "archive.json").write_text(json.dumps(meta, indent=2))


def tree_state(corpus):
    """path -> (size, mtime) of every file outside work/ (the writer lock records who ran)."""
    return {
        p.relative_to(corpus).as_posix(): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in sorted(corpus.rglob("*"))
        if not p.relative_to(corpus).as_posix().startswith("work/")
        and not p.is_dir()
        and p.name != ".writer.lock"
    }


@pytest.fixture(scope="module")
def grown(tmp_path_factory, tiny_archive, make_corpus):
    """A corpus built on the first half, the archive grown to the full one, the refresh report."""
    import shutil

    root = tmp_path_factory.mktemp("refresh")
    archive = root / "archive"
    shutil.copytree(tiny_archive, archive)
    full_items, full_meta = (
        (archive / "items.parquet").read_bytes(),
        (archive / "archive.json").read_bytes(),
    )
    as_it_was_before(archive, CUT)
    corpus = make_corpus(archive, root / "refreshed")
    chip_files = {p.name: p.stat().st_mtime_ns for p in (corpus / "work" / "chips").glob("*.h5")}
    (archive / "items.parquet").write_bytes(full_items)
    (archive / "archive.json").write_bytes(full_meta)
    report = refresh(load_config(root / "refreshed.yaml"))
    return {
        "archive": archive,
        "corpus": corpus,
        "report": report,
        "chip_files": chip_files,
        "root": root,
    }


def test_refresh_adds_the_new_scenes_and_events(grown):
    plan = grown["report"].plan
    assert len(plan.new_items) == 4 and all("2022" in i for i in plan.new_items)
    assert len(plan.new_events) == 1 and "EMSR9002" in plan.new_events[0]
    diff = grown["report"].version.diff
    assert diff["version"] == "v002" and diff["previous"] == "v001"
    assert diff["removed"] == {} and diff["relabelled"] == 0
    assert diff["added"]["s2"]["labels"]["burned area"] > 0
    assert sorted(diff["items_added"]) == sorted(plan.new_items)


def test_refresh_equals_a_full_build(grown, make_corpus):
    full = make_corpus(grown["archive"], grown["root"] / "full")
    refreshed = grown["corpus"]
    assert (refreshed / LOCK_FILE).read_bytes() == (full / LOCK_FILE).read_bytes()
    for name in read_lock(full / LOCK_FILE)["outputs"]:
        assert (refreshed / name).read_bytes() == (full / name).read_bytes(), name


def test_existing_chips_and_full_shards_are_not_redone(grown):
    corpus = grown["corpus"]
    after = {p.name: p.stat().st_mtime_ns for p in (corpus / "work" / "chips").glob("*.h5")}
    assert {k: after[k] for k in grown["chip_files"]} == grown["chip_files"]
    assert len(after) == len(grown["chip_files"]) + 4
    first = corpus / "versions" / "v001" / "shards" / "s1-00000.h5"
    assert first.stat().st_ino == (corpus / "shards" / "s1-00000.h5").stat().st_ino


def test_earlier_version_stays_readable_and_intact(grown):
    corpus = grown["corpus"]
    assert [v.name for v in versions(corpus)] == ["v001", "v002"]
    assert os.readlink(corpus / "versions" / "current") == "v002"
    v1 = corpus / "versions" / "v001"
    assert check_outputs(read_lock(v1 / LOCK_FILE), v1) == []
    assert check_outputs(read_lock(corpus / LOCK_FILE), corpus / "versions" / "v002") == []


def test_second_refresh_with_nothing_new_changes_nothing(grown):
    corpus = grown["corpus"]
    before = tree_state(corpus)
    report = refresh(load_config(grown["root"] / "refreshed.yaml"))
    assert report.plan.is_empty and report.version is None
    assert "nothing new" in report.plan.describe()
    assert tree_state(corpus) == before


def test_merge_keeps_scenes_gone_upstream_and_drops_rejected(tiny_corpus):
    scenes = read_scenes(tiny_corpus / "sources.parquet")
    current, gone = scenes[:5], scenes[5:]
    merged = merged_scenes(current, scenes, dropped={scenes[0].item_id})
    assert [s.item_id for s in merged] == [s.item_id for s in scenes]
    assert [s.item_id for s in merged_scenes(current[1:], scenes, {scenes[0].item_id})] == [
        s.item_id for s in scenes[1:]
    ]
    lock = read_lock(tiny_corpus / LOCK_FILE)
    assert plan_refresh(lock, current + gone, ()).is_empty


def test_refresh_cli_on_an_up_to_date_corpus_says_so(
    tiny_corpus, tiny_archive, run_config, tmp_path
):
    import shutil

    from typer.testing import CliRunner

    from pipeline.cli import app

    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus, symlinks=True)
    output = {"dir": str(corpus), "shard_size": 8, "webdataset_shard_size": 8}
    config = run_config(tmp_path / "run.yaml", tiny_archive, corpus, output=output)
    result = CliRunner().invoke(app, ["refresh", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "nothing new since the last build" in result.output


@pytest.mark.slow
def test_first_refresh_without_a_corpus_builds_it(tiny_archive, run_config, tmp_path):
    out = tmp_path / "fresh"
    report = refresh(load_config(run_config(tmp_path / "run.yaml", tiny_archive, out)))
    assert len(report.plan.new_items) == 8 and report.version.name == "v001"
    assert (out / LOCK_FILE).is_file()
