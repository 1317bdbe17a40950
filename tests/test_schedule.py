"""The scheduler: transitions at exact times, restart catch-up, override windows, changes from other processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlite_utils import Database

from bridge import schedule
from bridge.app import make_app
from bridge.database import open_db
from bridge.db_thread import DbThread
from bridge.encoded import Published
from bridge.keys import DB, LIVE, REFRESH
from bridge.live import Live
from bridge.model import ComponentView, SourceHealth, Status
from bridge.schedule import SCHEDULER, Scheduler
from bridge.settings import Settings
from bridge.storage import create_notice, create_override, get_notice, list_notices
from tests.conftest import HANG_GUARD, check, loop_until, status_data, web_config
from tests.test_passive import until_async

T = 1_700_000_000.0
HEALTHY = SourceHealth(stale=False, data_created=T)


class Clock:
    """A settable clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A connection to a temp database file (as the CLI or the admin API writes it)."""
    database = open_db(tmp_path / "db.sqlite")
    yield database
    database.close()


@pytest.fixture
async def writer(db: Database) -> AsyncIterator[DbThread]:
    """The daemon's writer thread on the same file, as the scheduler gets it."""
    thread = DbThread.for_db("writer", db)
    yield thread
    await thread.close()


class StoppingClock:
    """Real time, except that it never passes `until`: a wake-up the machine delays cannot skip a state."""

    def __init__(self) -> None:
        self.base, self.started = time.time(), time.monotonic()
        self.until = float("inf")

    def __call__(self) -> float:
        return min(self.base + time.monotonic() - self.started, self.until)


def all_up(live: Live, created: float = T) -> None:
    """Feed monitoring data with every check OK."""
    live.update(status_data(check("web-1", "HTTP"), check("db-1", "PostgreSQL"), created=created), HEALTHY)


def component(live: Live, cid: str) -> ComponentView:
    """A component of the published snapshot."""
    return next(c for g in live.snapshot.groups for c in g.components if c.id == cid)


def maintenance(db: Database, begins_at: float, ends_at: float | None, now: float = T - 86400) -> int:
    """A scheduled maintenance on the database component."""
    return create_notice(db, type="planned", subject="DB upgrade", state="scheduled", content="Planned", now=now,
                         components=["database"], begins_at=begins_at, ends_at=ends_at).id


async def test_transitions_at_exact_times(db: Database, writer: DbThread) -> None:
    clock = Clock(T)
    live = Live(web_config(), clock)
    all_up(live)
    scheduler = Scheduler(writer, live, clock)
    nid = maintenance(db, T + 100, T + 200)
    await scheduler.sync()
    assert scheduler.next_at == T + 100
    assert (live.snapshot.sorry_state, component(live, "database").status) == ("operational", Status.UP)

    await scheduler.sync(T + 99)  # one second early: nothing
    assert get_notice(db, nid).state == "scheduled"  # type: ignore[union-attr]

    clock.now = T + 100
    await scheduler.sync()
    n = get_notice(db, nid)
    assert n is not None and (n.state, n.began_at, n.updates[-1].created_at) == ("underway", T + 100, T + 100)
    assert live.snapshot.sorry_state == "under_maintenance"
    db_view = component(live, "database")
    assert (db_view.status, db_view.monitored_status) == (Status.MAINTENANCE, Status.UP)
    assert scheduler.next_at == T + 200

    clock.now = T + 200
    await scheduler.sync()
    n = get_notice(db, nid)
    assert n is not None and (n.state, n.ended_at, n.updates[-1].created_at) == ("complete", T + 200, T + 200)
    assert (live.snapshot.sorry_state, component(live, "database").status) == ("operational", Status.UP)
    assert scheduler.next_at is None
    await scheduler.sync(T + 300)
    assert len(get_notice(db, nid).updates) == 3  # type: ignore[union-attr]


async def test_override_start_and_end_republish(db: Database, writer: DbThread) -> None:
    clock = Clock(T)
    live = Live(web_config(), clock)
    all_up(live)
    scheduler = Scheduler(writer, live, clock)
    create_override(db, component_id="website", status=Status.DOWN, starts_at=T + 10, ends_at=T + 20,
                    message="Cut-over", now=T)
    await scheduler.sync()
    assert (component(live, "website").status, scheduler.next_at) == (Status.UP, T + 10)
    before = live.published.feeds["services"]

    clock.now = T + 10
    await scheduler.sync()
    site = component(live, "website")
    assert (site.status, site.monitored_status, site.since) == (Status.DOWN, Status.UP, T + 10)
    assert live.published.feeds["services"].etag != before.etag
    assert b'"message":"Cut-over"' in live.published.feeds["services"].body
    assert scheduler.next_at == T + 20

    clock.now = T + 20
    await scheduler.sync()
    assert (component(live, "website").status, component(live, "website").since) == (Status.UP, T + 20)
    assert live.published.feeds["services"].body == before.body
    assert scheduler.next_at is None


def test_since_survives_rebuilds_and_starts_at_daemon_start(db: Database) -> None:
    clock = Clock(T)
    live = Live(web_config(), clock)
    clock.now = T + 5
    all_up(live)  # first data: nodata -> up is not a change anyone saw
    assert component(live, "website").since == T
    clock.now = T + 30
    all_up(live, created=T + 30)  # same status: since kept
    assert component(live, "website").since == T
    clock.now = T + 60
    live.update(status_data(check("web-1", "HTTP", 2), check("db-1", "PostgreSQL"), created=T + 60), HEALTHY)
    assert (component(live, "website").since, component(live, "database").since) == (T + 60, T)


async def test_real_wakeup_fires_without_any_sync_call(db: Database, writer: DbThread) -> None:
    clock = StoppingClock()
    live = Live(web_config(), clock)
    all_up(live, created=clock())
    shown = [component(live, "website").status]  # each change of the website's published status, in order

    def published(old: object, new: Published) -> None:
        status = next(c.status for g in new.snapshot.groups for c in g.components if c.id == "website")
        if status != shown[-1]:
            shown.append(status)

    live.on_published = published  # type: ignore[method-assign]
    # A long poll interval: only the APScheduler date job can make this change visible.
    scheduler = Scheduler(writer, live, clock, poll_interval=60)
    await scheduler.start()
    try:
        start = clock() + 0.3
        clock.until = start  # until the window has been seen open: however late the job fires, it fires into it
        create_override(db, component_id="website", status=Status.PARTIAL, starts_at=start, ends_at=start + 0.3,
                        reason="Short", now=clock())
        await scheduler.refresh()  # the admin API's own write
        assert shown == [Status.UP]
        await loop_until(lambda: Status.PARTIAL in shown, "the window's start")
        clock.until = float("inf")
        await loop_until(lambda: shown[-1] == Status.UP, "the window's end")
        assert shown == [Status.UP, Status.PARTIAL, Status.UP]  # each change at its instant, by the date job alone
        assert scheduler.next_at is None
    finally:
        await scheduler.stop()


async def test_failed_sync_is_retried_by_the_poller(db: Database, writer: DbThread,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    live = Live(web_config())
    scheduler = Scheduler(writer, live, poll_interval=0.05)
    await scheduler.start()
    try:
        create_override(db, component_id="website", status=Status.DOWN, starts_at=0, ends_at=None, reason="x", now=0)
        real = schedule.list_notices
        calls = {"n": 0}

        def flaky(db: Database) -> list:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("database is locked")
            return real(db)

        monkeypatch.setattr(schedule, "list_notices", flaky)
        await scheduler.refresh()  # logged, not raised: the caller's write did succeed
        assert component(live, "website").status != Status.DOWN
        await loop_until(lambda: component(live, "website").status == Status.DOWN, "the poller's retry")
    finally:
        await scheduler.stop()


async def test_restart_catch_up_applies_missed_transitions(aiohttp_client, tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    offline = open_db(path)  # written before the daemon starts, as if it had been down
    done = maintenance(offline, T - 7200, T - 3600)
    running = maintenance(offline, T - 600, T + 600)
    offline.close()

    app = make_app(Settings(web_config(), watch=False, db_path=path), clock=Clock(T))
    client = await aiohttp_client(app)
    check_db = open_db(path)
    try:
        n = get_notice(check_db, done)
        assert n is not None
        assert [(u.state, u.created_at) for u in n.updates] == [
            ("scheduled", T - 86400), ("underway", T - 7200), ("complete", T - 3600)]
        assert (n.state, n.began_at, n.ended_at) == ("complete", T - 7200, T - 3600)
        m = get_notice(check_db, running)
        assert m is not None and (m.state, m.began_at) == ("underway", T - 600)
    finally:
        check_db.close()
    assert app[SCHEDULER].next_at == T + 600
    assert app[LIVE].snapshot.sorry_state == "under_maintenance"
    services = await (await client.get("/api/services.json")).json()
    assert services["groups"][1]["services"][0]["status"] == "maintenance"
    announcements = await (await client.get("/api/announcements.json")).json()
    assert [a["message"] for a in announcements] == ["DB upgrade: This maintenance is now underway."]


async def test_refresh_does_a_full_sync(aiohttp_client, tmp_path: Path) -> None:
    app = make_app(Settings(web_config(), watch=False, db_path=tmp_path / "db.sqlite"), clock=Clock(T))
    await aiohttp_client(app)
    nid = maintenance(app[DB], T - 10, T + 50)  # written by another connection; REFRESH reads it in the writer
    await app[REFRESH]()
    assert get_notice(app[DB], nid).state == "underway"  # type: ignore[union-attr]
    assert app[SCHEDULER].next_at == T + 50
    assert app[LIVE].snapshot.sorry_state == "under_maintenance"


async def test_change_by_another_process_shows_at_the_next_poll(
    aiohttp_client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "db.sqlite"
    app = make_app(Settings(web_config(), watch=False, db_path=path))
    client = await aiohttp_client(app)
    all_up(app[LIVE], created=time.time())
    # Each poll tick reads the database's data_version once (outside a sync); its syncs are logged after it.
    scheduler, real_version, real_sync = app[SCHEDULER], schedule.data_version, app[SCHEDULER].sync
    log: list[str] = []
    syncing = [False]

    def version(db: Database) -> int:
        if not syncing[0]:
            log.append("poll")
        return real_version(db)

    async def sync(now: float | None = None) -> None:
        syncing[0] = True
        try:
            await real_sync(now)
        finally:
            syncing[0] = False
            log.append("sync")

    monkeypatch.setattr(schedule, "data_version", version)
    monkeypatch.setattr(scheduler, "sync", sync)
    cli = open_db(path)  # what `status-bridge override ...` does while the daemon runs
    try:
        create_override(cli, component_id="website", status=Status.DOWN, starts_at=time.time() - 1, ends_at=None,
                        message="Switching provider", now=time.time())
        create_notice(cli, type="unplanned", subject="Website down", state="identified", content="Provider switch",
                      now=time.time(), components=["website"])
    finally:
        cli.close()
    written = len(log)
    site: dict = {}

    async def shown_down() -> bool:
        nonlocal site
        site = (await (await client.get("/api/services.json")).json())["groups"][0]["services"][0]
        return site["status"] == "down"

    await asyncio.wait_for(until_async(shown_down, every=0.2), HANG_GUARD)
    # The first poll after the write noticed it and synced: shown within one poll interval (0.5 s), not by luck.
    assert log[written:written + 2] == ["poll", "sync"] and scheduler.poll_interval == schedule.POLL_INTERVAL
    assert (site["status"], site["monitored_status"]) == ("down", "up")
    assert site["override"] == {"status": "down", "message": "Switching provider", "ends_at": None}
    announcements = await (await client.get("/api/announcements.json")).json()
    assert [a["message"] for a in announcements] == ["Website down: Provider switch"]
    assert app[LIVE].snapshot.sorry_state == "degraded"
    assert len(list_notices(app[DB])) == 1


async def test_overdue_change_is_caught_by_the_poller(db: Database, writer: DbThread) -> None:
    clock = Clock(T)
    live = Live(web_config(), clock)
    all_up(live)
    scheduler = Scheduler(writer, live, clock, poll_interval=0.05)
    create_override(db, component_id="website", status=Status.DOWN, starts_at=T + 3600, ends_at=None, reason="x", now=T)
    await scheduler.start()  # the real job is an hour away
    try:
        clock.now = T + 3600  # the wall clock stepped (or the machine slept) past the start
        await loop_until(lambda: component(live, "website").status == Status.DOWN, "the poller's catch-up")
        assert scheduler.next_at is None
    finally:
        await scheduler.stop()
