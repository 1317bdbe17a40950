"""GET /metrics: the Prometheus text encoded at most once per published generation and time bucket, then served from memory."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from bridge.encoded import DocCache, Encoded
from bridge.front import LISTENERS, Handler, Listeners, route
from bridge.keys import LIVE, REGISTRY
from bridge.live import Live
from bridge.metrics import SCRAPE_SECONDS

# The text format prometheus_client's generate_latest writes, whatever Accept asks for (as before the cache).
HEADERS = CIMultiDictProxy(CIMultiDict({hdrs.CONTENT_TYPE: CONTENT_TYPE_LATEST, hdrs.CACHE_CONTROL: "no-store"}))


class ScrapeCache:
    """The registry's text for the current snapshot and time bucket; every scrape in between shares it.

    Counters (pushes, 429s, Icinga events), ages and the process figures move without a new generation,
    hence the bucket of SCRAPE_SECONDS too. A flood then costs one encoding (~4 ms at 100 components)
    per bucket instead of one per request (bench/scrape.py). Encoding stays on the loop: collectors
    read dicts the loop mutates.
    """

    def __init__(self, registry: CollectorRegistry, live: Live, clock: Callable[[], float] = time.monotonic,
                 seconds: float = SCRAPE_SECONDS) -> None:  # fmt: skip
        """clock only times the buckets (monotonic: a wall-clock step must not pin an old body)."""
        self.registry, self.live, self.clock = registry, live, clock
        self.docs = DocCache(seconds)

    def body(self) -> bytes:
        """The current text: cached, or collected now when the generation or the bucket changed since."""
        doc = self.docs.get(self.live.snapshot, self.clock(), "")
        if doc is None:
            # No ETag: a scraper wants the body each time, and no-store keeps proxies from holding it.
            doc = self.docs.put("", Encoded(generate_latest(self.registry), "", CONTENT_TYPE_LATEST))
        return doc.body


def serves_metrics(mode: str, listeners: Listeners, request: web.Request) -> bool:
    """Whether [http] metrics lets this listener answer /metrics (the gate already 404s "admin" on a split public side)."""
    return mode == "public" or (mode == "admin" and listeners.on_admin(request))


SCRAPE = web.AppKey("scrape", ScrapeCache)


def metrics_handler(app: web.Application) -> Handler:
    """GET /metrics from the app's ScrapeCache; 404 where [http] metrics keeps it away."""
    live, listeners, scrape = app[LIVE], app[LISTENERS], app[SCRAPE]

    async def metrics(request: web.Request) -> web.Response:
        """GET /metrics: Prometheus text format from a private registry, encoded at most once per bucket."""
        if not serves_metrics(live.config.metrics, listeners, request):
            raise web.HTTPNotFound()
        return web.Response(body=scrape.body(), headers=HEADERS)

    return metrics


def add_metrics_route(app: web.Application) -> None:
    """Register GET /metrics over app[REGISTRY] (collectors registered later are read too: the registry is shared)."""
    app[SCRAPE] = ScrapeCache(app[REGISTRY], app[LIVE])
    route(app, "GET", "/metrics", metrics_handler(app))
