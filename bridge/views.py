"""Request handlers: parse the request, read the published generation, serialise."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bridge.front import route
from bridge.http import feed_response
from bridge.keys import HEALTH, LIVE, REGISTRY
from bridge.views_html import add_html_routes


async def services_json(request: web.Request) -> web.Response:
    """GET /api/services.json: the Oxford-compatible live status feed (JSON or JSONP)."""
    live = request.app[LIVE]
    return feed_response(request, live.published.feeds["services"], live.config.cache_seconds)


async def announcements_json(request: web.Request) -> web.Response:
    """GET /api/announcements.json: the Oxford-compatible announcements feed."""
    live = request.app[LIVE]
    return feed_response(request, live.published.feeds["announcements"], live.config.cache_seconds)


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: liveness plus data freshness; 200 while the daemon serves, stale in the body."""
    now = time.time()
    health = request.app[HEALTH](now)
    age = None if health.data_created is None else round(now - health.data_created, 3)
    body = {
        "status": "stale" if health.stale else "ok",
        "stale": health.stale,
        "reason": health.reason,
        "data_age_seconds": age,
        "last_error": health.last_error,
    }
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus text format from a private registry."""
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})


def add_routes(app: web.Application) -> None:
    """Register every public route."""
    add_html_routes(app)  # GET /, /notices/{id}, /widget.js
    route(app, "GET", "/api/services.json", services_json)
    route(app, "GET", "/api/announcements.json", announcements_json)
    route(app, "GET", "/healthz", healthz)
    route(app, "GET", "/metrics", metrics)

