"""The app's one middleware: in-flight count, admin/public listener split, per-client rate limit, JSON errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from bridge.config import Network
from bridge.http import ApiError, error_response
from bridge.ratelimit import RateLimiter, request_client, too_many

log = logging.getLogger("bridge.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Limits = Callable[[], tuple[float, int, Sequence[Network]]]

ADMIN_PREFIX = "/api/v1/admin"
EXEMPT = frozenset({"/healthz", "/metrics"})  # probes and scrapers poll on a schedule; both are cheap
# These carry their own token: only rejected attempts are charged, so a Nagios pushing hundreds of
# results a second or a script posting incident updates is never throttled, while token guessing is.
TOKEN_PREFIXES = ("/api/v1/check-results", "/nrdp", ADMIN_PREFIX)
DENIED = frozenset({401, 403})
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
        self._idle: asyncio.Event | None = None

    def done(self) -> None:
        """One request finished; wake a waiting stop when it was the last."""
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


LISTENERS = web.AppKey("listeners", Listeners)
INFLIGHT = web.AppKey("inflight", InFlight)


def front_middleware(inflight: InFlight, listeners: Listeners, limiter: RateLimiter, limits: Limits) -> Handler:
    """One middleware instead of four: aiohttp charges a few µs per layer, a tenth of a cached feed request."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Gate the request (404 off its listener, 429 over its limit), run it, turn any error into the JSON shape."""
        inflight.count += 1
        charge: object = None  # a token-carrying request's bucket key, charged only when it is rejected
        try:
            try:
                path = request.path
                on_admin = listeners.on_admin(request) if listeners.admin else False
                if listeners.admin and is_admin_path(path) != on_admin:
                    # 404, not 403: the public side should not even reveal that an admin API exists.
                    raise web.HTTPNotFound()
                rate, burst, trusted = limits()
                if rate != limiter.rate or burst != limiter.burst:
                    limiter.configure(rate, burst)  # a reload changed them
                wait = 0.0
                if rate > 0 and path not in EXEMPT and not on_admin:
                    client = request_client(request, trusted)
                    if path.startswith(TOKEN_PREFIXES):
                        charge = ("token", client)
                        if wait := limiter.wait(charge):
                            limiter.limited_total += 1
                    else:
                        wait = limiter.take(client)
                resp = too_many(wait, rate, burst) if wait else await handler(request)
            except ApiError as e:
                resp = error_response(e.status_code, e.message, e.field)
            except web.HTTPException as e:
                if e.status_code < 400:
                    raise
                resp = error_response(e.status_code, e.reason or "error")
            except Exception:
                log.exception("unhandled error for %s %s", request.method, request.path)
                resp = error_response(500, "internal error")
            if charge is not None and resp.status in DENIED:
                limiter.take(charge)
            if inflight.draining:
                resp.force_close()  # "Connection: close": the client reconnects to a new instance
            return resp
        finally:
            inflight.done()

    return middleware
