"""The STAC API source: item search through pystac-client, normalized by a provider profile.

``search`` builds the request with pystac-client's ``ItemSearch`` (collections, bbox,
datetime, and the cloud-cover filter when every collection is optical), then pages
strictly: every page must be a feature collection, a page that still fails after the
retries raises, an empty page that announces a next page raises, and a server-reported
match count that pagination does not reach raises. The result is complete or an error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pystac.link import Link
from pystac_client import ItemSearch
from pystac_client.exceptions import APIError

from pipeline.errors import SourceError
from pipeline.sources.base import Scene, SearchQuery, SearchResult, SkippedItem
from pipeline.sources.profiles import ProviderProfile, load_profile, scene_from_item
from pipeline.sources.redact import redact
from pipeline.sources.retry import RetryingStacApiIO
from pipeline.sources.settings import ApiSettings


@dataclass(frozen=True)
class Page:
    features: list[dict[str, Any]]
    matched: int | None
    next_link: dict[str, Any] | None


@dataclass(frozen=True)
class StacApiSource:
    """Scenes from any STAC API; ``profile`` maps the provider's layout onto ``Scene``."""

    settings: ApiSettings
    profile: ProviderProfile
    name: str = "stac_api"

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> StacApiSource:
        return cls(settings, load_profile(settings.profile))

    @property
    def url(self) -> str:
        url = self.settings.url or self.profile.url
        if not url:
            raise SourceError(
                f"no STAC API URL: set source.url (profile {self.profile.name!r} has no default)"
            )
        return url.rstrip("/")

    def search(self, query: SearchQuery) -> Iterator[Scene]:
        yield from self.search_result(query).scenes

    def search_result(self, query: SearchQuery) -> SearchResult:
        """Every matching scene, sorted by (datetime, item id), plus the items skipped."""
        items, truncated = self._fetch(query)
        scenes, skipped = [], []
        for item in items:
            try:
                scenes.append(self._scene(item))
            except SourceError as exc:
                skipped.append(
                    SkippedItem(str(item.get("id")), str(item.get("collection")), str(exc))
                )
        scenes.sort(key=lambda s: (s.datetime, s.item_id))
        return SearchResult(tuple(scenes), tuple(skipped), truncated)

    def _scene(self, item: Mapping[str, Any]) -> Scene:
        scene = scene_from_item(item, self.profile)
        if self.profile.signing and self.settings.token_url:
            scene = replace(scene, extra={**scene.extra, "token_url": self.settings.token_url})
        return scene

    def _fetch(self, query: SearchQuery) -> tuple[list[dict[str, Any]], bool]:
        io = RetryingStacApiIO(self.settings.retry, self.settings.max_concurrency)
        params = self.search_parameters(query)
        items: list[dict[str, Any]] = []
        page = self._read_page(io, f"{self.url}/search", params)
        matched = page.matched
        cap = self.settings.max_items
        while True:
            items.extend(page.features)
            if cap is not None and len(items) >= cap:
                return items[:cap], bool(page.next_link) or len(items) > cap
            if page.next_link is None:
                break
            if not page.features:
                raise SourceError(
                    f"{self.url}/search returned an empty page that links to a next page; "
                    "the server's pagination is broken, retry later"
                )
            page = self._read_page(io, Link.from_dict(page.next_link), params)
        _check_complete(self.url, matched, len(items))
        return items, False

    def search_parameters(self, query: SearchQuery) -> dict[str, Any]:
        """The POST /search body (pystac-client formats datetimes, bbox and filters)."""
        search = ItemSearch(
            url=f"{self.url}/search",
            method="POST",
            collections=list(query.collections),
            bbox=list(query.bbox) if query.bbox else None,
            datetime=(query.start, query.end),
            limit=self.settings.page_size,
            **self._cloud_filter(query),
        )
        return dict(search.get_parameters())

    def _cloud_filter(self, query: SearchQuery) -> dict[str, Any]:
        """Push ``max_cloud_cover`` to the API only when every collection is optical."""
        mode = self.profile.cloud_filter
        sensors = {self.profile.mapping(c).sensor for c in query.collections}
        if query.max_cloud_cover >= 100 or sensors != {"s2"} or mode == "none":
            return {}
        if mode == "query":
            return {"query": {"eo:cloud_cover": {"lte": query.max_cloud_cover}}}
        cql = {"op": "<=", "args": [{"property": "eo:cloud_cover"}, query.max_cloud_cover]}
        return {"filter": cql, "filter_lang": "cql2-json"}

    def _read_page(self, io: RetryingStacApiIO, where: str | Link, params: dict[str, Any]) -> Page:
        try:
            if isinstance(where, Link):
                page = io.read_json(where, parameters=params)
            else:
                page = io.read_json(where, method="POST", parameters=params)
        except APIError as exc:
            raise SourceError(
                f"STAC search at {redact(self.url)} failed: HTTP {getattr(exc, 'status_code', '?')}: "
                f"{redact(str(exc))[:300]}; check source.url, the collections and the search parameters"
            ) from exc
        return _page(page, self.url)


def _page(page: Any, url: str) -> Page:
    if not isinstance(page, dict) or not isinstance(page.get("features"), list):
        raise SourceError(
            f"{redact(url)}/search returned something that is not an item collection page"
        )
    nxt = next((link for link in page.get("links", []) if link.get("rel") == "next"), None)
    matched = page.get("numberMatched", (page.get("context") or {}).get("matched"))
    return Page(page["features"], int(matched) if matched is not None else None, nxt)


def _check_complete(url: str, matched: int | None, got: int) -> None:
    if matched is not None and got < matched:
        raise SourceError(
            f"{redact(url)}/search reported {matched} matching items but pagination returned {got}; "
            "the result is incomplete, retry later (or narrow search.datetime / search.bbox)"
        )
