"""HTTP plumbing shared by handlers: the one error shape, JSONP, ETag/304 and cache headers."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from bridge.live import Encoded

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


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn every HTTP error and unexpected exception into the JSON error shape; never a traceback."""
    try:
        return await handler(request)
    except ApiError as e:
        return error_response(e.status_code, e.message, e.field)
    except web.HTTPException as e:
        if e.status_code < 400:
            raise
        return error_response(e.status_code, e.reason or "error")
    except Exception:
        log.exception("unhandled error for %s %s", request.method, request.path)
        return error_response(500, "internal error")


def jsonp_callback(request: web.Request) -> str | None:
    """The validated ?callback= name, None when absent; 400 naming the field when invalid."""
    if "callback" not in request.query:
        return None
    cb = request.query["callback"]
    if len(cb) > JSONP_MAX or not JSONP_CALLBACK.fullmatch(cb):
        raise ApiError(
            400, f"callback must be a JavaScript identifier path of at most {JSONP_MAX} characters", "callback"
        )
    return cb


def etag_matches(request: web.Request, etag: str) -> bool:
    """RFC 9110 weak comparison of If-None-Match against our strong ETag."""
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    if header.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in header.split(","))


def feed_response(request: web.Request, feed: Encoded, max_age: int) -> web.Response:
    """Serve a pre-encoded JSON feed as JSON or JSONP, honouring If-None-Match."""
    callback = jsonp_callback(request)
    if callback is None:
        body, etag, ctype = feed.body, feed.etag, JSON_TYPE
        extra: dict[str, str] = {}
    else:
        body = b"/**/" + callback.encode() + b"(" + feed.body + b");"
        etag = '"' + hashlib.blake2b(feed.etag.encode() + callback.encode(), digest_size=12).hexdigest() + '"'
        ctype, extra = JS_TYPE, {"X-Content-Type-Options": "nosniff"}
    headers = {
        "ETag": etag,
        "Cache-Control": f"public, max-age={max_age}",
        "Access-Control-Allow-Origin": "*",
        **extra,
    }
    if etag_matches(request, etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=ctype, charset="utf-8", headers=headers)
