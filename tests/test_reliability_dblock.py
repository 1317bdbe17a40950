"""Another process holding SQLite's write lock (the CLI mid-write) stalls no request: the database is used off the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bridge import database
from bridge.app import make_app
from bridge.keys import LIVE, READER, WRITER
from bridge.model import SourceHealth, Status
from bridge.settings import Settings
from bridge.storage import create_override
from tests.conftest import check, status_data, web_config

AUTH = {"Authorization": "Bearer secret"}
NOTICE = {"type": "unplanned", "subject": "Mail delays", "components": ["website"]}
PUBLIC = ("/api/services.json", "/", "/api/v2/summary.json", "/api/v1/components/website/metrics",
          "/api/v1/components", "/api/v1/notices", "/api/v1/admin/notices")
WAITS = 1500  # polls of 20 ms: a hang guard, not a speed bound
# A second process: take the write lock, say so, hold it until told (a line on stdin), then commit nothing.
HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""

Trace = list[tuple[int, str]]  # (thread ident, SQL) of every statement the app's connections ran


@pytest.fixture
def trace(monkeypatch: pytest.MonkeyPatch) -> Trace:
    """Record the thread and text of each statement on every SQLite connection opened from now on."""
    seen: Trace = []
    real = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real(*args, **kwargs)
        # SQLite calls this in the thread that runs the statement, as it starts (before any busy wait).
        conn.set_trace_callback(lambda sql: seen.append((threading.get_ident(), sql)))
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)
    return seen


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def fresh_app(tmp_path: Path, clock: Clock) -> Any:
    """The real app on a temp SQLite file, one admin token, all-up monitoring data."""
    settings = Settings(web_config(), watch=False, db_path=tmp_path / "db.sqlite", admin_tokens=("secret",))
    app = make_app(settings, clock=clock)
    feed(app, 0, clock.now)
    return app


def feed(app: Any, state: int, created: float) -> None:
    """Publish a new generation: website's HTTP in `state`, the database up."""
    health = SourceHealth(stale=False, data_created=created)
    app[LIVE].update(status_data(check("web-1", "HTTP", state), check("db-1", "PostgreSQL"), created=created), health)


@asynccontextmanager
async def lock_held_by_another_process(path: Path) -> AsyncIterator[None]:
    """A child process holds the database's write lock (BEGIN IMMEDIATE) for the body of the with block."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", HOLDER, str(path), stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"locked\n"
        yield
    finally:
        proc.stdin.write(b"\n")
        await proc.stdin.drain()
        proc.stdin.close()
        assert await asyncio.wait_for(proc.wait(), 30) == 0


def count(path: Path, table: str) -> int:
    """Rows in table, read through a connection of the test's own."""
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"select count(*) from {table}").fetchone()[0])
    finally:
        conn.close()


async def test_public_and_admin_reads_answer_while_another_process_holds_the_write_lock(
        aiohttp_client: Any, tmp_path: Path, trace: Trace, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    # However slow this machine, the admin write keeps waiting until the test releases the lock (no 503 race).
    monkeypatch.setattr(database, "BUSY_TIMEOUT", 3600.0)
    clock = Clock()
    app = fresh_app(tmp_path, clock)
    client = await aiohttp_client(app)
    loop_thread, recorder = threading.get_ident(), app[LIVE].recorder
    assert (await client.post("/api/v1/admin/notices", json=NOTICE, headers=AUTH)).status == 201  # linked: v2 reads
    await recorder.flush()
    history_thread = recorder.writer.thread.ident
    async with lock_held_by_another_process(tmp_path / "db.sqlite"):
        mark = len(trace)
        feed(app, 2, clock.now)  # a new generation: every cached document is read again, under the lock
        post = asyncio.create_task(client.post("/api/v1/admin/notices", json={**NOTICE, "subject": "Late"}, headers=AUTH))
        for _ in range(WAITS):  # until the admin write has asked SQLite for the lock
            if any(sql == "BEGIN IMMEDIATE" and t != history_thread for t, sql in trace[mark:]):
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the admin write never reached SQLite")
        for path in PUBLIC:
            resp = await client.get(path, headers=AUTH)
            assert resp.status == 200, (path, await resp.text())
        # Ordering, not time: every read above was answered while the write it queued behind still waits.
        assert not post.done(), "an admin write waiting for the lock held up the event loop"
        during = trace[mark:]
    resp = await asyncio.wait_for(post, 60)
    assert resp.status == 201, await resp.text()
    assert count(tmp_path / "db.sqlite", "notices") == 2
    subjects = [a["message"] for a in await (await client.get("/api/announcements.json")).json()]
    assert any(s.startswith("Late") for s in subjects)  # and republished
    # The reads went to SQLite (the history, in a thread), and nothing touched SQLite on the loop meanwhile.
    assert any("from history" in sql and t != loop_thread for t, sql in during)
    assert [sql for t, sql in during if t == loop_thread] == []
    await recorder.flush()


async def test_admin_write_behind_a_lock_held_past_the_busy_timeout_is_a_503_and_stores_nothing(
        aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    client = await aiohttp_client(fresh_app(tmp_path, Clock()))
    monkeypatch.setattr(database, "BUSY_TIMEOUT", 0.2)  # the lock is held until the answer has come: any value works
    before = count(tmp_path / "db.sqlite", "notices")
    async with lock_held_by_another_process(tmp_path / "db.sqlite"):
        resp = await asyncio.wait_for(client.post("/api/v1/admin/notices", json=NOTICE, headers=AUTH), 60)
        body = await resp.json()
        assert resp.status == 503, body
        assert body["error"]["field"] == "database" and "nothing was written" in body["error"]["message"]
        assert resp.headers["Retry-After"] == "1" and resp.headers["Cache-Control"] == "no-store"
    assert count(tmp_path / "db.sqlite", "notices") == count(tmp_path / "db.sqlite", "notice_updates") == before
    assert (await client.post("/api/v1/admin/notices", json=NOTICE, headers=AUTH)).status == 201  # a retry works


async def test_admin_and_scheduler_sqlite_calls_run_in_the_database_threads(
        aiohttp_client: Any, tmp_path: Path, trace: Trace) -> None:  # fmt: skip
    clock = Clock()
    app = fresh_app(tmp_path, clock)
    client = await aiohttp_client(app)
    loop_thread = threading.get_ident()
    mark = len(trace)

    async def call(method: str, path: str, status: int, body: object = None) -> dict[str, Any]:
        resp = await client.request(method, "/api/v1/admin" + path, json=body, headers=AUTH)
        assert resp.status == status, await resp.text()
        return {} if status == 204 else await resp.json()

    planned = {**NOTICE, "type": "planned", "begins_at": clock.now + 100, "ends_at": clock.now + 200}
    n = (await call("POST", "/notices", 201, planned))["notice"]
    await call("PATCH", f"/notices/{n['id']}", 200, {"subject": "Mail upgrade"})
    await call("PUT", f"/notices/{n['id']}/components", 200, {"components": ["website"]})
    await call("POST", f"/notices/{n['id']}/updates", 201, {"content": "Still planned"})
    await call("GET", f"/notices/{n['id']}", 200)
    await call("GET", "/notices", 200)
    o = (await call("POST", "/overrides", 201, {"component": "website", "status": "down"}))["override"]
    await call("PATCH", f"/overrides/{o['id']}", 200, {"message": "Moving"})
    await call("GET", "/overrides", 200)
    await call("DELETE", f"/overrides/{o['id']}", 204)
    # The scheduler: another process's write, seen by its poll, and a planned transition falling due.
    await asyncio.to_thread(cli_override, tmp_path / "db.sqlite", clock.now)
    clock.now += 100
    for _ in range(WAITS):
        snap = app[LIVE].snapshot
        shown = next(c for g in snap.groups for c in g.components if c.id == "database").status
        if shown == Status.PARTIAL and snap.notices[0].state == "underway":
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the scheduler never published the other process's override and the due transition")
    ran = trace[mark:]
    assert [sql for t, sql in ran if t == loop_thread] == [], "SQLite ran on the event loop"
    writer, reader = app[WRITER].ident, app[READER].ident
    assert writer is not None and reader is not None and len({writer, reader, loop_thread}) == 3
    by_writer = [sql for t, sql in ran if t == writer]
    for table in ("notices", "notice_updates", "notice_components", "overrides"):  # every admin write, there
        assert any(sql.startswith(("INSERT INTO", "UPDATE", "DELETE FROM")) and f"{table}" in sql for sql in by_writer), table
    assert any("data_version" in sql for sql in by_writer)  # the scheduler's poll
    assert sum(sql.startswith("INSERT INTO") and "notice_updates" in sql for sql in by_writer) == 3  # the transition
    assert any("from notices" in sql for t, sql in ran if t == reader)  # the admin GETs


def cli_override(path: Path, now: float) -> None:
    """What `status-bridge override add` does, from another connection."""
    cli = database.open_db(path)
    try:
        create_override(cli, component_id="database", status=Status.PARTIAL, starts_at=now - 1, ends_at=None, now=now)
    finally:
        cli.close()
