"""The gate every route runs behind: in-flight count, admin/public listener split, per-client rate limit, JSON errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from bridge.body import body_unread
from bridge.config import Config
from bridge.http import ApiError, error_response
from bridge.ratelimit import RateLimiter, request_client, too_many
from bridge.server import expect_handler

log = logging.getLogger("bridge.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ADMIN_PREFIX = "/api/v1/admin"
METRICS_PATH = "/metrics"  # admin-side too when [http] metrics = "admin"
# Probes poll on a schedule and get a few hundred bytes. /metrics is charged: a scraper's one request per
# interval never nears the limit, while an exempt 77 KB answer would let one client pull unbounded bytes.
EXEMPT = frozenset({"/healthz"})
# These carry their own token: every request is charged except an accepted one (a valid token and a stored
# submission or a successful admin action), so a Nagios pushing hundreds of results a second or a script posting
# incident updates is never throttled, while token guessing, NRDP's hello and 404/405s under these paths are.
TOKEN_PREFIXES = ("/api/v1/check-results", "/nrdp", ADMIN_PREFIX)
_WILDCARDS = ("0.0.0.0", "::", "")


def _host(value: str) -> str:
    """A socket host without an IPv4-mapped prefix, so dual-stack and plain sockets compare equal."""
    return value.removeprefix("::ffff:") if "." in value else value


def is_admin_path(path: str) -> bool:
    """True for the admin API's paths."""
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


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


class InFlight:
    """Counts requests being handled, so a graceful stop can wait for them; while draining, no keep-alive."""

    def __init__(self) -> None:
        """Idle, not draining."""
        self.count = 0
        self.draining = False
        self.idle: asyncio.Event | None = None  # set by the gate when the last request finishes (while waited for)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is being handled; False when timeout passed first."""
        if not self.count:
            return True
        self.idle = asyncio.Event()
        try:
            await asyncio.wait_for(self.idle.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self.idle = None


class HasConfig(Protocol):
    """Where the gate reads the current configuration (the Live model: a reload swaps its config)."""

    config: Config


class Front:
    """Wraps each route's handler in the gate; a catch-all route answers 404/405 in the same JSON shape.

    Not an aiohttp middleware on purpose: any middleware makes aiohttp add its own layer too, and the
    two cost ~9 us per request, a tenth of serving a cached feed (bench/README.md, feed serving).
    """

    def __init__(self, inflight: InFlight, listeners: Listeners, limiter: RateLimiter, live: HasConfig) -> None:
        """The limiter takes live.config's limits at the first request, and again after each reload."""
        self.inflight, self.listeners, self.limiter, self.live = inflight, listeners, limiter, live
        self.catch_all: web.AbstractResource | None = None
        self.config: Config | None = None  # the configuration the limiter was last set from
        self._accepted: set[int] = set()  # id() of requests in flight that a handler accepted (see accept())

    def accept(self, request: web.BaseRequest) -> None:
        """Mark a request as accepted with a valid token: the rate limit does not charge it if it answers < 400."""
        # Not the status code: NRDP answers 200 to every request, refused ones included.
        self._accepted.add(id(request))

    def _configure(self, config: Config) -> None:
        """Take the limits of a new configuration (the first request after a reload sees them)."""
        self.limiter.configure(config.rate_limit, config.burst)
        self.config = config

    def _admin_side(self, path: str) -> bool:
        """True for what only the admin listener serves: the admin API, and /metrics when [http] metrics says so."""
        return is_admin_path(path) or (path == METRICS_PATH and self.live.config.metrics == "admin")

    def _admit(self, request: web.Request) -> tuple[float, object]:
        """Seconds the request must wait (0: go on) and the bucket to charge unless it is accepted; 404 off its listener."""
        listeners, limiter = self.listeners, self.limiter
        path = request.path
        on_admin = listeners.on_admin(request) if listeners.admin else False
        if listeners.admin and self._admin_side(path) != on_admin:
            # 404, not 403: the public side should not even reveal that an admin API exists.
            raise web.HTTPNotFound()
        if limiter.rate <= 0 or path in EXEMPT or on_admin:
            return 0.0, None
        client = request_client(request, self.live.config.trusted_proxies)
        if path.startswith(TOKEN_PREFIXES):
            # Carries its own token: charged unless accepted (below), but refused while over the limit.
            charge = ("token", client)
            if wait := limiter.wait(charge):
                limiter.limited_total += 1
            return wait, charge
        return limiter.take(client), None

    def wrap(self, handler: Handler) -> Handler:
        """handler behind the gate."""
        inflight, listeners, limiter, live = self.inflight, self.listeners, self.limiter, self.live

        async def gated(request: web.Request) -> web.StreamResponse:
            """Gate the request (404 off its listener, 429 over its limit), run it, turn any error into the JSON shape."""
            inflight.count += 1
            charge: object = None  # a token-carrying request's bucket key, charged unless it is accepted
            wait = 0.0
            try:
                try:
                    if live.config is not self.config:
                        self._configure(live.config)
                    # The hot path (a cached feed, no limit, one listener) pays for no further lookups.
                    if listeners.admin or limiter.rate > 0:
                        wait, charge = self._admit(request)
                    resp = too_many(wait, limiter.rate, limiter.burst) if wait else await handler(request)
                except ApiError as e:
                    resp = error_response(e.status_code, e.message, e.field)
                except web.RequestPayloadError:
                    # A body aiohttp cannot decode (Content-Encoding over junk, broken chunks): the client's doing.
                    resp = error_response(400, "malformed request body (Content-Encoding or chunked framing)", "body")
                except web.HTTPException as e:
                    if e.status_code < 400:
                        raise
                    resp = error_response(e.status_code, e.reason or "error")
                    if "Allow" in e.headers:
                        resp.headers["Allow"] = e.headers["Allow"]  # a 405 names the methods that would do
                except ConnectionResetError:
                    # The client went away while its body was being read: nobody to answer, and no error of ours
                    # (logged at ERROR with a traceback, every client could write 20 lines at will).
                    log.debug("client disconnected during %s %s", request.method, request.path)
                    resp = error_response(400, "client disconnected")
                except Exception:
                    log.exception("unhandled error for %s %s", request.method, request.path)
                    resp = error_response(500, "internal error")
                if charge is not None and not wait and not (resp.status < 400 and id(request) in self._accepted):
                    limiter.take(charge)
                if inflight.draining or body_unread(request):
                    # "Connection: close": a draining daemon's clients reconnect to a new instance, and a body
                    # still arriving is not read on after its answer (see body_unread).
                    resp.force_close()
                return resp
            finally:
                if self._accepted:
                    self._accepted.discard(id(request))
                inflight.count -= 1
                if not inflight.count and inflight.idle is not None:
                    inflight.idle.set()

        return gated

    async def unrouted(self, request: web.Request) -> web.StreamResponse:
        """No route took the request: 405 when another method would have, else 404."""
        allowed: set[str] = set()
        for resource in request.app.router.resources():
            if resource is self.catch_all:
                continue
            match, methods = await resource.resolve(request)
            allowed |= methods
        if allowed:
            raise web.HTTPMethodNotAllowed(request.method, allowed)
        raise web.HTTPNotFound()


LISTENERS = web.AppKey("listeners", Listeners)
INFLIGHT = web.AppKey("inflight", InFlight)
FRONT = web.AppKey("front", Front)


def route(app: web.Application, method: str, path: str, handler: Handler) -> None:
    """Register handler behind the app's gate (GET also answers HEAD, as aiohttp's add_get does)."""
    gated = app[FRONT].wrap(handler)
    if method == "GET":
        app.router.add_get(path, gated, expect_handler=expect_handler)
    else:
        app.router.add_route(method, path, gated, expect_handler=expect_handler)


def add_catch_all(app: web.Application) -> None:
    """Last of all routes: what nothing else matched gets the JSON 404/405 (aiohttp's own would be plain text)."""
    front = app[FRONT]
    gated = front.wrap(front.unrouted)
    front.catch_all = app.router.add_route("*", "/{tail:.*}", gated, expect_handler=expect_handler).resource
