"""Page-level public outputs: the Statuspage v2-compatible API, the Atom feed of notices and SVG badges."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from aiohttp import hdrs, web

from bridge.affected import NONE, ChangeReader, Changes
from bridge.encoded import Encoded, Published
from bridge.front import Handler, route
from bridge.http import ApiError, etag_matches, feed_response
from bridge.keys import LIVE, READER
from bridge.model import Snapshot
from bridge.render import atom, badge, statuspage

BADGE_MAX_AGE = 30  # seconds at most: badges sit in READMEs and dashboards behind caching proxies
V2 = "/api/v2"

# Path -> renderer of the JSON document served there (with the component changes of the notices' updates).
V2_DOCS: dict[str, Callable[[Snapshot, Changes], object]] = {
    f"{V2}/summary.json": statuspage.summary_doc,
    f"{V2}/status.json": lambda s, _: statuspage.status_doc(s),
    f"{V2}/components.json": lambda s, _: statuspage.components_doc(s),
    f"{V2}/incidents.json": statuspage.incidents_doc,
    f"{V2}/incidents/unresolved.json": lambda s, c: statuspage.incidents_doc(s, c, only_unresolved=True),
    f"{V2}/scheduled-maintenances.json": statuspage.maintenances_doc,
    f"{V2}/scheduled-maintenances/upcoming.json": lambda s, c: statuspage.maintenances_doc(s, c, "upcoming"),
    f"{V2}/scheduled-maintenances/active.json": lambda s, c: statuspage.maintenances_doc(s, c, "active"),
}
WITHOUT_NOTICES = frozenset({f"{V2}/status.json", f"{V2}/components.json"})


@dataclass
class GenerationCache:
    """Documents encoded at most once per published generation (they are hot during an outage)."""

    published: Published | None = None
    docs: dict[str, Encoded] = field(default_factory=dict)

    def peek(self, published: Published, key: str) -> Encoded | None:
        """The document for key if this generation has it; a new generation drops every document of the old one."""
        if self.published is not published:
            self.published, self.docs = published, {}
        return self.docs.get(key)

    def put(self, published: Published, key: str, doc: Encoded) -> Encoded:
        """Remember doc for key in this generation."""
        if self.peek(published, key) is None:
            self.docs[key] = doc
        return doc

    def get(self, published: Published, key: str, build: Callable[[Snapshot], Encoded | None]) -> Encoded | None:
        """The document for key in this generation, built on first use; None (not cached) when build says so."""
        doc = self.peek(published, key)
        if doc is None:
            doc = build(published.snapshot)
            if doc is not None:
                self.docs[key] = doc
        return doc


PAGE_CACHE = web.AppKey("page_cache", GenerationCache)


@dataclass
class ChangeCache:
    """The history read behind the notice documents: once per published generation, in a task the requests share."""

    reader: ChangeReader
    published: Published | None = None
    task: asyncio.Task[Changes] | None = None

    async def get(self, published: Published) -> Changes:
        """The changes for this generation's listed notices (read on the first request of the generation)."""
        if self.published is not published or self.task is None:
            snap = published.snapshot
            self.published, self.task = published, asyncio.create_task(self.reader.read(snap, statuspage.listed(snap)))
        # Shielded: a client hanging up must not cancel the read the other requests wait for.
        return await asyncio.shield(self.task)


CHANGES = web.AppKey("v2_changes", ChangeCache)


def raw(body: bytes) -> Encoded:
    """Non-JSON bytes with a strong ETag."""
    return Encoded(body, '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"')


def _lookup(request: web.Request, key: str, build: Callable[[Snapshot], Encoded | None]) -> Encoded | None:
    """The current generation's document for key (None when build finds nothing to render)."""
    return request.app[PAGE_CACHE].get(request.app[LIVE].published, key, build)


def _cached(request: web.Request, key: str, build: Callable[[Snapshot], Encoded]) -> Encoded:
    """The current generation's document for key; build always renders one."""
    return cast(Encoded, _lookup(request, key, build))


def _v2_handler(app: web.Application, path: str, render: Callable[[Snapshot, Changes], object]) -> Handler:
    """A handler serving one Statuspage-compatible document (JSON or JSONP)."""
    live, cache, changes = app[LIVE], app[PAGE_CACHE], app[CHANGES]  # bound once: widgets poll these

    async def handler(request: web.Request) -> web.Response:
        published = live.published
        doc = cache.peek(published, path)
        if doc is None:
            found = NONE if path in WITHOUT_NOTICES else await changes.get(published)
            doc = Encoded.of(render(published.snapshot, found))
            if live.published is published:  # a newer generation may have come while the history was read
                cache.put(published, path, doc)
        return feed_response(request, doc, live.config.cache_seconds)

    handler.__doc__ = f"GET {path}: Statuspage v2-compatible."
    return handler


def doc_response(request: web.Request, doc: Encoded, content_type: str, max_age: int,
                 extra: dict[str, str] | None = None) -> web.Response:
    """A pre-encoded non-JSON body with the public GET headers: CORS, ETag/304, Cache-Control."""
    headers = {
        "ETag": doc.etag,
        "Cache-Control": f"public, max-age={max_age}",
        "Access-Control-Allow-Origin": "*",
        "X-Content-Type-Options": "nosniff",
        **(extra or {}),
    }
    if etag_matches(request.headers.get(hdrs.IF_NONE_MATCH), doc.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=doc.body, content_type=content_type, charset="utf-8", headers=headers)


async def notices_atom(request: web.Request) -> web.Response:
    """GET /notices.atom: incidents and maintenance as an Atom feed."""
    doc = _cached(request, "atom", lambda snap: raw(atom.atom_feed(snap)))
    return doc_response(request, doc, atom.CONTENT_TYPE, request.app[LIVE].config.cache_seconds)


async def badge_svg(request: web.Request) -> web.Response:
    """GET /badge.svg[?component=ID]: the page's (or one component's or group's) status as an SVG badge."""
    values = request.query.getall("component", [])
    if len(values) > 1:
        raise ApiError(400, "component given more than once", "component")
    if values:
        item = values[0]

        def build(snap: Snapshot) -> Encoded | None:
            body = badge.item_badge(snap, item)
            return None if body is None else raw(body)

        # Unknown ids are not cached, so the cache stays bounded by the configuration.
        doc = _lookup(request, "badge:" + item, build)
        if doc is None:
            raise ApiError(404, f"no component with id {item!r}", "component")
    else:
        doc = _cached(request, "badge", lambda snap: raw(badge.page_badge(snap)))
    max_age = min(BADGE_MAX_AGE, request.app[LIVE].config.cache_seconds)
    # Opened directly, an SVG is a document: forbid scripts and remote loads whatever it contains.
    csp = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}
    return doc_response(request, doc, badge.CONTENT_TYPE, max_age, csp)


def add_page_routes(app: web.Application) -> None:
    """Register the Statuspage v2 API, the Atom feed and the badge (after the app's READER and Live are set)."""
    app[PAGE_CACHE] = GenerationCache()
    app[CHANGES] = ChangeCache(ChangeReader(app[READER], app[LIVE].recorder))
    for path, render in V2_DOCS.items():
        route(app, "GET", path, _v2_handler(app, path, render))
    route(app, "GET", "/notices.atom", notices_atom)
    route(app, "GET", "/badge.svg", badge_svg)
