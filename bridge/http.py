"""HTTP plumbing shared by handlers: the one error shape, JSONP, ETag/304 and cache headers."""

from __future__ import annotations

import json
import logging
import re

from aiohttp import hdrs, web

from bridge.encoded import Encoded

log = logging.getLogger("bridge.http")

JSONP_CALLBACK = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(?:\.[A-Za-z_$][A-Za-z0-9_$]*)*")
JSONP_MAX = 128
JSON_TYPE = "application/json"
JS_TYPE = "application/javascript"


class ApiError(web.HTTPException):
    """An HTTP error rendered as {"error": {"status", "message", "field"}}."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        self.status_code = status
        super().__init__(reason=None)
        self.message, self.field = message, field


def error_body(status: int, message: str, field: str | None = None) -> bytes:
    """The single JSON error body used everywhere."""
    err: dict[str, object] = {"status": status, "message": message}
    if field is not None:
        err["field"] = field
    return json.dumps({"error": err}).encode()


def error_response(status: int, message: str, field: str | None = None) -> web.Response:
    """A JSON error response with the public CORS header."""
    return web.Response(
        status=status,
        body=error_body(status, message, field),
        content_type=JSON_TYPE,
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"},
    )


_CALLBACKS: dict[str, str | None] = {}  # raw query string -> its valid callback (hot feeds: parse once)


def jsonp_callback(request: web.Request) -> str | None:
    """The validated ?callback= name, None when absent; 400 naming the field when invalid."""
    raw = request.rel_url.raw_query_string
    if not raw:
        return None
    if raw in _CALLBACKS:
        return _CALLBACKS[raw]
    cb = request.query.get("callback")
    if cb is not None and (len(cb) > JSONP_MAX or not JSONP_CALLBACK.fullmatch(cb)):
        raise ApiError(
            400, f"callback must be a JavaScript identifier path of at most {JSONP_MAX} characters", "callback"
        )
    if len(_CALLBACKS) >= 1024:  # query strings are client input
        _CALLBACKS.clear()
    _CALLBACKS[raw] = cb
    return cb


def etag_matches(header: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of an If-None-Match header value against our strong ETag."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in header.split(","))


def feed_response(request: web.Request, feed: Encoded, max_age: int) -> web.Response:
    """Serve a pre-encoded JSON feed as JSON or JSONP, honouring If-None-Match."""
    # The hottest path in the daemon (widgets and pages polling during an outage): a plain GET with
    # neither a query nor If-None-Match costs two lookups, the memoized headers and aiohttp's Response.
    if request.rel_url.raw_query_string:  # as sent: decoding it costs more than the rest of this function
        callback = jsonp_callback(request)
        if callback is not None:
            feed = feed.jsonp(callback)  # built once per callback and generation, like the headers
    header = request.headers.get(hdrs.IF_NONE_MATCH)  # an istr: no case folding per request
    if header and etag_matches(header, feed.etag):
        return web.Response(status=304, headers=feed.headers(max_age, with_type=False))
    return web.Response(body=feed.body, headers=feed.headers(max_age))
