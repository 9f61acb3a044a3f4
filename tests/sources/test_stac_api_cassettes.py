"""Real recorded STAC API sessions (pystac-client's cassettes) replayed through the project's
search with the network blocked: vcrpy serves only the recorded interactions."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
import vcr

from pipeline.sources.base import SearchQuery
from pipeline.sources.selection import SelectionRules, select_scenes
from pipeline.sources.settings import ApiSettings
from pipeline.sources.stac_api import StacApiSource

pytestmark = pytest.mark.realdata

# Requests must match the recording exactly, body included (JSON compared as data).
STRICT = ["method", "scheme", "host", "port", "path", "query", "body"]
PC_SESSION = "test_item_search/TestItemSearch.test_datetime_results.yaml"
ES_SESSION = "test_cli/TestCLISearch.test_filter[inprocess].yaml"


def _replay(real_data, name: str, match_on: list[str]):
    recorder = vcr.VCR(record_mode="none", match_on=match_on)
    return recorder.use_cassette(str(real_data / "stac" / "pystac-client-cassettes" / name))


def _next_token_matches(r1, r2) -> bool:
    """Earth Search pages: the first search body is ours; a follow-up must carry the recorded
    ``next`` token (i.e. it really follows the server's next link)."""
    import json

    recorded = json.loads(r2.body or b"{}")
    sent = json.loads(r1.body or b"{}")
    return "next" not in recorded or sent.get("next") == recorded["next"]


def test_planetary_computer_search_yields_33_s2_scenes(real_data):
    source = StacApiSource.from_settings(ApiSettings(profile="planetary-computer"))
    query = SearchQuery(
        ("sentinel-2-l2a",),
        datetime(2019, 1, 1, 0, 0, 1, tzinfo=UTC),
        datetime(2019, 1, 1, 0, 0, 10, tzinfo=UTC),
    )
    with _replay(real_data, PC_SESSION, STRICT) as cassette:
        result = source.search_result(query)
        assert cassette.play_count == 1
    assert len(result.scenes) == 33 and not result.skipped and not result.truncated
    for scene in result.scenes:
        assert scene.sensor == "s2" and scene.collection == "sentinel-2-l2a"
        assert set(scene.assets) == {*scene.bands, "SCL"}
        assert scene.processing_baseline and scene.epsg > 32600
        assert scene.assets["B02"].transform and scene.assets["B02"].shape == (10980, 10980)
        assert scene.extra["signing"] == "planetary-computer" and scene.extra["tile"]
        assert ".blob.core.windows.net/" in scene.assets["B02"].href
        assert "?" not in scene.assets["B02"].href  # signed at read time, never recorded
    assert [s.datetime for s in result.scenes] == sorted(s.datetime for s in result.scenes)


def test_earth_search_filter_session_follows_next_page_to_s1_and_s2(real_data):
    source = StacApiSource.from_settings(ApiSettings(profile="earth-search", max_items=20))
    query = SearchQuery(
        ("sentinel-2-l2a", "sentinel-2-c1-l2a", "sentinel-1-grd"),
        datetime(2025, 7, 31, tzinfo=UTC),
        datetime(2025, 7, 31, 23, 59, tzinfo=UTC),
        max_cloud_cover=40,
    )
    recorder = vcr.VCR(record_mode="none")
    recorder.register_matcher("next_token", _next_token_matches)
    path = real_data / "stac" / "pystac-client-cassettes" / ES_SESSION
    with recorder.use_cassette(str(path), match_on=["method", "host", "path", "next_token"]) as c:
        result = source.search_result(query)
        assert c.play_count == 2  # first page + the `next` page
    kinds = Counter((s.collection, s.sensor) for s in result.scenes)
    assert kinds == {
        ("sentinel-2-l2a", "s2"): 6,
        ("sentinel-2-c1-l2a", "s2"): 6,
        ("sentinel-1-grd", "s1"): 3,
    }
    assert result.truncated  # stopped at max_items while the server still had a next page
    assert {s.collection for s in result.skipped} == {"sentinel-2-l1c"}  # not L2A: reported
    s1 = [s for s in result.scenes if s.sensor == "s1"]
    assert all(s.polarizations == ("HH",) and s.extra["requester_pays"] for s in s1)
    assert all(s.orbit_state == "ascending" and s.relative_orbit == 56 for s in s1)
    s2 = {s.collection: s for s in result.scenes if s.sensor == "s2"}
    assert s2["sentinel-2-l2a"].boa_offset_applied  # earthsearch:boa_offset_applied
    assert not s2["sentinel-2-c1-l2a"].boa_offset_applied
    assert all(s.processing_baseline == "05.11" for s in s2.values())
    assert s2["sentinel-2-c1-l2a"].assets["B8A"].href.endswith("/B8A.tif")


def test_selection_drops_hh_only_grd_with_a_reason(real_data):
    source = StacApiSource.from_settings(ApiSettings(profile="earth-search", max_items=20))
    query = SearchQuery(
        ("sentinel-2-l2a", "sentinel-2-c1-l2a", "sentinel-1-grd"),
        datetime(2025, 7, 31, tzinfo=UTC),
        datetime(2025, 7, 31, 23, 59, tzinfo=UTC),
    )
    recorder = vcr.VCR(record_mode="none")
    recorder.register_matcher("next_token", _next_token_matches)
    path = real_data / "stac" / "pystac-client-cassettes" / ES_SESSION
    with recorder.use_cassette(str(path), match_on=["method", "host", "path", "next_token"]):
        scenes = source.search_result(query).scenes
    selection = select_scenes(scenes, SelectionRules(), max_cloud_cover=30)
    reasons = {r.item_id: r.reason for r in selection.rejected}
    assert all(s.sensor == "s2" and (s.cloud_cover or 0) <= 30 for s in selection.kept)
    hh = [r for r in reasons.values() if r.startswith("HH/HV scene (polarizations ['HH'])")]
    assert len(hh) == 3 and all("selection.s1_hh_hv: as_vv_vh" in r for r in hh)
    policy = SelectionRules(
        s1_polarizations=(), s1_missing_polarization="fill", s1_hh_hv="as_vv_vh"
    )
    kept = select_scenes(scenes, policy, max_cloud_cover=30).kept
    mapped = [s.extra["s1_channels"] for s in kept if s.sensor == "s1"]
    assert mapped == [{"VV": "HH", "VH": None}] * 3  # the HH-only scenes: HH as VV, VH filled
    assert any(r.startswith("cloud cover") for r in reasons.values())


def test_all_items_skipped_names_the_reasons(real_data, tmp_path):
    """Every item of the recorded Earth Search session fails to normalise under a profile
    whose asset keys are wrong: `clm scenes` exits 2 and says why, not 'widen the search'."""
    from typer.testing import CliRunner

    from pipeline.cli import app

    profile = tmp_path / "wrong-keys.yaml"
    profile.write_text(
        "name: wrong-keys\ncloud_filter: cql2-json\n"
        "collections:\n  sentinel-2-l2a: {sensor: s2, assets: {B02: band2, B03: band3}}\n"
    )
    config = tmp_path / "run.yaml"
    config.write_text(
        "version: 1\nname: skipped\n"
        "source: {kind: stac_api, url: 'https://earth-search.aws.element84.com/v1',\n"
        f"         profile: '{profile}', max_items: 20}}\n"
        "search: {collections: [sentinel-2-l2a], datetime: 2025-07-31/2025-07-31}\n"
        "output: {dir: out}\n"
    )
    out = tmp_path / "scenes.parquet"
    recorder = vcr.VCR(record_mode="none")
    recorder.register_matcher("next_token", _next_token_matches)
    path = real_data / "stac" / "pystac-client-cassettes" / ES_SESSION
    with recorder.use_cassette(str(path), match_on=["method", "host", "path", "next_token"]):
        result = CliRunner().invoke(app, ["scenes", "-c", str(config), "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert "none could be normalized" in result.output and "widen" not in result.output
    assert "the item lacks asset(s) ['band2', 'band3'] (6 items)" in result.output
    assert "the item is in collection 'sentinel-2-l1c', which profile 'wrong-keys' does not" in (
        result.output
    )
    assert "scenes.selection.json" in result.output
