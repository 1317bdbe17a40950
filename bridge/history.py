"""Component status history: decide what changed and when (pure), append it off the event loop, read it back."""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from sqlite_utils import Database

from bridge.config import Component
from bridge.database import open_db, write_transaction
from bridge.db_thread import db_file
from bridge.history_writer import HistoryWriter
from bridge.matching import CheckKey
from bridge.model import Snapshot, Status, StatusData
from bridge.notices import Notice, Override, active_overrides, is_underway
from bridge.status_rules import check_status
from bridge.uptime import (
    Impact,
    Interval,
    component_impact,
    group_impact,
    maintenance_window,
    notice_impact,
)

log = logging.getLogger("bridge.history")

MONITORED, EFFECTIVE = "monitored", "effective"
KINDS = (MONITORED, EFFECTIVE)
UNKNOWN = "unknown"  # recorded while a component's data is stale: neither up nor down

Key = tuple[str, str]  # (component id, kind)
FLUSH_TIMEOUT = 5.0  # seconds a shutdown waits for queued history writes


class Record(NamedTuple):
    """One history row: from `at` on, the component's `kind` status was `status`."""

    component_id: str
    kind: str
    status: str
    at: float


# --- pure decisions ---------------------------------------------------------------------------------


def changed(last: Mapping[Key, Record | None], current: Mapping[Key, str]) -> list[Key]:
    """Keys whose current status differs from the last record (or that have none)."""
    out: list[Key] = []
    for key, status in current.items():
        prev = last.get(key)
        if prev is None or prev.status != status:
            out.append(key)
    return out


def place(prev: Record | None, candidates: Iterable[float], fallback: float, now: float) -> float:
    """When a change happened: the newest candidate after the previous record, else fallback; kept in [prev, now]."""
    lo = prev.at if prev is not None else -math.inf
    # A candidate not after the previous record cannot be this change's cause (that state was already known).
    after = [t for t in candidates if lo < t <= now]
    at = max(after) if after else fallback
    return min(max(at, lo), now)


def explaining_times(component: Component, keys: Iterable[CheckKey], data: StatusData, status: Status) -> list[float]:
    """last_state_change of each matched check whose own status is `status` and whose state change can explain it."""
    out: list[float] = []
    for host_name, service in keys:
        chk = data.hosts.get(host_name) if service is None else data.services.get((host_name, service))
        if chk is None or not chk.has_been_checked:
            continue
        host = data.hosts.get(host_name) if service is not None else None
        if check_status(chk, host, component) != status:
            continue
        # Entering a downtime changes no last_state_change; a SOFT state counts as its last hard state,
        # while its last_state_change is the soft change. Neither dates the change: data.created will.
        if chk.downtime_depth > 0 or (host is not None and host.downtime_depth > 0):
            continue
        if chk.state_type == 0 and not component.soft_states:
            continue
        when = chk.last_state_change
        if host is not None and host.has_been_checked:
            when = max(when, host.last_state_change)  # a host problem (or its recovery) imposes the service's status
        if when > 0:  # 0: Nagios never saw this object change state
            out.append(float(when))
    return out


def override_times(
    cid: str, overrides: Sequence[Override], notices: Sequence[Notice], now: float
) -> tuple[list[float], list[float]]:
    """(starts of what replaces cid's shown status now, ends of replacements that are over)."""
    mine = [n for n in notices if n.type == "planned" and cid in n.components]
    active = active_overrides(overrides, now).get(cid)
    # The override wins over an underway maintenance (shown_overrides), so its start dates the change.
    starts = [active.starts_at] if active is not None else [n.began_at for n in mine if is_underway(n) and n.began_at]
    ends = [o.ends_at for o in overrides if o.component_id == cid and o.ends_at is not None and o.ends_at <= now]
    ends += [n.ended_at for n in mine if n.ended_at is not None]
    return starts, ends


# --- storage ----------------------------------------------------------------------------------------


def last_record(db: Database, key: Key, before: float = math.inf) -> Record | None:
    """The newest record of (component, kind) earlier than `before` (an index seek)."""
    row = db.execute(
        "select status, at from history where component_id = ? and kind = ? and at < ? order by at desc, id desc limit 1",
        [key[0], key[1], before],
    ).fetchone()
    return None if row is None else Record(key[0], key[1], row[0], row[1])


def append_records(db: Database, records: Sequence[Record]) -> list[Record]:
    """Append changes in one transaction; re-checked under the write lock, so another writer never doubles a row."""
    written: list[Record] = []
    with write_transaction(db):
        for r in records:
            prev = last_record(db, (r.component_id, r.kind))
            if prev is not None and prev.status == r.status:
                written.append(prev)  # someone (another daemon on this file) recorded it already
                continue
            r = r._replace(at=max(r.at, prev.at)) if prev is not None else r
            db.execute(
                "insert into history (component_id, kind, status, at) values (?, ?, ?, ?)",
                [r.component_id, r.kind, r.status, r.at],
            )
            written.append(r)
    return written


def read_history(db: Database, component_id: str, kind: str, start: float, end: float) -> list[tuple[float, str]]:
    """(at, status) rows in [start, end), by time, preceded by the last row before start (what held at start)."""
    before = last_record(db, (component_id, kind), start)
    rows = db.execute(
        "select at, status from history where component_id = ? and kind = ? and at >= ? and at < ? order by at, id",
        [component_id, kind, start, end],
    ).fetchall()  # plain tuples: no per-row conversion for a year of rows
    return [(before.at, before.status), *rows] if before is not None else rows


def write_records(db: Database, records: Sequence[Record]) -> list[Record] | None:
    """append_records, or None (logged) when it failed: the caller forgets those keys so the next snapshot retries."""
    try:
        return append_records(db, records)
    except sqlite3.Error:
        log.exception("recording %d status changes failed; retrying with the next snapshot", len(records))
        return None


def last_records(db: Database, keys: Iterable[Key]) -> dict[Key, Record | None]:
    """last_record of each key."""
    return {key: last_record(db, key) for key in keys}


class HistoryRecorder:
    """Remembers the last record per (component, kind), loaded from the DB on first use; the one history writer.

    While started, commits are queued to a writer thread with its own connection: the loop never waits for an
    fsync or another process's write lock. Decisions stay on the loop, against `last`, which takes what is queued.
    """

    def __init__(self, db: Database) -> None:
        self.db = db  # the loop's connection: first reads of `last`, and writes while no writer runs
        self.last: dict[Key, Record | None] = {}  # None: looked up, nothing recorded yet
        self.writer: HistoryWriter | None = None

    def changed(self, current: Mapping[Key, str]) -> list[Key]:
        """Keys whose status differs from what is recorded; the first call per key reads its last row (restart)."""
        for key in current:
            if key not in self.last:
                self.last[key] = last_record(self.db, key)
        return changed(self.last, current)

    def commit(self, records: Sequence[Record]) -> None:
        """Queue the records (written now when no writer runs); `last` takes them at once, for the next snapshot."""
        if not records:
            return
        for r in records:
            self.last[(r.component_id, r.kind)] = r
        if self.writer is not None:
            self.writer.submit(records)
        else:
            self.landed(records, write_records(self.db, records))

    def landed(self, queued: Sequence[Record], written: list[Record] | None) -> None:
        """Take a write's outcome (on the loop): a failure is forgotten, a row another writer stored first is kept."""
        for i, q in enumerate(queued):
            key = (q.component_id, q.kind)
            if self.last.get(key) != q:
                continue  # a newer change of this key is queued behind it and decides
            if written is None:
                del self.last[key]  # the next snapshot re-reads the DB and records the change again
            elif written[i] != q:
                self.last[key] = written[i]

    async def start(self, keys: Iterable[Key] = ()) -> None:
        """Start the writer thread on a connection of its own, first reading the last record of keys with it.

        An in-memory DB keeps being read and written on the loop (no disk, no other process).
        """
        path = db_file(self.db)
        if path is None or self.writer is not None:
            return
        own = await asyncio.to_thread(open_db, path)
        # The first snapshot decides against these: read now, off the loop, not at that publish on the loop.
        try:
            found = await asyncio.to_thread(last_records, own, [k for k in keys if k not in self.last])
        except sqlite3.Error:
            log.exception("reading the last recorded statuses failed; the first snapshot reads them again")
            found = {}
        for key, record in found.items():
            self.last.setdefault(key, record)
        self.writer = HistoryWriter(own, write_records, self.landed, asyncio.get_running_loop())

    async def flush(self) -> None:
        """Wait until everything committed so far is in the DB (or failed and was forgotten)."""
        if self.writer is not None:
            await self.writer.flush()

    async def stop(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Write what is queued (waiting at most timeout seconds) and end the thread; later commits go on the loop."""
        writer = self.writer
        if writer is None:
            return
        stopped = await writer.stop(timeout)  # commits meanwhile are still queued, behind what it writes
        self.writer = None
        for batch in stopped.untaken:
            # After the thread's last commit, so order is kept; given up (and forgotten) if the thread is stuck.
            self.landed(batch, write_records(self.db, batch) if stopped.finished else None)
        if not stopped.finished:
            dropped = sum(map(len, stopped.untaken))
            log.error("history writer did not finish within %g s (database locked?): %d queued status changes "
                      "dropped, %d still being written", timeout, dropped, stopped.in_flight)


# --- metrics read side ------------------------------------------------------------------------------


def notice_intervals(notices: Iterable[Notice], ids: set[str], now: float) -> tuple[list[Interval], list[Interval]]:
    """(unplanned impact intervals, planned maintenance intervals) of the notices linked to any of ids."""
    unplanned: list[Interval] = []
    planned: list[Interval] = []
    for n in notices:
        if ids.isdisjoint(n.components):
            continue
        if (i := notice_impact(n, now)) is not None:
            unplanned.append(i)
        elif (i := maintenance_window(n, now)) is not None:
            planned.append(i)
    return unplanned, planned


def impact_of(db: Database, snap: Snapshot, ident: str, start: float, end: float, now: float) -> Impact | None:
    """The impact of a component or group (by id) within [start, end), end <= now; None for an unknown id."""
    for g in snap.groups:
        if g.id == ident:
            children = [_component(db, snap, c.id, start, end, now) for c in g.components]
            unplanned, planned = notice_intervals(snap.notices, {ident}, now)
            return group_impact(children, unplanned, planned, start, end)
        if any(c.id == ident for c in g.components):
            return _component(db, snap, ident, start, end, now)
    return None


def _component(db: Database, snap: Snapshot, cid: str, start: float, end: float, now: float) -> Impact:
    """One component's impact from its effective (shown) history and linked notices."""
    unplanned, planned = notice_intervals(snap.notices, {cid}, now)
    return component_impact(read_history(db, cid, EFFECTIVE, start, end), unplanned, planned, start, end)
