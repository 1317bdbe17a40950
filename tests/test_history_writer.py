"""History writes off the event loop: order, a locked database, failures retried, shutdown flush (real SQLite files)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from bridge import history
from bridge.app import make_app
from bridge.database import open_db
from bridge.history import EFFECTIVE, MONITORED, HistoryRecorder, Record, append_records
from bridge.keys import LIVE
from bridge.live import Live
from bridge.settings import Settings
from tests.conftest import HANG_GUARD, Held, web_config
from tests.test_history import STALE_AFTER, Clock, T, fresh, rows, web

BOUND = HANG_GUARD  # no step of these tests may take longer, whatever goes wrong (never reached when they pass)


@asynccontextmanager
async def writing(path: Path, clock: Clock) -> AsyncIterator[tuple[Live, Database, HistoryRecorder]]:
    """A Live recording into the file at path through a started writer thread, as the app runs it."""
    db = open_db(path)
    live = Live(web_config(stale_after=STALE_AFTER), clock)
    recorder = live.recorder = HistoryRecorder(db)
    await recorder.start()
    assert recorder.writer is not None
    try:
        yield live, db, recorder
    finally:
        await recorder.stop()
        db.close()


@contextmanager
def write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's connection holding the database's write lock until the block ends."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


@contextmanager
def no_lock() -> Iterator[None]:
    """No lock."""
    yield


async def flushed(recorder: HistoryRecorder) -> None:
    """Wait (bounded) until every queued record has been written or has failed."""
    await asyncio.wait_for(recorder.flush(), BOUND)


def file_rows(path: Path) -> list[tuple[str, str, str, float]]:
    """Every history row in the file, read through a fresh connection."""
    with sqlite3.connect(path) as conn:
        return conn.execute("select component_id, kind, status, at from history order by id").fetchall()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A real SQLite file."""
    return tmp_path / "db.sqlite"


async def test_records_land_in_the_file_in_order(path: Path) -> None:
    clock = Clock(T)
    async with writing(path, clock) as (live, _db, recorder):
        for i, state in enumerate([0, 2, 0, 2, 0]):  # queued back to back, never waiting for a commit
            clock.now = T + 100 * i
            live.update(web(state, T + 100 * i - 50, T + 100 * i - 3), fresh(T + 100 * i - 3))
        await flushed(recorder)
    expected = [(s, T + 100 * i - 50) for i, s in enumerate(["up", "down", "up", "down", "up"])]
    found = file_rows(path)
    assert [(status, at) for cid, kind, status, at in found if (cid, kind) == ("website", MONITORED)] == expected
    assert [(status, at) for cid, kind, status, at in found if (cid, kind) == ("website", EFFECTIVE)] == expected


async def test_a_locked_database_does_not_block_the_loop(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit runs in the writer thread: while it waits for another connection's lock, the loop publishes and runs."""
    clock = Clock(T)
    # The second write (the first lands before the lock is taken) waits in its thread until the loop has run.
    write_held = Held(history.write_records, hold_call=2)
    monkeypatch.setattr(history, "write_records", write_held)  # before the writer thread takes it
    async with writing(path, clock) as (live, db, recorder):
        live.update(web(0, T - 5000, T - 3), fresh(T - 3))
        await flushed(recorder)
        with write_lock(path):  # say, the CLI in a long transaction
            clock.now = T + 100
            live.update(web(2, T + 61, T + 97), fresh(T + 97))  # returns with the write only queued
            assert live.snapshot.groups[0].components[0].status.value == "down"  # published at once

            async def meanwhile() -> None:
                await asyncio.sleep(0)
                assert rows(db, kind=MONITORED) == [(MONITORED, "up", T - 5000)]  # queued, not yet written

            await write_held.serve_loop_meanwhile(serve=meanwhile)
        # The lock is gone: the write that waited behind it lands.
        await flushed(recorder)
        write_held.assert_loop_ran_meanwhile()
        assert rows(db, kind=MONITORED) == [(MONITORED, "up", T - 5000), (MONITORED, "down", T + 61)]


@pytest.mark.parametrize("failure", ["write error", "locked past the busy timeout"])
async def test_a_failed_write_is_logged_and_retried_with_the_next_snapshot(
    path: Path, failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(T)
    async with writing(path, clock) as (live, db, recorder):
        assert recorder.writer is not None
        recorder.writer.db.execute("PRAGMA busy_timeout = 100")  # the writer is idle: its connection is free
        if failure == "write error":
            db.execute("create trigger no_writes before insert on history begin select raise(abort, 'disk full'); end")
        with caplog.at_level(logging.ERROR), write_lock(path) if failure != "write error" else no_lock():
            live.update(web(2, T - 600, T - 3), fresh(T - 3))
            await flushed(recorder)
        assert "recording 4 status changes failed" in caplog.text
        assert live.snapshot.groups[0].components[0].status.value == "down"  # still published
        assert rows(db) == []
        if failure == "write error":
            db.execute("drop trigger no_writes")
        clock.now = T + 10
        live.update(web(2, T - 600, T + 7), fresh(T + 7))  # the same status: retried, dated as before
        await flushed(recorder)
        assert rows(db) == [(MONITORED, "down", T - 600), (EFFECTIVE, "down", T - 600)]


async def test_a_row_another_writer_stored_first_is_taken_back(path: Path) -> None:
    clock = Clock(T)
    async with writing(path, clock) as (live, db, recorder):
        live.update(web(0, T - 5000, T - 3), fresh(T - 3))
        await flushed(recorder)
        other = open_db(path)  # a second daemon on the same file saw the outage first
        append_records(other, [Record("website", MONITORED, "down", T + 70)])
        other.close()
        clock.now = T + 100
        live.update(web(2, T + 61, T + 97), fresh(T + 97))
        await flushed(recorder)
        assert rows(db, kind=MONITORED) == [(MONITORED, "up", T - 5000), (MONITORED, "down", T + 70)]  # not twice
        assert recorder.last[("website", MONITORED)] == Record("website", MONITORED, "down", T + 70)


async def test_an_in_memory_database_is_written_at_once() -> None:
    recorder = HistoryRecorder(open_db(":memory:"))  # a second connection would be another database
    await recorder.start()
    assert recorder.writer is None
    recorder.commit([Record("c", EFFECTIVE, "up", T)])
    assert rows(recorder.db, "c") == [(EFFECTIVE, "up", T)]
    await recorder.stop()
    recorder.db.close()


async def test_shutdown_flushes_what_is_queued(aiohttp_client: Any, path: Path) -> None:
    app = make_app(Settings(web_config(), watch=False, db_path=path), clock=Clock(T))
    client = await aiohttp_client(app)
    with write_lock(path) as lock:
        app[LIVE].update(web(2, T - 600, T - 3), fresh(T - 3))
        # Released while the app shuts down: the shutdown waits for the queue, then closes the database.
        asyncio.get_running_loop().call_later(0.3, lock.execute, "COMMIT")
        await asyncio.wait_for(client.close(), BOUND)
    assert sorted(file_rows(path)) == sorted([
        ("database", MONITORED, "up", T - 864000), ("database", EFFECTIVE, "up", T - 864000),
        ("website", MONITORED, "down", T - 600), ("website", EFFECTIVE, "down", T - 600)])


async def test_shutdown_waits_a_bounded_time_and_reports_what_it_dropped(
    path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(T)
    write_started = Held(history.write_records)  # tells when the first write is in progress
    monkeypatch.setattr(history, "write_records", write_started)
    async with writing(path, clock) as (live, db, recorder):
        writer = recorder.writer
        assert writer is not None
        # Stuck behind the lock for as long as the test holds it: a stop that waited for the write would hang.
        writer.db.execute("PRAGMA busy_timeout = 600000")
        with write_lock(path), caplog.at_level(logging.ERROR):
            live.update(web(2, T - 600, T - 3), fresh(T - 3))  # in flight: waits for the lock
            await write_started.wait_entered()
            write_started.release()
            clock.now = T + 10
            live.update(web(0, T + 5, T + 7), fresh(T + 7))  # queued behind it
            await asyncio.wait_for(recorder.stop(timeout=0.2), BOUND)
            # Returned while the write it gave up on is still stuck behind the lock.
            assert write_started.events == ["entered"] and writer.thread.is_alive()
        assert "within 0.2 s (database locked?): 2 queued status changes dropped, 4 still being written" in caplog.text
        await asyncio.wait_for(asyncio.to_thread(writer.thread.join), BOUND)  # the write it was in lands
        assert rows(db, kind=MONITORED) == [(MONITORED, "down", T - 600)]
        # The dropped change was forgotten, so the next snapshot (written on the loop now) records it.
        clock.now = T + 20
        live.update(web(0, T + 5, T + 17), fresh(T + 17))
        assert rows(db, kind=MONITORED) == [(MONITORED, "down", T - 600), (MONITORED, "up", T + 5)]
