"""The one application factory used by the CLI, the tests and `status-bridge get`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from bridge.admin import add_admin_routes
from bridge.conns import CONNECTIONS, ConnectionGuard, ConnectionsCollector, Guards
from bridge.database import open_db
from bridge.db_thread import DbThread
from bridge.front import (
    FRONT,
    INFLIGHT,
    LISTENERS,
    Front,
    InFlight,
    Listeners,
    add_catch_all,
)
from bridge.history import KINDS, HistoryRecorder
from bridge.keys import DB, HEALTH, LIVE, READER, REFRESH, REGISTRY, SETTINGS, WRITER
from bridge.logs import StateLoggingLive
from bridge.metrics import SnapshotCollector, make_registry
from bridge.ratelimit import LimiterCollector, RateLimiter
from bridge.reload import SOURCES, Sources, sources_ctx
from bridge.schedule import SCHEDULER, Scheduler, scheduler_ctx
from bridge.server import on_prepare
from bridge.settings import Settings
from bridge.source_metrics import IcingaCollector, SourceCollector
from bridge.storage import list_notices, list_overrides
from bridge.tasks import cancel_and_wait
from bridge.views import add_routes
from bridge.views_page import add_page_routes
from bridge.views_passive import add_passive
from bridge.views_v1 import add_v1_routes

log = logging.getLogger("bridge.app")


def make_app(settings: Settings, clock: Callable[[], float] = time.time) -> web.Application:
    """Build the aiohttp application; background sources start in cleanup_ctx; clock is injectable for tests."""
    live = StateLoggingLive(settings.config, clock)  # logs each component state change
    config = settings.config
    limiter = RateLimiter(config.rate_limit, config.burst)
    listeners = Listeners()  # the daemon fills in the admin socket when [http] admin_listen is set

    inflight = InFlight()  # a graceful stop waits for the requests it counts
    app = web.Application()
    app.on_response_prepare.append(on_prepare)  # nosniff and a versionless Server header on every answer
    app[FRONT] = Front(inflight, listeners, limiter, live)  # every route is registered behind it
    app[INFLIGHT] = inflight
    app[SETTINGS] = settings
    app[LIVE] = live
    app[LISTENERS] = listeners
    sources = Sources(live, settings.watch)
    app[SOURCES] = sources  # the status.dat tailer and Icinga, retargeted by a reload
    app[HEALTH] = sources.health
    app[REGISTRY] = make_registry(SnapshotCollector(live, lambda now: app[HEALTH](now)))
    app[REGISTRY].register(LimiterCollector(limiter))
    app[REGISTRY].register(SourceCollector(live, clock))
    app[REGISTRY].register(IcingaCollector(lambda: sources.icinga))
    # Connection caps per listener, applied by the daemon's accept loop (bridge/accept.py).
    app[CONNECTIONS] = Guards(ConnectionGuard(live, "public"), ConnectionGuard(live, "admin"))
    app[REGISTRY].register(ConnectionsCollector(app[CONNECTIONS]))
    db = open_db(settings.db_path or ":memory:")  # start-up: migrations, and the notices below
    app[DB] = db
    # Requests and the scheduler wait for these threads, never for the database: an fsync or the CLI holding
    # the write lock stalls only them. Each has its own connection (an in-memory DB is used inline on the loop).
    app[WRITER] = DbThread.for_db("writer", db)
    app[READER] = DbThread.for_db("reader", db, readonly=True)
    # Every change of a component's status is appended to the history (read back for uptime metrics).
    live.recorder = HistoryRecorder(db)
    # First: started before anything publishes, stopped (its queue flushed) after everything that publishes.
    app.cleanup_ctx.append(_history_ctx)
    scheduler = Scheduler(app[WRITER], live, clock)
    app[SCHEDULER] = scheduler
    # After a write: apply due transitions, reschedule, republish (reading in the writer thread).
    app[REFRESH] = scheduler.refresh
    # Read-only until start-up: due transitions are applied (and written) by the scheduler's first sync.
    live.set_notices(list_notices(db), list_overrides(db))
    app.on_cleanup.append(_close_db)
    add_routes(app)
    add_admin_routes(app)
    add_v1_routes(app)
    add_page_routes(app)
    add_passive(app)  # /nrdp/ and /api/v1/check-results, their metrics and publisher
    add_catch_all(app)  # last: JSON 404/405 for whatever no route above matched
    # First, so the first monitoring snapshot is already published with the notices and overrides.
    app.cleanup_ctx.append(scheduler_ctx)
    if settings.demo_dir is not None:
        app.cleanup_ctx.append(_demo_ctx)
    # Tailer and Icinga; a bad [icinga] section (unreadable password file) fails start-up with a ConfigError.
    app.cleanup_ctx.append(sources_ctx)
    return app


async def _history_ctx(app: web.Application) -> AsyncIterator[None]:
    """Write status history in its own thread and connection; at shutdown, flush what is queued (bounded)."""
    recorder = app[LIVE].recorder
    assert recorder is not None
    await recorder.start((c.id, kind) for g in app[LIVE].config.groups for c in g.components for kind in KINDS)
    yield
    await recorder.stop()


async def _close_db(app: web.Application) -> None:
    """Close the database threads, then the loop's connection (on_cleanup: after every cleanup_ctx, so the flush)."""
    await asyncio.gather(app[WRITER].close(), app[READER].close())
    app[DB].close()


async def _demo_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the demo simulator that rewrites a status.dat the way Nagios does."""
    from bridge.demo.simulator import run_simulator

    settings = app[SETTINGS]
    assert settings.demo_dir is not None
    path = settings.config.statusdat_path or settings.demo_dir / "status.dat"
    task = asyncio.create_task(run_simulator(path, settings.demo_interval))
    # The tailer's first read should find a file, as it would beside a running Nagios.
    for _ in range(100):
        if path.exists() or task.done():
            break
        await asyncio.sleep(0.02)
    yield
    await cancel_and_wait(task)
