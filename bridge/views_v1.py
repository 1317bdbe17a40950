"""Sorry(TM)-compatible /api/v1 handlers: parse the query, render from the current snapshot, serialise."""

from __future__ import annotations

import re
from collections.abc import Collection

from aiohttp import web
from multidict import MultiMapping

from bridge.http import ApiError, feed_response
from bridge.keys import LIVE, SETTINGS
from bridge.live import Encoded
from bridge.notices import STATES, TIMELINE_STATES
from bridge.render import sorry

COMPONENT_FILTERS = ("filter[parent_id_null]", "filter[parent_id_eq]")
NOTICE_FILTERS = ("filter[type_eq]", "filter[timeline_state_eq]")
BOOLEANS = {"true": True, "false": False}
PAGE = re.compile(r"[1-9][0-9]{0,8}")  # bounded so an absurd page number is a 400, not a huge slice offset
NOTICE_ID = re.compile(r"[0-9]{1,18}")  # fits SQLite's INTEGER


def _one(query: MultiMapping[str], key: str) -> str | None:
    """The single value of key, None when absent; 400 when repeated (which one would we honour?)."""
    values = query.getall(key, [])
    if len(values) > 1:
        raise ApiError(400, f"{key} given more than once", key)
    return values[0] if values else None


def _choice(query: MultiMapping[str], key: str, allowed: Collection[str]) -> str | None:
    """A filter value that must be one of allowed."""
    value = _one(query, key)
    if value is not None and value not in allowed:
        raise ApiError(400, f"{key} must be one of {', '.join(allowed)}", key)
    return value


def _check_filter_keys(query: MultiMapping[str], allowed: Collection[str]) -> None:
    """400 on any filter key this collection does not know (a typo must not silently return everything)."""
    for key in query:
        if key.startswith("filter") and key not in allowed:
            raise ApiError(400, f"unknown filter {key}; allowed: {', '.join(allowed)}", key)


def parse_page(query: MultiMapping[str]) -> int:
    """?page=N, an integer >= 1 (default 1)."""
    value = _one(query, "page")
    if value is None:
        return 1
    if not PAGE.fullmatch(value):
        raise ApiError(400, "page must be an integer from 1 to 999999999", "page")
    return int(value)


def parse_component_filter(query: MultiMapping[str]) -> sorry.ComponentFilter:
    """filter[parent_id_null]=true|false and filter[parent_id_eq]=ID (both may be given: they combine)."""
    _check_filter_keys(query, COMPONENT_FILTERS)
    null = _choice(query, "filter[parent_id_null]", tuple(BOOLEANS))
    parent = _one(query, "filter[parent_id_eq]")
    if parent == "":
        raise ApiError(400, "filter[parent_id_eq] must not be empty", "filter[parent_id_eq]")
    return sorry.ComponentFilter(None if null is None else BOOLEANS[null], parent)


def parse_notice_filter(query: MultiMapping[str]) -> sorry.NoticeFilter:
    """filter[type_eq]=planned|unplanned and filter[timeline_state_eq]=future|present|past_recent|past_distant."""
    _check_filter_keys(query, NOTICE_FILTERS)
    return sorry.NoticeFilter(
        _choice(query, "filter[type_eq]", tuple(STATES)),
        _choice(query, "filter[timeline_state_eq]", TIMELINE_STATES),
    )


def _respond(request: web.Request, doc: object) -> web.Response:
    """Serialise through the shared feed path: CORS, ETag/304, Cache-Control and JSONP like every public GET."""
    return feed_response(request, Encoded.of(doc), request.app[LIVE].config.cache_seconds)


async def status(request: web.Request) -> web.Response:
    """GET /api/v1/status: the page state without components and notices."""
    return _respond(request, sorry.status_doc(request.app[LIVE].snapshot))


async def components(request: web.Request) -> web.Response:
    """GET /api/v1/components: groups (top level) and their components, filtered and paginated."""
    flt, page = parse_component_filter(request.query), parse_page(request.query)
    return _respond(request, sorry.components_doc(request.app[LIVE].snapshot, flt, page))


async def notices(request: web.Request) -> web.Response:
    """GET /api/v1/notices: notices newest first, filtered by type and timeline state, paginated."""
    flt, page = parse_notice_filter(request.query), parse_page(request.query)
    live = request.app[LIVE]
    # Timeline states move with the clock (e.g. past_recent -> past_distant), not only on rebuilds.
    doc = sorry.notices_doc(live.snapshot, flt, page, live.clock(), request.app[SETTINGS].recent_days)
    return _respond(request, doc)


async def notice(request: web.Request) -> web.Response:
    """GET /api/v1/notices/{id}: one notice with its components and full update history."""
    raw = request.match_info["id"]
    live = request.app[LIVE]
    snap = live.snapshot
    found = sorry.find_notice(snap, int(raw)) if NOTICE_ID.fullmatch(raw) else None
    if found is None:
        raise ApiError(404, f"no notice with id {raw!r}", "id")
    return _respond(request, sorry.notice_doc(snap, found, live.clock(), request.app[SETTINGS].recent_days))


def add_v1_routes(app: web.Application) -> None:
    """Register the Sorry-compatible read API."""
    app.router.add_get("/api/v1/status", status)
    app.router.add_get("/api/v1/components", components)
    app.router.add_get("/api/v1/notices", notices)
    app.router.add_get("/api/v1/notices/{id}", notice)
