"""Selection rules: every scene left out is left out for a recorded reason."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from pipeline.errors import ConfigError
from pipeline.sources.base import BandAsset, Scene, SearchQuery
from pipeline.sources.selection import (
    EventWindow,
    SelectionRules,
    dedupe_reprocessed,
    parse_selection,
    select_scenes,
    window_queries,
)

A = BandAsset("x.tif")


def _s2(item_id: str, when: str, baseline: str = "04.00", cloud: float = 5.0, **extra) -> Scene:
    return Scene(
        item_id=item_id, collection="sentinel-2-l2a", sensor="s2", platform="sentinel-2a",
        datetime=datetime.fromisoformat(when).replace(tzinfo=UTC), epsg=32632,
        bbox=(11.0, 45.0, 12.0, 46.0), geometry={}, assets={"B02": A}, cloud_cover=cloud,
        processing_baseline=baseline, orbit_state="descending", relative_orbit=22,
        extra={"datatake_id": f"GS2A_20220101T101031_033338_N{baseline}", "tile": "32TQR", **extra},
    )  # fmt: skip


def _s1(
    item_id: str, mode: str = "IW", pols: tuple[str, ...] = ("VV", "VH"), orbit: str = "ascending"
) -> Scene:
    return Scene(
        item_id=item_id, collection="sentinel-1-grd", sensor="s1", platform="sentinel-1a",
        datetime=datetime(2022, 1, 5, tzinfo=UTC), epsg=32632, bbox=(11.0, 45.0, 12.0, 46.0),
        geometry={}, assets={p: A for p in pols}, polarizations=pols, instrument_mode=mode,
        orbit_state=orbit, relative_orbit=51, extra={"datatake_id": item_id},
    )  # fmt: skip


def test_reprocessed_products_keep_the_newest_processing():
    old = _s2("S2A_OLD", "2022-01-01T10:10:31", baseline="04.00", processed="2022-01-01T12:00:00Z")
    new = _s2("S2A_NEW", "2022-01-01T10:10:31", baseline="05.10", processed="2023-05-01T12:00:00Z")
    other_tile = dataclasses.replace(old, item_id="S2A_OTHER", extra={**old.extra, "tile": "32TQS"})
    kept, superseded = dedupe_reprocessed([old, new, other_tile])
    assert {s.item_id for s in kept} == {"S2A_NEW", "S2A_OTHER"}
    assert [(r.item_id, r.reason) for r in superseded] == [
        ("S2A_OLD", "superseded by reprocessed S2A_NEW")
    ]


def test_rules_record_a_reason_for_every_scene_left_out():
    scenes = [
        _s2("cloudy", "2022-01-02T10:00:00", cloud=90),
        _s1("ew", mode="EW"),
        _s1("hh", pols=("HH",)),
        _s1("desc", orbit="descending"),
        _s1("good"),
    ]
    rules = SelectionRules(orbit_states=("ascending",))
    selection = select_scenes(scenes, rules, max_cloud_cover=50)
    assert [s.item_id for s in selection.kept] == ["good"]
    reasons = {r.item_id: r.reason for r in selection.rejected}
    assert reasons["cloudy"].startswith("cloud cover 90.0 > 50")
    assert reasons["ew"].startswith("instrument mode EW")
    assert reasons["hh"].startswith("HH/HV scene") and "selection.s1_hh_hv" in reasons["hh"]
    assert reasons["desc"].startswith("orbit descending")


def test_event_windows_split_searches_and_tag_pre_and_post():
    event = EventWindow("EMSR1", datetime(2022, 1, 10, tzinfo=UTC), pre_days=5, post_days=3)
    rules = SelectionRules(windows=(event,))
    query = SearchQuery(
        ("sentinel-2-l2a",), datetime(2021, 1, 1, tzinfo=UTC), datetime(2023, 1, 1, tzinfo=UTC)
    )
    (q,) = window_queries(query, rules)
    assert (q.start, q.end) == (datetime(2022, 1, 5, tzinfo=UTC), datetime(2022, 1, 13, tzinfo=UTC))
    scenes = [
        _s2("pre", "2022-01-06T10:00:00"),
        _s2("post", "2022-01-11T10:00:00"),
        _s2("late", "2022-02-01T10:00:00"),
    ]
    scenes = [dataclasses.replace(s, extra={**s.extra, "tile": s.item_id}) for s in scenes]
    selection = select_scenes(scenes, rules, max_cloud_cover=100)
    phases = {s.item_id: s.extra["event_windows"] for s in selection.kept}
    assert phases == {
        "pre": [{"event": "EMSR1", "phase": "pre"}],
        "post": [{"event": "EMSR1", "phase": "post"}],
    }
    assert {r.item_id: r.reason for r in selection.rejected} == {
        "late": "outside every event window"
    }


def test_parse_selection_from_config_and_archive_events():
    meta = {
        "aois": [{"name": "veneto", "bbox_wgs84": [11.9, 45.3, 11.95, 45.4]}],
        "events": [{"code": "EMSR9001", "aoi": "veneto", "event_date": "2021-11-18T04:00:00Z"}],
    }
    rules = parse_selection(
        {"orbit_states": ["Ascending"], "crisis_windows": {"pre_days": 10, "post_days": 12}},
        meta,
        "cfg",
    )
    assert rules.orbit_states == ("ascending",) and rules.s1_polarizations == ("VV", "VH")
    (w,) = rules.windows
    assert (w.name, w.pre_days, w.post_days, w.bbox) == (
        "EMSR9001",
        10,
        12,
        (11.9, 45.3, 11.95, 45.4),
    )
    with pytest.raises(ConfigError, match="orbit_states"):
        parse_selection({"orbit_states": ["sideways"]}, None, "cfg")
