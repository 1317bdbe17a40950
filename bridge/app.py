"""The one application factory used by the CLI, the tests and `status-bridge get`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from bridge.admin import add_admin_routes
from bridge.history import HistoryRecorder
from bridge.http import error_middleware
from bridge.keys import DB, HEALTH, LIVE, REFRESH, REGISTRY, SETTINGS
from bridge.live import Live
from bridge.metrics import SnapshotCollector, make_registry
from bridge.schedule import SCHEDULER, Scheduler, scheduler_ctx
from bridge.settings import Settings
from bridge.storage import list_notices, list_overrides, open_db
from bridge.views import add_routes
from bridge.views_page import add_page_routes
from bridge.views_passive import add_passive
from bridge.views_v1 import add_v1_routes

log = logging.getLogger("bridge.app")

FIRST_LOAD_TIMEOUT = 30.0  # a 100k-service status.dat parses in about a second; never hang start-up


def make_app(settings: Settings, clock: Callable[[], float] = time.time) -> web.Application:
    """Build the aiohttp application; background sources start in cleanup_ctx; clock is injectable for tests."""
    app = web.Application(middlewares=[error_middleware])
    live = Live(settings.config, clock)
    app[SETTINGS] = settings
    app[LIVE] = live
    app[HEALTH] = lambda now: live.health
    app[REGISTRY] = make_registry(SnapshotCollector(live, lambda now: app[HEALTH](now)))
    db = open_db(settings.db_path or ":memory:")
    app[DB] = db
    # Every change of a component's status is appended to the history (read back for uptime metrics).
    live.recorder = HistoryRecorder(db)
    scheduler = Scheduler(db, live, clock)
    app[SCHEDULER] = scheduler
    # After a write through this connection: apply due transitions, reschedule, republish.
    app[REFRESH] = scheduler.refresh
    # Read-only until start-up: due transitions are applied (and written) by the scheduler's first sync.
    live.set_notices(list_notices(db), list_overrides(db))
    app.on_cleanup.append(_close_db)
    add_routes(app)
    add_admin_routes(app)
    add_v1_routes(app)
    add_page_routes(app)
    add_passive(app)  # /nrdp/ and /api/v1/check-results, their metrics and publisher
    # First, so the first monitoring snapshot is already published with the notices and overrides.
    app.cleanup_ctx.append(scheduler_ctx)
    if settings.demo_dir is not None:
        app.cleanup_ctx.append(_demo_ctx)
    if settings.watch and settings.config.statusdat_path is not None:
        app.cleanup_ctx.append(_statusdat_ctx)
    if settings.watch and settings.config.icinga_url:
        app.cleanup_ctx.append(_icinga_ctx)
    return app


async def _close_db(app: web.Application) -> None:
    """Close the SQLite connection on shutdown."""
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
    await _cancel(task)


async def _statusdat_ctx(app: web.Application) -> AsyncIterator[None]:
    """Tail status.dat: publish every good snapshot and every health change (incl. going stale by age)."""
    from bridge.tail import StatusDatTailer

    settings, live = app[SETTINGS], app[LIVE]
    assert settings.config.statusdat_path is not None
    first = asyncio.Event()

    def on_change() -> None:
        live.update(tailer.current, tailer.health(live.clock()))
        first.set()

    tailer = StatusDatTailer(settings.config.statusdat_path, settings.config.stale_after, on_change)
    app[HEALTH] = tailer.health
    run = asyncio.create_task(tailer.run())
    with contextlib.suppress(asyncio.TimeoutError):
        # Serve the first snapshot rather than a "no data" page when the file is there.
        await asyncio.wait_for(first.wait(), FIRST_LOAD_TIMEOUT)
    yield
    await _cancel(run)


async def _icinga_ctx(app: web.Application) -> AsyncIterator[None]:
    """Follow Icinga 2's API: publish the synced checks and every health change as the "icinga" source."""
    from bridge.icinga import IcingaSource
    from bridge.merge import SourceView

    settings, live = app[SETTINGS], app[LIVE]
    first = asyncio.Event()

    def on_change() -> None:
        live.update_source(SourceView("icinga", source.current, source.health(live.clock())))
        first.set()

    # Reads the password file and the CA now: a bad [icinga] section fails start-up with a ConfigError.
    source = IcingaSource.from_config(settings.config, on_change, clock=live.clock)
    run = asyncio.create_task(source.run())
    with contextlib.suppress(asyncio.TimeoutError):
        # The first sync (or the first failure) decides what the first page shows.
        await asyncio.wait_for(first.wait(), FIRST_LOAD_TIMEOUT)
    yield
    await _cancel(run)


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel a background task and wait for it, surfacing a crash in the log."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        try:
            await task
        except Exception:
            log.exception("background task failed")
