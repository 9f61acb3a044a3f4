"""Search survives what real services do (429 with Retry-After, 503, resets, truncated
bodies), fails clearly when they persist, and never returns a partial result as complete."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from pipeline.errors import SourceError
from pipeline.sources.base import SearchQuery
from pipeline.sources.retry import retry_after_seconds
from pipeline.sources.settings import ApiSettings, RetryPolicy
from pipeline.sources.stac_api import StacApiSource

FAST = RetryPolicy(max_attempts=4, backoff_s=0.01, backoff_max_s=2.0, jitter_s=0.01, timeout_s=5)
QUERY = SearchQuery(
    ("sentinel-2-l2a", "sentinel-1-grd"),
    datetime(2020, 1, 1, tzinfo=UTC),
    datetime(2023, 12, 31, tzinfo=UTC),
)


def _source(url: str, policy: RetryPolicy = FAST) -> StacApiSource:
    return StacApiSource.from_settings(ApiSettings(url=url, profile="clm-archive", retry=policy))


def _ids(result) -> list[str]:
    return [s.item_id for s in result.scenes]


def test_transient_failures_during_paging_give_the_identical_result(fake_stac_api):
    with fake_stac_api(page_size=2) as api:
        clean = _source(api.url).search_result(QUERY)
        api.faults.requests.clear()
        api.faults.queue.extend(["503", None, "reset", "truncate", None, "badjson", "503"])
        faulty = _source(api.url).search_result(QUERY)
    assert len(clean.scenes) == 8 and _ids(faulty) == _ids(clean)
    assert faulty.scenes == clean.scenes
    assert len(api.faults.requests) == 4 + 5  # 4 pages + 5 retried failures


def test_429_waits_for_retry_after(fake_stac_api):
    with fake_stac_api(page_size=10) as api:
        api.faults.queue.append("429")
        started = time.monotonic()
        result = _source(api.url).search_result(QUERY)
        waited = time.monotonic() - started
    assert len(result.scenes) == 8 and waited >= 1.0  # Retry-After: 1, backoff only 0.01 s


def test_persistent_503_raises_after_the_attempts(fake_stac_api):
    with fake_stac_api() as api:
        api.faults.always = "503"
        with pytest.raises(SourceError, match="still failing after 4 attempts: HTTP 503"):
            _source(api.url).search_result(QUERY)
        assert len(api.faults.requests) == 4


def test_a_page_failing_mid_pagination_raises_instead_of_returning_fewer(fake_stac_api):
    with fake_stac_api(page_size=2) as api:
        api.faults.queue.extend([None, None, "503", "503", "503", "503"])
        with pytest.raises(SourceError, match="still failing"):
            _source(api.url).search_result(QUERY)


def test_permanent_client_errors_are_not_retried(fake_stac_api):
    with fake_stac_api() as api:
        api.faults.always = "400"
        with pytest.raises(SourceError, match="HTTP 400"):
            _source(api.url).search_result(QUERY)
        assert len(api.faults.requests) == 1


def test_fewer_items_than_the_server_matched_is_an_error(fake_stac_api):
    with (
        fake_stac_api(page_size=3, matched=12) as api,
        pytest.raises(SourceError, match="reported 12 matching items but pagination returned 8"),
    ):
        _source(api.url).search_result(QUERY)


def test_max_items_is_reported_as_truncated(fake_stac_api):
    with fake_stac_api(page_size=3) as api:
        source = StacApiSource.from_settings(
            ApiSettings(url=api.url, profile="clm-archive", retry=FAST, max_items=4)
        )
        result = source.search_result(QUERY)
    assert len(result.scenes) == 4 and result.truncated


def test_cloud_filter_reaches_the_api_only_for_optical_searches(fake_stac_api):
    with fake_stac_api(page_size=10) as api:
        source = _source(api.url)
        source.search_result(SearchQuery(("sentinel-2-l2a",), QUERY.start, QUERY.end, None, 30))
        source.search_result(SearchQuery(QUERY.collections, QUERY.start, QUERY.end, None, 30))
    first, second = (r["body"] for r in api.faults.requests)
    assert first["filter"] == {"op": "<=", "args": [{"property": "eo:cloud_cover"}, 30]}
    assert first["filter-lang"] == "cql2-json"
    assert "filter" not in second  # S1 has no cloud cover: filtered client-side by selection


def test_retry_after_parsing():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
