"""Request handlers: parse the request, read the published generation, serialise."""

from __future__ import annotations

import time

from aiohttp import web

from bridge.front import Handler, route
from bridge.http import feed_response
from bridge.keys import HEALTH, LIVE
from bridge.live import Live
from bridge.views_html import add_html_routes
from bridge.views_metrics import add_metrics_route


def feed_handler(live: Live, name: str) -> Handler:
    """A GET handler serving one of the feeds every generation publishes (JSON or JSONP).

    live is bound here, not read from request.app per request: these are the feeds widgets and
    pages poll during an outage, and the two lookups cost as much as the rest of the handler.
    """

    async def handler(request: web.Request) -> web.Response:
        return feed_response(request, live.published.feeds[name], live.config.cache_seconds)

    handler.__doc__ = f"GET the {name} feed (Oxford-compatible)."
    return handler


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: liveness plus data freshness; 200 while the daemon serves, stale in the body."""
    now = time.time()
    health = request.app[HEALTH](now)
    age = None if health.data_created is None else round(now - health.data_created, 3)
    page = request.app[LIVE].snapshot.page
    body = {
        "status": "stale" if health.stale else "ok",
        "stale": health.stale,
        "reason": health.reason,
        "data_age_seconds": age,
        "last_error": health.last_error,
        # What the page tells visitors right now (the same state as every public surface).
        "page_state": page.state,
        "page_headline": page.headline,
        # Each source as the page last took it: with several, one may be stale while the page is not.
        "sources": {
            v.name: {"stale": v.health.stale, "reason": v.health.reason,
                     "data_age_seconds": None if v.health.data_created is None else round(now - v.health.data_created, 3)}
            for v in request.app[LIVE].sources.values()
        },
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def add_routes(app: web.Application) -> None:
    """Register every public route."""
    add_html_routes(app)  # GET /, /notices/{id}, /widget.js
    route(app, "GET", "/api/services.json", feed_handler(app[LIVE], "services"))
    route(app, "GET", "/api/announcements.json", feed_handler(app[LIVE], "announcements"))
    route(app, "GET", "/healthz", healthz)
    add_metrics_route(app)  # GET /metrics

