"""Component status history: decide what changed and when (pure), append it in one transaction, read it back."""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from sqlite_utils import Database

from bridge.aggregate import check_status
from bridge.config import Component
from bridge.matching import CheckKey
from bridge.model import Snapshot, Status, StatusData
from bridge.notices import Notice, Override, active_overrides, is_underway
from bridge.storage import write_transaction
from bridge.uptime import Impact, Interval, component_impact, group_impact, maintenance_window, notice_impact

log = logging.getLogger("bridge.history")

MONITORED, EFFECTIVE = "monitored", "effective"
KINDS = (MONITORED, EFFECTIVE)
UNKNOWN = "unknown"  # recorded while a component's data is stale: neither up nor down

Key = tuple[str, str]  # (component id, kind)


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


class HistoryRecorder:
    """Remembers the last record per (component, kind), loaded from the DB on first use; the one history writer."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.last: dict[Key, Record | None] = {}  # None: looked up, nothing recorded yet

    def changed(self, current: Mapping[Key, str]) -> list[Key]:
        """Keys whose status differs from what is recorded; the first call per key reads its last row (restart)."""
        for key in current:
            if key not in self.last:
                self.last[key] = last_record(self.db, key)
        return changed(self.last, current)

    def commit(self, records: Sequence[Record]) -> None:
        """Write the records; on failure log and keep the old state, so the next snapshot retries them."""
        if not records:
            return
        try:
            written = append_records(self.db, records)
        except sqlite3.Error:
            log.exception("recording %d status changes failed; retrying with the next snapshot", len(records))
            return
        for r in written:
            self.last[(r.component_id, r.kind)] = r


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
