"""Scheduled changes (planned transitions, override windows) derived from the DB, which stays the only truth."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from aiohttp import web
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlite_utils import Database

from bridge.database import data_version
from bridge.db_thread import Closed, DbThread
from bridge.live import Live
from bridge.notices import Notice, Override, due_transitions, next_change
from bridge.storage import apply_transitions, list_notices, list_overrides
from bridge.tasks import cancel_and_wait

log = logging.getLogger("bridge.schedule")

JOB_ID = "next-change"
POLL_INTERVAL = 0.5  # seconds between data_version checks: a CLI write shows within about this long


class Stored(NamedTuple):
    """What a sync read: the connection's data_version before the read, the notices and the overrides."""

    version: int
    notices: list[Notice]
    overrides: list[Override]


def load(db: Database, now: float) -> Stored:
    """Apply the transitions due at now, then read the notices and overrides (in the writer thread)."""
    # Read the version first: a commit landing after this read is caught by the next poll, not lost.
    version = data_version(db)
    notices = list_notices(db)
    due = due_transitions(notices, now)
    if due:
        # Catch-up after a restart is the same path: each update is stamped with its scheduled time.
        applied = apply_transitions(db, due, now)
        log.info("applied %d of %d due notice transitions", applied, len(due))
        notices = list_notices(db)
    return Stored(version, notices, list_overrides(db))


class Scheduler:
    """Applies due transitions, republishes notices/overrides and keeps ONE wake-up job at the next change.

    Every database call runs in the writer thread (bridge.db_thread); the loop only awaits and publishes.
    """

    def __init__(
        self, writer: DbThread, live: Live, clock: Callable[[], float] = time.time, poll_interval: float = POLL_INTERVAL
    ) -> None:
        self.writer, self.live, self.clock = writer, live, clock
        self.poll_interval = poll_interval
        self.next_at: float | None = None  # the next instant something scheduled changes (clock time)
        self._armed: float | None = None  # next_at of the job currently in APScheduler, if any
        self._version: int | None = None  # data_version when last synced
        self._dirty = False  # a sync failed: the poller retries even if nobody else writes
        self._poller: asyncio.Task[None] | None = None
        # One sync at a time, so an older read is never published over a newer one.
        self._syncing = asyncio.Lock()
        # No job store: jobs are rebuilt from the DB on every sync. A wake-up delayed by a busy loop
        # or a suspended machine must still run, hence no misfire grace limit.
        self._aps = AsyncIOScheduler(
            timezone=timezone.utc, job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1}
        )

    async def sync(self, now: float | None = None) -> None:
        """Apply due transitions, republish the stored notices and overrides as of now, re-arm the wake-up."""
        async with self._syncing:
            now = self.clock() if now is None else now
            stored = await self.writer.call(load, now)
            self.live.set_notices(stored.notices, stored.overrides, now)
            self._version, self._dirty = stored.version, False
            self.next_at = next_change(stored.notices, stored.overrides, now)
            if self._aps.running:
                self._arm(self.next_at, now)

    async def refresh(self) -> None:
        """sync() for REFRESH after a caller's own committed write: a failure is logged and retried by the poller."""
        try:
            await self.sync()
        except Closed:
            pass  # shutting down: nothing is published any more
        except Exception:
            # The write is stored; failing the caller's request would misreport it. The page catches up.
            log.exception("refresh after a write failed; retrying in the background")
            self._dirty = True

    async def start(self) -> None:
        """Initial sync (restart catch-up), then start the wake-up scheduler and the change poller."""
        await self.sync()
        self._aps.start()
        self._arm(self.next_at, self.clock())
        self._poller = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        """Stop the poller and the scheduler."""
        await cancel_and_wait(self._poller)
        self._poller = None
        if self._aps.running:
            self._aps.shutdown(wait=False)
            # APScheduler hands the shutdown to the loop (call_soon_threadsafe): let it run before we return.
            await asyncio.sleep(0)
        self._armed = None

    def _arm(self, at: float | None, now: float) -> None:
        """Make the one wake-up job fire at `at` (clock time), or remove it when nothing is scheduled."""
        if at == self._armed:
            return  # unchanged: skip the remove/add churn (and its log lines) on every write
        self._armed = at
        if at is None:
            with contextlib.suppress(JobLookupError):
                self._aps.remove_job(JOB_ID)
            return
        # The job waits in real time; the delay comes from our clock so an injected clock stays consistent.
        run_date = datetime.now(timezone.utc) + timedelta(seconds=max(0.0, at - now))
        self._aps.add_job(self._wake, "date", run_date=run_date, id=JOB_ID, replace_existing=True)

    async def _wake(self) -> None:
        """The job: a scheduled instant has come."""
        self._armed = None  # a date job is gone once it fired
        try:
            await self.sync()
        except Exception:
            log.exception("scheduled sync failed; retrying in the background")
            self._dirty = True

    async def _poll(self) -> None:
        """Sync when another connection (the CLI, another daemon) committed, a sync failed, or a change is overdue."""
        while True:
            await asyncio.sleep(self.poll_interval)
            was_dirty = self._dirty
            # Overdue: the job's timer runs on the monotonic clock, which stands still during a suspend
            # and ignores wall-clock steps; this catches a wake-up that would come late.
            overdue = self.next_at is not None and self.next_at <= self.clock()
            try:
                if self._dirty or overdue or await self.writer.call(data_version) != self._version:
                    await self.sync()
            except Exception:
                # Log a failure once, not every half second while the DB stays unavailable.
                if not was_dirty:
                    log.exception("syncing notices from the database failed; retrying")
                self._dirty = True


SCHEDULER = web.AppKey("scheduler", Scheduler)


async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: run the app's Scheduler for the app's lifetime."""
    scheduler = app[SCHEDULER]
    await scheduler.start()
    yield
    await scheduler.stop()
