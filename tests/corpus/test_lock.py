"""corpus.lock: exact regeneration (`clm rebuild --lock`) and drift reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from pipeline.build import rebuild
from pipeline.cli import app
from pipeline.config import CORPUS_VIEWS, load_config
from pipeline.corpus.drift import SourceDriftError, check_inputs, check_outputs
from pipeline.corpus.lock import LOCK_FILE, config_from_lock, read_lock
from pipeline.schemas import schema_errors


def test_lock_matches_its_schema_and_lists_inputs_and_outputs(tiny_corpus):
    lock = json.loads((tiny_corpus / LOCK_FILE).read_text())
    assert schema_errors(lock, "lock.v1.schema.json") == []
    assert len(lock["items"]) == 8 and lock["watermark"]
    for item in lock["items"]:
        for asset in item["assets"].values():
            assert len(asset["sha256"]) == 64 and asset["size"] > 0
            assert not asset["href"].startswith("http"), "hrefs as the source has them"
    assert lock["labels"] and lock["events"]
    for name in ("metadata.parquet", "manifest.json", "corpus.h5", "stac/catalog.json"):
        assert name in lock["outputs"]
    assert any(name.startswith("shards/") for name in lock["outputs"])
    assert any(name.startswith("webdataset/") for name in lock["outputs"])
    assert check_inputs(lock) == [] and check_outputs(lock, tiny_corpus) == []


def test_the_lock_records_the_fingerprints_the_chips_were_cut_from(
    tiny_corpus, tiny_archive, tmp_path, run_config, monkeypatch
):
    """The chip workers' fingerprints go into the lock: the build process does not ask for
    any scene asset again (at archive scale, thousands of serial HEAD requests)."""
    import pipeline.corpus.lock as lock_module
    from pipeline.build import BuildPaths
    from pipeline.chips.stage import taken_fingerprints_path
    from pipeline.sources.assets import asset_location
    from pipeline.sources.select import read_scenes

    work = BuildPaths(tiny_corpus).work
    taken = json.loads(taken_fingerprints_path(work).read_text())
    lock = read_lock(tiny_corpus / LOCK_FILE)
    assert taken and set(taken) == {item["id"] for item in lock["items"]}
    for item in lock["items"]:  # keyed by item and band: never by a (signed) URL
        locked = {
            band: {k: v for k, v in a.items() if k != "href"} for band, a in item["assets"].items()
        }
        assert taken[item["id"]] == locked
    asked: list[str] = []
    real = lock_module.fingerprint
    monkeypatch.setattr(
        lock_module, "fingerprint", lambda loc, retry: asked.append(loc) or real(loc, retry)
    )
    config = load_config(
        run_config(tmp_path / "c.yaml", tiny_archive, tiny_corpus, output={"dir": str(tiny_corpus)})
    )
    scenes = read_scenes(BuildPaths(tiny_corpus).scenes)
    source = config.source
    scene_assets = {
        asset_location(a.href, source.asset_base, source.items.parent)
        for scene in scenes
        for a in scene.assets.values()
    }
    inputs = lock_module.fingerprint_inputs(config, BuildPaths(tiny_corpus).scenes, work)
    assert [i["assets"] for i in inputs.items] == [i["assets"] for i in lock["items"]]
    assert len(scene_assets) > 8 and not set(asked) & scene_assets, "asked a scene asset again"
    assert asked, "label products and events are still fingerprinted here"


def test_output_checksums_on_a_pool_equal_the_lock(tiny_corpus, monkeypatch):
    """The build hashes its outputs as tasks (a few files each here): same digests, same
    order, as hashing them one by one in the build process."""
    import concurrent.futures as cf

    import pipeline.corpus.lock as lock_module

    lock = read_lock(tiny_corpus / LOCK_FILE)
    views = lock["recipe"]["output"]["views"]
    serial = lock_module.output_checksums(tiny_corpus, views)
    monkeypatch.setattr(lock_module, "HASH_TASK_FILES", 7)
    with cf.ThreadPoolExecutor(2) as pool:
        pooled = lock_module.output_checksums(tiny_corpus, views, pool)
    assert list(pooled.items()) == list(serial.items())
    assert len(serial) > 3 * 7 and serial == lock["outputs"]


def test_recipe_in_the_lock_gives_back_the_run_config(
    tiny_corpus, tmp_path, run_config, tiny_archive
):
    original = load_config(
        run_config(
            tmp_path / "c.yaml",
            tiny_archive,
            tiny_corpus,
            output={
                "dir": str(tiny_corpus),
                "shard_size": 8,
                "webdataset_shard_size": 8,
                "views": list(CORPUS_VIEWS),
            },
        )
    )
    again = config_from_lock(read_lock(tiny_corpus / LOCK_FILE), tiny_corpus)
    assert again == original


def test_rebuild_from_the_lock_is_byte_identical(tiny_corpus, tmp_path):
    out = tmp_path / "rebuilt"
    result = CliRunner().invoke(
        app, ["rebuild", "--lock", str(tiny_corpus / LOCK_FILE), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "every output matches" in result.output
    assert (out / LOCK_FILE).read_bytes() == (tiny_corpus / LOCK_FILE).read_bytes()
    lock = read_lock(out / LOCK_FILE)
    for name in lock["outputs"]:
        assert (out / name).read_bytes() == (tiny_corpus / name).read_bytes(), name


def _tamper(cog) -> None:
    """Rewrite a COG with changed pixels (same size, same profile)."""
    with rasterio.open(cog) as src:
        profile, data = src.profile, src.read()
    data = np.where(data > 0, data + 1, data).astype(data.dtype)
    with rasterio.open(cog, "w", **profile) as dst:
        dst.write(data)


def test_rebuild_reports_a_changed_source_asset_item_by_item(copy_archive, tmp_path, make_corpus):
    archive = copy_archive()
    corpus = make_corpus(archive, tmp_path / "corpus")
    lock = read_lock(corpus / LOCK_FILE)
    item = next(i for i in lock["items"] if i["collection"] == "sentinel-2-l2a")
    _tamper(archive / item["assets"]["B04"]["href"])

    with pytest.raises(SourceDriftError) as caught:
        rebuild(corpus / LOCK_FILE, tmp_path / "rebuilt")
    (drift,) = caught.value.drift
    assert (drift.kind, drift.subject) == ("asset", item["id"])
    assert "B04" in drift.detail and item["assets"]["B04"]["href"] in drift.detail
    assert item["id"] in str(caught.value) and "--allow-drift" in str(caught.value)
    assert not (tmp_path / "rebuilt" / "metadata.parquet").exists(), "nothing built on drift"

    result = CliRunner().invoke(app, ["rebuild", "--lock", str(corpus / LOCK_FILE)])
    assert result.exit_code == 2 and item["id"] in result.output

    report = rebuild(corpus / LOCK_FILE, tmp_path / "anyway", allow_drift=True)
    assert [d.subject for d in report.input_drift] == [item["id"]]
    changed = {d.subject for d in report.output_drift}
    assert "metadata.parquet" in changed and any(s.startswith("shards/s2-") for s in changed)
    assert not any(s.startswith("shards/s1-") for s in changed), "S1 chips are unaffected"
