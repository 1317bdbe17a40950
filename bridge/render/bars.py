"""90-day uptime bars: each component's shown status per UTC day, from the status history, as runs of equal days."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlite_utils import Database

from bridge.history import EFFECTIVE, notice_intervals, read_history
from bridge.model import Snapshot
from bridge.uptime import UNKNOWN_STATUSES, Interval, component_impact, metrics

DAYS = 90
# A day takes the worst shown status it held; "nodata" only when nothing at all is known for it.
WORST_FIRST = ("down", "partial", "maintenance", "up")
NODATA = "nodata"


@dataclass(frozen=True)
class Run:
    """Consecutive days that share one status; percent is their uptime (None when nothing is known)."""

    status: str  # up | partial | down | maintenance | nodata
    first: date
    last: date
    percent: float | None

    @property
    def days(self) -> int:
        """How many days the run covers."""
        return (self.last - self.first).days + 1


@dataclass(frozen=True)
class Bars:
    """A component's last DAYS days (oldest first) and its uptime over them (None when nothing is known)."""

    runs: tuple[Run, ...]
    percent: float | None
    last: tuple[float, str] | None = None  # the newest history row: (since when, status)

    @property
    def known_days(self) -> int:
        """Days with any data (the uptime percent covers only these)."""
        return sum(r.days for r in self.runs if r.status != NODATA)

    def count(self, status: str) -> int:
        """Days with this status."""
        return sum(r.days for r in self.runs if r.status == status)


def midnight(day: date) -> float:
    """00:00 UTC of day, as epoch seconds."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def day_statuses(rows: Sequence[tuple[float, str]], first: date, days: int, now: float) -> list[str]:
    """Per UTC day from `first`, the worst known status held that day, else nodata; one pass over the rows."""
    start = midnight(first)
    held: list[set[str]] = [set() for _ in range(days)]
    for i, (at, status) in enumerate(rows):
        until = rows[i + 1][0] if i + 1 < len(rows) else now
        a, b = max(at, start), min(until, now)
        if b <= a or status in UNKNOWN_STATUSES:
            continue  # stale, pending and "before any history" say nothing about the day
        # Spans are disjoint, so all of them together mark at most rows + days days.
        for day in range(int((a - start) // 86400), min(days - 1, int((b - start - 1e-6) // 86400)) + 1):
            held[day].add(status)
    return [next((s for s in WORST_FIRST if s in h), NODATA) for h in held]


def _percent(rows: Sequence[tuple[float, str]], unplanned: Sequence[Interval], planned: Sequence[Interval],
             start: float, end: float) -> float | None:
    """uptime.metrics' percent over [start, end): the monitored time only, None when nothing is known."""
    # Only the rows that matter (the one holding at start, and those inside): runs are many on a flappy component.
    lo = max(0, bisect_right(rows, start, key=lambda r: r[0]) - 1)
    hi = bisect_left(rows, end, key=lambda r: r[0])
    return metrics(component_impact(rows[lo:hi], unplanned, planned, start, end), start, end).percent


def component_bars(rows: Sequence[tuple[float, str]], unplanned: Iterable[Interval], planned: Iterable[Interval],
                   now: float, days: int = DAYS) -> Bars:
    """Pure: runs of per-day status over the last `days` UTC days up to now (rows: history from before the window)."""
    unplanned, planned = list(unplanned), list(planned)
    today = datetime.fromtimestamp(now, UTC).date()
    first = today - timedelta(days=days - 1)
    statuses = [(first + timedelta(days=i), s) for i, s in enumerate(day_statuses(rows, first, days, now))]
    runs: list[Run] = []
    start_of_run = 0
    for i, (day, status) in enumerate(statuses):
        if i + 1 < len(statuses) and statuses[i + 1][1] == status:
            continue
        begin = statuses[start_of_run][0]
        end = min(midnight(day) + 86400, now)
        runs.append(Run(status, begin, day, _percent(rows, unplanned, planned, midnight(begin), end)))
        start_of_run = i + 1
    return Bars(tuple(runs), _percent(rows, unplanned, planned, midnight(first), now), rows[-1] if rows else None)


def history_bars(db: Database, snap: Snapshot, component_id: str, now: float, days: int = DAYS) -> Bars:
    """A component's bars from the recorded shown-status history and its linked notices."""
    # SEAM (issue 5): built on history.read_history + uptime.component_impact, the public read side that exists
    # today. When history/uptime gain a per-day status/uptime function, call it here instead; the page only
    # needs Bars (runs of days with a status and an uptime percent).
    start = midnight(datetime.fromtimestamp(now, UTC).date() - timedelta(days=days - 1))
    rows = read_history(db, component_id, EFFECTIVE, start, now + 1)
    unplanned, planned = notice_intervals(snap.notices, {component_id}, now)
    return component_bars(rows, unplanned, planned, now, days)
