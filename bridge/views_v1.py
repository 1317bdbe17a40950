"""Sorry(TM)-compatible /api/v1 handlers: parse the query, render from the current snapshot, serialise."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Collection, Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any

from aiohttp import web
from multidict import MultiMapping
from sqlite_utils import Database

from bridge.db_thread import DbThread
from bridge.encoded import DocCache, Encoded
from bridge.front import Handler, route
from bridge.history import impact_of
from bridge.http import ApiError, feed_response
from bridge.keys import LIVE, READER, SETTINGS
from bridge.model import Snapshot
from bridge.notices import STATES, TIMELINE_STATES
from bridge.render import sorry, sorry_metrics, sorry_notices, sorry_query
from bridge.uptime import metrics

COMPONENT_FILTERS = ("filter[parent_id_null]", "filter[parent_id_eq]")
OVERLAPS = "filter[impact_timeframe_overlaps][]"
NOTICE_FILTERS = ("filter[type_eq]", "filter[timeline_state_eq]", "filter[components_id]", OVERLAPS)
BOOLEANS = {"true": True, "false": False}
PAGE = re.compile(r"[1-9][0-9]{0,8}")  # bounded so an absurd page number is a 400, not a huge slice offset
NOTICE_ID = re.compile(r"[0-9]{1,18}")  # fits SQLite's INTEGER
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DAY = timedelta(days=1)
SUMMARY_DAYS = 30  # metrics_summary and the default metrics timeframe: the past 30 days (and today so far)
SUMMARY_TTL = 60.0  # seconds a metrics_summary is reused while the snapshot stays the same


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


def parse_component_filter(query: MultiMapping[str]) -> sorry_query.ComponentFilter:
    """filter[parent_id_null]=true|false and filter[parent_id_eq]=ID (both may be given: they combine)."""
    _check_filter_keys(query, COMPONENT_FILTERS)
    null = _choice(query, "filter[parent_id_null]", tuple(BOOLEANS))
    parent = _one(query, "filter[parent_id_eq]")
    if parent == "":
        raise ApiError(400, "filter[parent_id_eq] must not be empty", "filter[parent_id_eq]")
    return sorry_query.ComponentFilter(None if null is None else BOOLEANS[null], parent)


def _instant(value: str, key: str) -> float:
    """An ISO 8601 timestamp as epoch seconds; without an offset it is UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"{key} values must be ISO 8601 timestamps like 2023-03-01T00:00:00", key) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def parse_notice_filter(query: MultiMapping[str]) -> sorry_query.NoticeFilter:
    """filter[type_eq], filter[timeline_state_eq], filter[components_id]=ID and two filter[impact_timeframe_overlaps][]."""
    _check_filter_keys(query, NOTICE_FILTERS)
    overlaps = query.getall(OVERLAPS, [])
    if overlaps and len(overlaps) != 2:
        raise ApiError(400, f"{OVERLAPS} must be given twice: the start and the end of the timeframe", OVERLAPS)
    window = (_instant(overlaps[0], OVERLAPS), _instant(overlaps[1], OVERLAPS)) if overlaps else None
    return sorry_query.NoticeFilter(
        _choice(query, "filter[type_eq]", tuple(STATES)),
        _choice(query, "filter[timeline_state_eq]", TIMELINE_STATES),
        _one(query, "filter[components_id]"),
        window,
    )


def _date(query: MultiMapping[str], key: str) -> date | None:
    """A YYYY-MM-DD parameter, None when absent."""
    value = _one(query, key)
    if value is None:
        return None
    try:
        if not DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"{key} must be a date like 2023-03-01", key) from None


def year_before(day: date) -> date:
    """The same day twelve months earlier (29 February -> 28 February)."""
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return day.replace(year=day.year - 1, day=28)


def parse_timeframe(query: MultiMapping[str], today: date) -> tuple[date, date]:
    """timeframe_start/timeframe_end (whole UTC days, end inclusive); default the past 30 days up to today."""
    first, last = _date(query, "timeframe_start"), _date(query, "timeframe_end")
    earliest = year_before(today)
    if last is not None and last < earliest:  # refused before any date arithmetic can leave year 1
        raise ApiError(400, f"timeframe_end must be at most 12 months ago (not before {earliest})", "timeframe_end")
    if last is None:
        last = today if first is None or first <= today else first
    if first is None:
        first = last - SUMMARY_DAYS * DAY
    if first < earliest:
        raise ApiError(400, f"timeframe_start must be at most 12 months ago (not before {earliest})", "timeframe_start")
    if first > today:
        raise ApiError(400, "timeframe_start must not be in the future", "timeframe_start")
    if first > last:
        raise ApiError(400, "timeframe_start must not be after timeframe_end", "timeframe_start")
    return first, last


def _midnight(day: date) -> float:
    """00:00 UTC of day as epoch seconds."""
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()


def bounds(first: date, last: date, now: float) -> tuple[float, float, tuple[float, float]]:
    """(start, end) the metrics cover (the end clipped to now) and the notices filter window [start, 23:59:59]."""
    stop = _midnight(min(last, _today(now)) + DAY)  # a far-future end is clipped before any date arithmetic overflows
    start = _midnight(first)
    return start, max(start, min(stop, now)), (start, stop - 1)


def _today(now: float) -> date:
    """The UTC date at now."""
    return datetime.fromtimestamp(now, timezone.utc).date()


def _respond(request: web.Request, doc: object) -> web.Response:
    """Serialise through the shared feed path: CORS, ETag/304, Cache-Control and JSONP like every public GET."""
    return feed_response(request, Encoded.of(doc), request.app[LIVE].config.cache_seconds)


STATUS_DOCS = web.AppKey("status_docs", DocCache)
COMPONENT_DOCS = web.AppKey("component_docs", DocCache)


def status_handler(app: web.Application) -> Handler:
    """GET /api/v1/status: the page state without components and notices."""
    live, docs = app[LIVE], app[STATUS_DOCS]  # bound once, not looked up per request: a hot feed

    async def status(request: web.Request) -> web.Response:
        snap = live.published.snapshot
        doc = docs.get(snap, 0.0, "") or docs.put("", Encoded.of(sorry.status_doc(snap)))
        return feed_response(request, doc, live.config.cache_seconds)

    return status


def summary_bucket(now: float) -> int:
    """The SUMMARY_TTL bucket a metrics_summary computed at now stays valid for (it also fixes the UTC day)."""
    return int(now // SUMMARY_TTL)  # SUMMARY_TTL divides a day: a bucket never spans midnight


def read_summaries(db: Database, snap: Snapshot, ids: list[str], now: float) -> dict[str, dict[str, Any] | None]:
    """metrics_summary of each id over the past SUMMARY_DAYS days (None: nothing known), from the history in db."""
    last = _today(now)
    first = last - SUMMARY_DAYS * DAY
    start, end, _window = bounds(first, last, now)
    out: dict[str, dict[str, Any] | None] = {}
    for ident in ids:
        impact = impact_of(db, snap, ident, start, end, now)
        m = metrics(impact, start, end) if impact is not None else None
        # Nothing known in the whole window (never monitored, no notice): no metrics, as Sorry's null.
        known = m is not None and m.percent is not None
        out[ident] = sorry_metrics.metrics_summary(snap, ident, first, last, m) if known else None
    return out


class SummaryCache:
    """metrics_summary per component id, valid for one snapshot, day and SUMMARY_TTL bucket, read in the reader thread."""

    def __init__(self, reader: DbThread) -> None:
        self.reader = reader
        self.snap: Snapshot | None = None
        self.key: tuple[date, int] | None = None
        self.values: dict[str, dict[str, Any] | None] = {}
        # One read at a time: requests arriving meanwhile take what it read instead of reading it again.
        self._reading = asyncio.Lock()

    async def get(self, snap: Snapshot, now: float, ids: list[str]) -> Mapping[str, dict[str, Any] | None]:
        """Summaries for ids, reading (two index seeks per component) only those not cached yet."""
        key = (_today(now), summary_bucket(now))
        if snap is not self.snap or key != self.key:
            self.snap, self.key, self.values = snap, key, {}
        values = self.values  # this snapshot's and bucket's, even if a newer one replaces it meanwhile
        if any(i not in values for i in ids):
            async with self._reading:
                missing = [i for i in ids if i not in values]  # often read by the request this one waited for
                if missing:
                    values.update(await self.reader.call(read_summaries, snap, missing, now))
        return {i: values[i] for i in ids}


SUMMARIES = web.AppKey("metrics_summaries", SummaryCache)


def components_handler(app: web.Application) -> Handler:
    """GET /api/v1/components: groups (top level) and their components, filtered and paginated."""
    live, docs, summaries = app[LIVE], app[COMPONENT_DOCS], app[SUMMARIES]  # bound once: a hot feed

    async def components(request: web.Request) -> web.Response:
        snap, query, now = live.published.snapshot, request.rel_url.raw_query_string, live.clock()
        # The summaries inside are frozen per snapshot and time bucket (SummaryCache): so is the document.
        doc = docs.get(snap, now, query)
        if doc is None:
            flt, page = parse_component_filter(request.query), parse_page(request.query)
            found = await summaries.get(snap, now, sorry.page_ids(snap, flt, page))
            doc = Encoded.of(sorry.components_doc(snap, flt, page, lambda _ids: found))
            # A newer generation or time bucket may have come during the read: cache only under the one read.
            if live.published.snapshot is snap and summary_bucket(live.clock()) == summary_bucket(now):
                docs.put(query, doc)
        return feed_response(request, doc, live.config.cache_seconds)

    return components


async def component_metrics(request: web.Request) -> web.Response:
    """GET /api/v1/components/{id}/metrics: percentage uptime, MTTR and MTBF over whole UTC days."""
    ident = request.match_info["id"]
    live = request.app[LIVE]
    snap, now = live.snapshot, live.clock()
    if sorry_metrics.entry_name(snap, ident) is None:
        raise ApiError(404, f"no component with id {ident!r}", "id")
    first, last = parse_timeframe(request.query, _today(now))
    with_data = _choice(request.query, "include_calculation_data", tuple(BOOLEANS)) == "true"
    start, end, window = bounds(first, last, now)
    impact = await request.app[READER].call(impact_of, snap, ident, start, end, now)
    assert impact is not None  # the id was found above, in the same snapshot
    doc = sorry_metrics.metrics_doc(snap, ident, first, last, metrics(impact, start, end), window, now, with_data)
    return _respond(request, doc)


async def notices(request: web.Request) -> web.Response:
    """GET /api/v1/notices: notices newest first, filtered by type and timeline state, paginated."""
    flt, page = parse_notice_filter(request.query), parse_page(request.query)
    live = request.app[LIVE]
    # Timeline states move with the clock (e.g. past_recent -> past_distant), not only on rebuilds.
    doc = sorry_notices.notices_doc(live.snapshot, flt, page, live.clock(), request.app[SETTINGS].recent_days)
    return _respond(request, doc)


async def notice(request: web.Request) -> web.Response:
    """GET /api/v1/notices/{id}: one notice with its components and full update history."""
    raw = request.match_info["id"]
    live = request.app[LIVE]
    snap = live.snapshot
    found = sorry.find_notice(snap, int(raw)) if NOTICE_ID.fullmatch(raw) else None
    if found is None:
        raise ApiError(404, f"no notice with id {raw!r}", "id")
    return _respond(request, sorry_notices.notice_doc(snap, found, live.clock(), request.app[SETTINGS].recent_days))


def add_v1_routes(app: web.Application) -> None:
    """Register the Sorry-compatible read API."""
    app[STATUS_DOCS], app[COMPONENT_DOCS] = DocCache(), DocCache(SUMMARY_TTL)  # buckets as summary_bucket()
    app[SUMMARIES] = SummaryCache(app[READER])
    route(app, "GET", "/api/v1/status", status_handler(app))
    route(app, "GET", "/api/v1/components", components_handler(app))
    route(app, "GET", "/api/v1/components/{id}/metrics", component_metrics)
    route(app, "GET", "/api/v1/notices", notices)
    route(app, "GET", "/api/v1/notices/{id}", notice)
