"""HTTP plumbing shared by handlers: the one error shape, JSONP, ETag/304 and cache headers."""

from __future__ import annotations

import asyncio
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


ADMIN_PREFIX = "/api/v1/admin"
_WILDCARDS = ("0.0.0.0", "::", "")


def _host(value: str) -> str:
    """A socket host without an IPv4-mapped prefix, so dual-stack and plain sockets compare equal."""
    return value.removeprefix("::ffff:") if "." in value else value


class Listeners:
    """The local addresses that serve the admin API only; empty = one listener serves everything."""

    def __init__(self) -> None:
        """No split until the daemon binds a separate admin socket."""
        self.admin: set[tuple[str, int]] = set()

    def on_admin(self, request: web.Request) -> bool:
        """True when the request came in on an admin socket."""
        if not self.admin or request.transport is None:
            return False
        local = request.transport.get_extra_info("sockname")
        if not local:
            return False
        host, port = _host(local[0]), local[1]
        return any(p == port and (h == host or h in _WILDCARDS) for h, p in self.admin)


LISTENERS = web.AppKey("listeners", Listeners)


@web.middleware
async def listener_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """With [http] admin_listen: admin routes only on the admin socket, everything else only on the public one."""
    listeners = request.app[LISTENERS]
    if listeners.admin:
        path = request.path
        admin_path = path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")
        if admin_path != listeners.on_admin(request):
            # 404, not 403: the public side should not even reveal that an admin API exists.
            raise web.HTTPNotFound()
    return await handler(request)


class InFlight:
    """Counts requests being handled, so a graceful stop can wait for them; while draining, no keep-alive."""

    def __init__(self) -> None:
        """Idle, not draining."""
        self.count = 0
        self.draining = False
        self._idle: asyncio.Event | None = None

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Count the request while its handler (body reading included) runs."""
        self.count += 1
        try:
            resp = await handler(request)
            if self.draining:
                resp.force_close()  # "Connection: close": the client reconnects to a new instance
            return resp
        finally:
            self.count -= 1
            if not self.count and self._idle is not None:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is being handled; False when timeout passed first."""
        if not self.count:
            return True
        self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._idle = None


INFLIGHT = web.AppKey("inflight", InFlight)


_CALLBACKS: dict[str, str | None] = {}  # raw query string -> its valid callback (hot feeds: parse once)


def jsonp_callback(request: web.Request) -> str | None:
    """The validated ?callback= name, None when absent; 400 naming the field when invalid."""
    raw = request.query_string
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
    if callback is not None:
        feed = feed.jsonp(callback)  # built once per callback and generation, like the headers
    if etag_matches(request, feed.etag):
        return web.Response(status=304, headers=feed.headers(max_age, with_type=False))
    return web.Response(body=feed.body, headers=feed.headers(max_age))
