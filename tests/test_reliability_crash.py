"""Crash safety of the real daemon: kill -9 during admin writes, restart catch-up of schedules, honest history.

A write the admin API acknowledged (HTTP 201) is committed before the answer leaves, so a SIGKILL at any point
loses none of them; what was not acknowledged is either absent or complete, never half written. A restart
applies the planned transitions that fell due while the daemon was down and writes no false outage.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.admin import iso_ms
from bridge.database import open_db
from tests.bridgeproc import BridgeProcess
from tests.conftest import free_port
from tests.test_reliability_input import daemon_toml, nagios_statusdat, write_atomic

TOKEN = "crash-test-admin-token-5f1c"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


class Daemon(BridgeProcess):
    """`python -m bridge run` on a site directory (config, status.dat, token file, SQLite file)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        args = ("--db", str(self.db), "--admin-token-file", str(root / "admin.tokens"))
        super().__init__(root / "site.toml", free_port(), args, ready="/api/services.json")

    @property
    def db(self) -> Path:
        """The SQLite file."""
        return self.root / "bridge.db"

    def prepare(self) -> Daemon:
        """Write a fresh all-up status.dat, the config and the token file."""
        statusdat = self.root / "status.dat"
        write_atomic(statusdat, nagios_statusdat(time.time()))
        self.config.write_text(daemon_toml(statusdat, self.port))
        tokens = self.root / "admin.tokens"
        tokens.write_text(TOKEN + "\n")
        tokens.chmod(0o600)
        return self

    def kill9(self) -> None:
        """SIGKILL: no shutdown handler, no cleanup, no final commit."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.stop()  # only reaps it and drains its stderr now

    def request(self, method: str, path: str, body: object = None, timeout: float = 10) -> tuple[int, Any]:
        """One HTTP request with the admin token: (status, parsed JSON body or None)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=AUTH)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, json.loads(raw) if raw else None


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A prepared (not started) daemon; always stopped at the end."""
    d = Daemon(tmp_path).prepare()
    yield d
    d.stop()


def write_stream(d: Daemon, total: int, kill_after: int, workers: int = 4, mixed: bool = False) -> tuple[dict[tuple[str, str], str], int]:
    """`total` admin writes from `workers` threads; SIGKILL the daemon once `kill_after` were acknowledged.

    Writes are new notices, or with mixed also overrides and progress updates to acknowledged notices.
    Returns (acknowledged writes as (kind, key) -> text, how many requests failed without an answer).
    """
    acked: dict[tuple[str, str], str] = {}
    notices: list[int] = []
    lock = threading.Lock()
    counter = iter(range(total))
    failed = 0
    killed = threading.Event()

    def one(i: int) -> tuple[str, str, object]:
        """(kind, path, body) of the i-th write."""
        text = f"crash write {i}"
        kind = ("notice", "override", "update")[i % 3] if mixed else "notice"
        if kind == "update" and notices:
            return kind, f"/api/v1/admin/notices/{notices[i % len(notices)]}/updates", {"state": "identified", "content": text}
        if kind == "override":
            return kind, "/api/v1/admin/overrides", {"component": "website", "status": "partial", "message": text,
                                                     "ends_at": time.time() + 3600}  # fmt: skip
        return "notice", "/api/v1/admin/notices", {"type": "unplanned", "subject": text, "components": ["website"],
                                                   "content": f"body {i} " + "x" * 200}  # fmt: skip

    def worker() -> None:
        nonlocal failed
        while True:
            with lock:
                i = next(counter, None)
                if i is None:
                    return
                kind, path, body = one(i)
            try:
                status, answer = d.request("POST", path, body, timeout=5)
            except OSError:
                with lock:
                    failed += 1
                continue
            assert status == 201, (status, answer)
            with lock:
                if kind == "notice":
                    notices.append(answer["notice"]["id"])
                    acked[("notice", str(answer["notice"]["id"]))] = body["subject"]  # type: ignore[index]
                elif kind == "override":
                    acked[("override", str(answer["override"]["id"]))] = body["message"]  # type: ignore[index]
                else:
                    acked[("update", body["content"])] = body["content"]  # type: ignore[index]
                if len(acked) >= kill_after and not killed.is_set():
                    killed.set()
                    d.kill9()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "writer thread hung"
    return acked, failed


def check_db_after_crash(db_path: Path, acked: dict[tuple[str, str], str]) -> None:
    """Every acknowledged write is stored whole; anything else stored is whole too; the file is consistent."""
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
        assert conn.execute("pragma foreign_key_check").fetchall() == []
        stored = {("notice", str(i)): s for i, s in conn.execute("select id, subject from notices")}
        stored |= {("override", str(i)): r for i, r in conn.execute("select id, message from overrides")}
        stored |= {("update", c): c for (c,) in conn.execute("select content from notice_updates")}
        lost = {k: v for k, v in acked.items() if stored.get(k) != v}
        assert not lost, f"acknowledged writes lost after kill -9: {lost}"
        # Each notice (acknowledged or caught in flight) has its first update and its component: no half writes.
        for kind, nid in stored:
            if kind != "notice":
                continue
            assert conn.execute("select count(*) from notice_updates where notice_id = ?", [nid]).fetchone()[0] >= 1, nid
            comps = conn.execute("select component_id from notice_components where notice_id = ?", [nid]).fetchall()
            assert comps == [("website",)], nid
    finally:
        conn.close()


def test_storage_is_wal_with_full_sync(tmp_path: Path) -> None:
    """The durability settings are deliberate: WAL journal and synchronous=FULL on the daemon's connection."""
    db = open_db(tmp_path / "x.db")
    try:
        assert db.execute("pragma journal_mode").fetchone()[0] == "wal"
        assert db.execute("pragma synchronous").fetchone()[0] == 2  # FULL: the WAL is fsynced at every commit
        assert db.execute("pragma foreign_keys").fetchone()[0] == 1
    finally:
        db.close()


def test_kill_9_during_admin_writes_loses_no_acknowledged_write(daemon: Daemon) -> None:
    """200 POSTs from 4 clients, SIGKILL at a random point: every 201 is in the DB after restart, nothing half written."""
    seed = int(os.environ.get("RELIABILITY_SEED", random.randrange(1 << 30)))
    kill_after = random.Random(seed).randrange(20, 180)
    daemon.start()
    acked, failed = write_stream(daemon, 200, kill_after)
    assert len(acked) >= kill_after, f"seed {seed}"
    check_db_after_crash(daemon.db, acked)
    # The restarted daemon serves them all through the API.
    daemon.start()
    status, body = daemon.request("GET", "/api/v1/admin/notices")
    assert status == 200
    served = {("notice", str(n["id"])): n["subject"] for n in body["notices"]}
    assert all(served.get(k) == s for k, s in acked.items()), f"seed {seed}"
    err = daemon.stop()
    assert "Traceback" not in err, err


@pytest.mark.soak
def test_kill_9_soak_repeated_crashes_with_mixed_writes(daemon: Daemon) -> None:
    """Five kill -9 / restart cycles under 200 mixed writes each (8 clients): no acknowledged write is ever lost."""
    rng = random.Random(int(os.environ.get("RELIABILITY_SEED", random.randrange(1 << 30))))
    acked_all: dict[tuple[str, str], str] = {}
    for _ in range(5):
        daemon.start()
        acked, _failed = write_stream(daemon, 200, rng.randrange(10, 190), workers=8, mixed=True)
        acked_all.update(acked)
        check_db_after_crash(daemon.db, acked_all)
    daemon.start()
    status, body = daemon.request("GET", "/api/v1/admin/notices")
    assert status == 200 and {("notice", str(n["id"])) for n in body["notices"]} >= {k for k in acked_all if k[0] == "notice"}
    status, body = daemon.request("GET", "/api/v1/admin/overrides")
    assert status == 200 and {("override", str(o["id"])) for o in body["overrides"]} >= {k for k in acked_all if k[0] == "override"}
    assert "Traceback" not in daemon.stop()


def test_restart_applies_schedules_that_fell_due_while_down(daemon: Daemon) -> None:
    """A planned maintenance and an override that start while the daemon is dead are in force right after restart."""
    daemon.start()
    now = time.time()
    begins, ends = now + 1.5, now + 3600
    status, body = daemon.request("POST", "/api/v1/admin/notices", {
        "type": "planned", "subject": "DB upgrade", "components": ["database"], "begins_at": begins, "ends_at": ends,
    })
    assert status == 201, body
    planned = body["notice"]
    assert planned["state"] == "scheduled"
    status, body = daemon.request("POST", "/api/v1/admin/notices", {
        "type": "planned", "subject": "Short window", "components": ["database"], "begins_at": now + 1.0, "ends_at": now + 1.6,
    })
    assert status == 201, body
    short = body["notice"]
    status, body = daemon.request("POST", "/api/v1/admin/overrides", {
        "component": "website", "status": "partial", "starts_at": now + 1.5, "ends_at": now + 3600, "message": "Firewall work",
    })
    assert status == 201, body
    daemon.kill9()
    time.sleep(max(0.0, begins + 0.3 - time.time()))  # everything above falls due while nothing runs
    write_atomic(daemon.root / "status.dat", nagios_statusdat(time.time()))  # Nagios kept running meanwhile
    daemon.start()
    status, body = daemon.request("GET", f"/api/v1/admin/notices/{planned['id']}")
    assert status == 200 and body["notice"]["state"] == "underway", body
    underway = [u for u in body["notice"]["updates"] if u["state"] == "underway"]
    assert len(underway) == 1 and underway[0]["created_at"] == iso_ms(begins), body  # stamped at the scheduled time
    status, body = daemon.request("GET", f"/api/v1/admin/notices/{short['id']}")
    assert [u["state"] for u in body["notice"]["updates"]] == ["scheduled", "underway", "complete"], body
    status, feed = daemon.request("GET", "/api/services.json")
    shown = {s["id"]: s for g in feed["groups"] for s in g["services"]}
    assert shown["database"]["status"] == "maintenance" and shown["database"]["monitored_status"] == "up", shown
    assert shown["website"]["status"] == "partial" and shown["website"]["override"]["message"] == "Firewall work"
    assert shown["website"]["monitored_status"] == "up"
    err = daemon.stop()
    assert "Traceback" not in err, err


def history(db: Path) -> list[tuple[str, str, str, float]]:
    """Every history row in order."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute("select component_id, kind, status, at from history order by id").fetchall()
    finally:
        conn.close()


def test_restart_writes_no_false_outage_into_history(daemon: Daemon) -> None:
    """kill -9 and restart while monitoring stays up: history gains no down/up (or unknown) pair, nothing at all."""
    daemon.start()
    deadline = time.monotonic() + 10
    while len(history(daemon.db)) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    before = history(daemon.db)
    assert {(c, k, s) for c, k, s, _ in before} == {
        (c, k, "up") for c in ("website", "database") for k in ("monitored", "effective")
    }, before
    daemon.kill9()
    write_atomic(daemon.root / "status.dat", nagios_statusdat(time.time()))
    daemon.start()
    status, feed = daemon.request("GET", "/api/services.json")
    assert status == 200 and feed["stale"] is False
    time.sleep(0.6)  # a few scheduler polls (0.5 s) and tailer events after start-up
    err = daemon.stop()
    assert "Traceback" not in err, err
    assert history(daemon.db) == before  # the status never changed, so nothing new is recorded
