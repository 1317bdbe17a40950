"""Uptime per UTC day: one pass splits a window's time as the uptime rule counts it, per day and in total."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from bridge.uptime import (
    MAINTENANCE_STATUSES,
    Interval,
    Metrics,
    clip,
    merge,
    metrics,
    spans_impact,
    status_intervals,
    subtract,
    uptime_percent,
)

DAY = 86400.0
DEGRADED = "partial"  # degraded service: shown, but not downtime


def midnight(day: date) -> float:
    """00:00 UTC of day, as epoch seconds."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def utc_date(epoch: float) -> date:
    """The UTC date at epoch."""
    return datetime.fromtimestamp(epoch, UTC).date()


@dataclass(frozen=True)
class DayUptime:
    """One UTC day (today: up to now), its time split as the uptime rule counts it; the parts sum to length."""

    day: date
    length: float  # seconds of the day inside the window
    down: float  # counted against uptime: shown down, or under an unplanned notice, outside maintenance
    degraded: float  # shown partial outside downtime and maintenance: not downtime
    maintenance: float  # maintenance status or a planned notice, with a known status: not downtime, monitored
    up: float  # everything else known
    unknown: float  # no known status and no incident (stale, pending, before history): outside the divisor

    @property
    def monitored(self) -> float:
        """The day's known time: the uptime's divisor."""
        return self.length - self.unknown

    @property
    def percent(self) -> float | None:
        """The day's uptime over its monitored time; None when nothing of it is known."""
        return uptime_percent(self.down, self.monitored)

    @property
    def status(self) -> str:
        """The worst held for a non-zero time: downtime, degraded, maintenance, up; nodata when nothing is known."""
        if self.percent is None:
            return "nodata"  # decided by the percent itself, so the colour and the number never disagree
        for status, seconds in (("down", self.down), ("partial", self.degraded), ("maintenance", self.maintenance)):
            if seconds > 0:
                return status
        return "up"


@dataclass(frozen=True)
class WindowUptime:
    """Every day of a window (oldest first, the last is today up to now) and the window's totals."""

    days: tuple[DayUptime, ...]
    total: Metrics  # uptime.metrics over the whole window, from the same impact the days are cut from


def per_day(intervals: Iterable[Interval], start: float, days: int) -> list[float]:
    """Seconds of the (disjoint, in-window) intervals falling on each day from start; one pass."""
    out = [0.0] * days
    for a, b in intervals:
        i = int((a - start) // DAY)
        while a < b:
            edge = start + (i + 1) * DAY
            cut = min(b, edge)
            if cut > a:  # a piece is never empty, so a non-zero part always means time held that day
                out[i] += cut - a
            a, i = cut, i + 1
    return out


def daily_uptime(rows: Sequence[tuple[float, str]], unplanned: Iterable[Interval], planned: Iterable[Interval],
                 first: date, days: int, now: float) -> WindowUptime:
    """Pure: the window from first 00:00 UTC to now (at most `days` days) per day; rows as status_intervals takes."""
    start = midnight(first)
    end = min(max(start, now), start + days * DAY)
    planned = clip(planned, start, end)
    spans = status_intervals(rows, start, end)
    impact = spans_impact(spans, unplanned, planned, start, end)
    # The same partition metrics() applies: an incident over unknown time is known impact, not unknown.
    unknown = subtract(impact.unknown, impact.impact)
    declared = merge([*(i for s in MAINTENANCE_STATUSES for i in spans.get(s, ())), *planned])
    maintenance = subtract(declared, unknown)  # down inside maintenance lands here: it is not downtime
    degraded = subtract(subtract(spans.get(DEGRADED, []), impact.impact), declared)
    up = subtract([(start, end)] if end > start else [], merge([*impact.impact, *unknown, *declared, *degraded]))
    parts = [per_day(p, start, days) for p in (impact.impact, degraded, maintenance, up, unknown)]
    out = []
    for i in range(days):
        length = max(0.0, min(DAY, end - (start + i * DAY)))
        out.append(DayUptime(first + timedelta(days=i), length, *(p[i] for p in parts)))
    return WindowUptime(tuple(out), metrics(impact, start, end))
