"""Status history: change-only writes dated by the monitoring data, restarts, staleness, overrides, storage."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlite_utils import Database

from bridge.config import Component
from bridge.database import open_db
from bridge.history import (
    EFFECTIVE,
    MONITORED,
    HistoryRecorder,
    Record,
    append_records,
    changed,
    explaining_times,
    last_record,
    place,
    read_history,
)
from bridge.live import Live
from bridge.model import SourceHealth, Status, StatusData
from bridge.notices import Override
from tests.conftest import check, status_data, web_config

T = 1_700_000_000.0
STALE_AFTER = 180.0


class Clock:
    """A settable clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fresh(created: float) -> SourceHealth:
    """Fresh health for data written at created."""
    return SourceHealth(stale=False, data_created=created)


def stale(created: float) -> SourceHealth:
    """Stale health for data written at created."""
    return SourceHealth(stale=True, reason="old", data_created=created)


def web(state: int, changed_at: float, created: float, db_state: int = 0, **kw: object) -> StatusData:
    """Monitoring data: web-1/HTTP in `state` since changed_at, db-1/PostgreSQL in db_state since T - 10 days."""
    return status_data(
        check("web-1", "HTTP", state, last_state_change=int(changed_at), **kw),  # type: ignore[arg-type]
        check("db-1", "PostgreSQL", db_state, last_state_change=int(T - 864000)),
        check("web-1", None, 0, last_state_change=int(T - 864000)),  # hosts up for ten days
        check("db-1", None, 0, last_state_change=int(T - 864000)),
        created=created,
    )


def start(path: Path, clock: Clock) -> tuple[Live, Database]:
    """A Live recording into the SQLite file at path (a daemon start)."""
    db = open_db(path)
    live = Live(web_config(stale_after=STALE_AFTER), clock)
    live.recorder = HistoryRecorder(db)
    return live, db


def rows(db: Database, component: str = "website", kind: str | None = None) -> list[tuple[str, str, float]]:
    """(kind, status, at) rows of a component in insertion order."""
    found = db.query("select kind, status, at from history where component_id = ? order by id", [component])
    return [(r["kind"], r["status"], r["at"]) for r in found if kind is None or r["kind"] == kind]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A real SQLite file."""
    return tmp_path / "db.sqlite"


# --- pure decisions --------------------------------------------------------------------------------


def test_place_takes_the_newest_candidate_after_the_previous_record() -> None:
    prev = Record("c", MONITORED, "up", 100.0)
    assert place(prev, [50.0, 150.0, 120.0], 180.0, 200.0) == 150.0
    assert place(prev, [50.0, 90.0], 180.0, 200.0) == 180.0  # none after prev: the fallback (data.created)
    assert place(prev, [250.0], 180.0, 200.0) == 180.0  # a future candidate (clock skew) is ignored
    assert place(prev, [], 50.0, 200.0) == 100.0  # never before the previous record
    assert place(prev, [], 500.0, 200.0) == 200.0  # never in the future
    assert place(None, [50.0], 180.0, 200.0) == 50.0


def test_changed_only_when_the_status_differs() -> None:
    last = {("a", MONITORED): Record("a", MONITORED, "up", 1.0), ("b", MONITORED): None}
    current = {("a", MONITORED): "up", ("b", MONITORED): "up", ("c", MONITORED): "down"}
    assert changed(last, current) == [("b", MONITORED), ("c", MONITORED)]


def test_explaining_times_skip_soft_downtime_and_unchecked() -> None:
    comp = Component("c", "C", "g")
    keys = [("h", "a"), ("h", "b"), ("h", "soft"), ("h", "dt"), ("h", "new"), ("h", None)]
    data = status_data(
        check("h", "a", 2, last_state_change=100),
        check("h", "b", 2, last_state_change=300),
        check("h", "soft", 2, state_type=0, last_hard_state=2, last_state_change=400),
        check("h", "dt", 2, downtime_depth=1, last_state_change=500),
        check("h", "new", 2, has_been_checked=False, last_state_change=600),
        check("h", None, 0, last_state_change=200),
    )
    assert sorted(explaining_times(comp, keys, data, Status.DOWN)) == [200, 300]  # host time counts for services
    assert explaining_times(comp, keys, data, Status.UP) == [200]
    assert explaining_times(Component("c", "C", "g", soft_states=True), [("h", "soft")], data, Status.DOWN) == [400]


# --- recording through Live ------------------------------------------------------------------------


def test_changes_only_dated_by_the_monitoring_data(path: Path) -> None:
    clock = Clock(T)
    live, db = start(path, clock)
    live.update(web(0, T - 5000, T - 3), fresh(T - 3))
    assert rows(db) == [(MONITORED, "up", T - 5000), (EFFECTIVE, "up", T - 5000)]
    assert rows(db, "database") == [(MONITORED, "up", T - 864000), (EFFECTIVE, "up", T - 864000)]
    for i in range(1, 4):  # Nagios rewrites status.dat with nothing changed: nothing recorded
        clock.now = T + 10 * i
        live.update(web(0, T - 5000, T + 10 * i - 3), fresh(T + 10 * i - 3))
    assert len(rows(db)) == 2
    clock.now = T + 100
    live.update(web(2, T + 61, T + 97), fresh(T + 97))  # went down at its last_state_change, not when we saw it
    clock.now = T + 200
    live.update(web(0, T + 150, T + 197), fresh(T + 197))
    assert rows(db, kind=MONITORED) == [(MONITORED, "up", T - 5000), (MONITORED, "down", T + 61), (MONITORED, "up", T + 150)]
    assert rows(db, kind=EFFECTIVE) == [(EFFECTIVE, "up", T - 5000), (EFFECTIVE, "down", T + 61), (EFFECTIVE, "up", T + 150)]
    assert len(rows(db, "database")) == 2


def test_change_without_an_explaining_state_change_falls_back_to_data_created(path: Path) -> None:
    clock = Clock(T)
    live, db = start(path, clock)
    live.update(web(0, T - 5000, T - 3), fresh(T - 3))
    clock.now = T + 100
    # A downtime starts: no last_state_change moves, so the data's own time dates it.
    live.update(web(0, T - 5000, T + 90, downtime_depth=1), fresh(T + 90))
    assert rows(db)[-2:] == [(MONITORED, "maintenance", T + 90), (EFFECTIVE, "maintenance", T + 90)]


def test_provisional_no_data_is_never_recorded(path: Path) -> None:
    clock = Clock(T)
    live, db = start(path, clock)
    live.set_notices([], [], T)
    live.update(None, SourceHealth(stale=True, reason="status.dat missing"))
    assert rows(db) == [] and rows(db, "database") == []


def test_restart_with_the_same_state_records_nothing(path: Path) -> None:
    clock = Clock(T)
    live, db = start(path, clock)
    live.update(web(2, T - 600, T - 3), fresh(T - 3))
    db.close()
    clock.now = T + 3600
    live, db = start(path, clock)  # a restart: nothing in memory, the last rows are in the file
    live.update(web(2, T - 600, T + 3597), fresh(T + 3597))
    assert rows(db) == [(MONITORED, "down", T - 600), (EFFECTIVE, "down", T - 600)]  # no false recovery/outage


def test_restart_with_a_changed_state_records_one_change(path: Path) -> None:
    clock = Clock(T)
    live, db = start(path, clock)
    live.update(web(2, T - 600, T - 3), fresh(T - 3))
    db.close()
    clock.now = T + 3600
    live, db = start(path, clock)
    live.update(web(0, T + 1800, T + 3597), fresh(T + 3597))  # recovered while we were down
    assert rows(db)[2:] == [(MONITORED, "up", T + 1800), (EFFECTIVE, "up", T + 1800)]
    assert rows(db, "database") == [(MONITORED, "up", T - 864000), (EFFECTIVE, "up", T - 864000)]


def test_stale_is_unknown_from_when_the_data_went_stale_then_recovers(path: Path) -> None:
    clock = Clock(T)
    live, db = start(path, clock)
    live.update(web(0, T - 5000, T - 3), fresh(T - 3))
    clock.now = T + 400  # Nagios stopped writing at T - 3; we notice late
    live.update(web(0, T - 5000, T - 3), stale(T - 3))
    clock.now = T + 900
    live.update(web(0, T - 5000, T + 895), fresh(T + 895))  # Nagios is back, nothing changed meanwhile
    assert rows(db, kind=MONITORED) == [
        (MONITORED, "up", T - 5000),
        (MONITORED, "unknown", T - 3 + STALE_AFTER),  # not down, and not from when we noticed
        (MONITORED, "up", T + 895),  # the real status again from the fresh data's time
    ]
    assert [r[1] for r in rows(db, kind=EFFECTIVE)] == ["up", "unknown", "up"]


def test_stale_then_recovered_with_a_change_during_the_gap(path: Path) -> None:
    clock = Clock(T)
    live, db = start(path, clock)
    live.update(web(0, T - 5000, T - 3), fresh(T - 3))
    clock.now = T + 400
    live.update(web(0, T - 5000, T - 3), stale(T - 3))
    clock.now = T + 900
    live.update(web(2, T + 700, T + 895), fresh(T + 895))
    assert rows(db, kind=MONITORED)[-1] == (MONITORED, "down", T + 700)


def test_override_changes_the_effective_history_only(path: Path) -> None:
    clock = Clock(T)
    live, db = start(path, clock)
    live.update(web(0, T - 5000, T - 3), fresh(T - 3))
    window = Override(1, "website", Status.DOWN, T + 50, T + 300, "declared", T)
    clock.now = T + 52
    live.set_notices([], [window], T + 52)  # the scheduler republishes at (about) the start
    clock.now = T + 301
    live.set_notices([], [window], T + 301)
    assert rows(db, kind=EFFECTIVE) == [(EFFECTIVE, "up", T - 5000), (EFFECTIVE, "down", T + 50), (EFFECTIVE, "up", T + 300)]
    assert rows(db, kind=MONITORED) == [(MONITORED, "up", T - 5000)]


def test_a_failed_write_is_logged_and_retried(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(T)
    live, db = start(path, clock)
    db.execute("create trigger no_writes before insert on history begin select raise(abort, 'disk full'); end")
    with caplog.at_level(logging.ERROR):
        live.update(web(2, T - 600, T - 3), fresh(T - 3))
    assert "recording 4 status changes failed" in caplog.text
    assert live.snapshot.groups[0].components[0].status is Status.DOWN  # still published
    db.execute("drop trigger no_writes")
    live.update(web(2, T - 600, T + 7), fresh(T + 7))
    assert rows(db) == [(MONITORED, "down", T - 600), (EFFECTIVE, "down", T - 600)]


# --- storage -------------------------------------------------------------------------------------


def test_append_rechecks_under_the_lock_and_reads_back(path: Path) -> None:
    db = open_db(path)
    append_records(db, [Record("c", EFFECTIVE, "up", 100.0), Record("c", EFFECTIVE, "down", 200.0)])
    other = open_db(path)  # a second writer that still believes "up" is the last row
    assert append_records(other, [Record("c", EFFECTIVE, "down", 150.0)]) == [Record("c", EFFECTIVE, "down", 200.0)]
    append_records(other, [Record("c", EFFECTIVE, "up", 150.0)])  # never before the last row
    assert last_record(db, ("c", EFFECTIVE)) == Record("c", EFFECTIVE, "up", 200.0)
    assert read_history(db, "c", EFFECTIVE, 150.0, 1000.0) == [(100.0, "up"), (200.0, "down"), (200.0, "up")]
    assert read_history(db, "c", EFFECTIVE, 0.0, 50.0) == []
    assert read_history(db, "c", MONITORED, 0.0, 1000.0) == []
    plan = " ".join(str(r) for r in db.execute(
        "explain query plan select at, status from history where component_id = 'c' and kind = 'effective' "
        "and at >= 1 and at < 2 order by at, id").fetchall())
    assert "history_component_id_kind_at" in plan


def test_a_host_going_down_dates_its_services(path: Path) -> None:
    clock = Clock(T)
    live, db = start(path, clock)
    live.update(web(0, T - 5000, T - 3), fresh(T - 3))
    clock.now = T + 100
    data = web(0, T - 5000, T + 95)
    data.hosts["web-1"] = check("web-1", None, 1, last_state_change=int(T + 40))
    live.update(data, fresh(T + 95))
    assert rows(db, kind=MONITORED)[-1] == (MONITORED, "down", T + 40)
