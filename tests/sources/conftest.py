"""Fixtures of the source tests: fake STAC APIs over the tiny archive's items."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from http_fakes import FakeStacApi, FaultPlan, search_handler, serve_handler


@pytest.fixture(scope="session")
def archive_items(tiny_archive) -> list[dict[str, Any]]:
    """The tiny archive's items with absolute (never fetched) asset hrefs."""
    from pipeline.archive.stac_server import absolute_hrefs, read_items

    items = read_items(tiny_archive / "items.parquet")
    return [absolute_hrefs(i, "http://127.0.0.1:9/archive") for i in items]


@pytest.fixture
def fake_stac_api(archive_items):
    """Factory: ``fake_stac_api(page_size=2, matched=None) -> FakeStacApi`` (a context)."""

    @contextlib.contextmanager
    def start(page_size: int = 2, matched: int | None = None) -> Iterator[FakeStacApi]:
        plan = FaultPlan()
        handler = search_handler(archive_items, page_size, plan, matched)
        with serve_handler(handler) as url:
            yield FakeStacApi(url, plan, archive_items)

    return start
