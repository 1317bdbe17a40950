"""The HTML status page (`/`), notice pages (`/notices/{id}[-slug]`) and the embeddable `/widget.js`."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources

import aiohttp_jinja2
import jinja2
from aiohttp import web
from sqlite_utils import Database

from bridge.encoded import Encoded, Published
from bridge.front import route
from bridge.history import EFFECTIVE, read_history
from bridge.http import error_response
from bridge.keys import LIVE, READER
from bridge.model import Snapshot
from bridge.render import html
from bridge.render.bars import snapshot_bars, window_start
from bridge.render.sorry import find_notice
from bridge.views_page import doc_response, raw

NOTICE_REF = re.compile(r"([0-9]{1,18})(?:-[^/]*)?")  # the id fits SQLite's INTEGER; the slug is decoration
WIDGET_MAX_AGE = 3600  # a fixed URL embedded elsewhere: revalidated hourly through its ETag
RERENDER_SECONDS = 60  # relative times and today's bar move with the clock even while the snapshot does not
WIDGET = raw(resources.files("bridge").joinpath("static/widget.js").read_bytes())
Rows = list[tuple[float, str]]


@dataclass
class HtmlCache:
    """Rendered pages of one published generation and clock bucket: the page is hot during an outage."""

    published: Published | None = None
    bucket: int = -1
    docs: dict[str, Encoded] = field(default_factory=dict)
    # One render (and history read) at a time: readers arriving meanwhile wait for it instead of repeating it.
    rendering: asyncio.Lock = field(default_factory=asyncio.Lock)

    def get(self, published: Published, now: float, key: str) -> Encoded | None:
        """The cached document, dropping everything when the generation or the bucket changed."""
        bucket = int(now // RERENDER_SECONDS)
        if published is not self.published or bucket != self.bucket:
            self.published, self.bucket, self.docs = published, bucket, {}
        return self.docs.get(key)

    def put(self, published: Published, now: float, key: str, doc: Encoded) -> Encoded:
        """Remember a document, unless a newer generation or bucket took the cache while it was rendered."""
        if published is self.published and int(now // RERENDER_SECONDS) == self.bucket:
            self.docs[key] = doc
        return doc


HTML_CACHE = web.AppKey("html_cache", HtmlCache)


def _env(request: web.Request) -> jinja2.Environment:
    """The app's Jinja2 environment."""
    return aiohttp_jinja2.get_env(request.app)


def _respond(request: web.Request, doc: Encoded) -> web.Response:
    """An HTML document with the public GET headers and the page's CSP."""
    extra = {**html.page_headers(request.app[LIVE].config.frame_ancestors), "Referrer-Policy": "no-referrer"}
    return doc_response(request, doc, html.CONTENT_TYPE, request.app[LIVE].config.cache_seconds, extra)


def read_histories(db: Database, ids: Iterable[str], start: float, end: float) -> dict[str, Rows]:
    """Each component's shown-status rows in [start, end), preceded by the row holding at start."""
    return {cid: read_history(db, cid, EFFECTIVE, start, end) for cid in ids}


async def _render_page(request: web.Request, snap: Snapshot, now: float) -> bytes:
    """The page, its bars' history read in the database reader thread."""
    ids = [c.id for g in snap.groups for c in g.components]
    rows = await request.app[READER].call(read_histories, ids, window_start(now), now + 1)
    return html.render_page(_env(request), snap, now, lambda cid: snapshot_bars(snap, cid, rows[cid], now))


async def page(request: web.Request) -> web.Response:
    """GET /: the status page, rendered once per snapshot generation (and per minute) and served as bytes."""
    live = request.app[LIVE]
    published, now = live.published, live.clock()
    cache = request.app[HTML_CACHE]
    doc = cache.get(published, now, "/")
    if doc is None:
        async with cache.rendering:
            published, now = live.published, live.clock()  # the newest, after waiting for another render
            doc = cache.get(published, now, "/")  # often just rendered by the request this one waited for
            if doc is None:
                doc = cache.put(published, now, "/", raw(await _render_page(request, published.snapshot, now)))
    return _respond(request, doc)


def wants_json(request: web.Request) -> bool:
    """True when the client asked for JSON rather than HTML (API clients get the JSON error shape)."""
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


async def notice_page(request: web.Request) -> web.Response:
    """GET /notices/{id} or /notices/{id}-{slug}: one notice with its update timeline."""
    ref = request.match_info["ref"]
    live = request.app[LIVE]
    published, now = live.published, live.clock()
    m = NOTICE_REF.fullmatch(ref)
    found = find_notice(published.snapshot, int(m.group(1))) if m else None
    if found is None:
        if wants_json(request):
            return error_response(404, f"no notice {ref!r}", "id")
        body = html.render_not_found(_env(request), published.snapshot, now, "notice with this address")
        return web.Response(status=404, body=body, content_type=html.CONTENT_TYPE, charset="utf-8",
                            headers={"Cache-Control": "no-store", **html.page_headers(live.config.frame_ancestors)})
    cache = request.app[HTML_CACHE]
    # Keyed by id only: unknown ids never reach the cache, so it stays bounded by the stored notices.
    key = f"notice:{found.id}"
    doc = cache.get(published, now, key)
    if doc is None:
        doc = cache.put(published, now, key, raw(html.render_notice(_env(request), published.snapshot, found, now)))
    return _respond(request, doc)


async def widget_js(request: web.Request) -> web.Response:
    """GET /widget.js: the dependency-free embeddable widget."""
    return doc_response(request, WIDGET, "application/javascript", WIDGET_MAX_AGE)


def add_html_routes(app: web.Application) -> None:
    """Set up Jinja2 (autoescape on) and register the HTML page, notice pages and widget."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("bridge", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        default_helpers=False,
    )
    html.configure(env)
    app[HTML_CACHE] = HtmlCache()
    route(app, "GET", "/", page)
    route(app, "GET", "/notices/{ref}", notice_page)
    route(app, "GET", "/widget.js", widget_js)
