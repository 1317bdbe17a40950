"""90-day uptime bars: each component's days from uptime_days, as spans of days described alike, with their words."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from bridge.history import notice_intervals
from bridge.model import Snapshot
from bridge.uptime import Interval, Metrics, Unit, largest_units, percent_words
from bridge.uptime_days import DayUptime, daily_uptime, midnight, utc_date

DAYS = 90
# The page's short units: "3 days 4 h of data", "degraded for 12 min".
UNITS: tuple[Unit, ...] = ((86400, "day", "days"), (3600, "h", "h"), (60, "min", "min"), (1, "s", "s"))


def span_words(seconds: float) -> str:
    """"3 days 4 h", "5 h", "2 min 30 s", "under 1 s": truncated, never rounded up to a longer time."""
    return largest_units(seconds, UNITS, " ") or "under 1 s"


def day_words(d: DayUptime) -> str:
    """What a day held and its uptime: "degraded for 12 min (not downtime), 100.00% uptime"; "no data"."""
    if d.percent is None:
        return "no data"
    parts = [f"down for {span_words(d.down)}"] if d.down > 0 else []
    # Said outright: the uptime rule counts only downtime, so an amber or blue day can read 100.00%.
    parts += [f"degraded for {span_words(d.degraded)} (not downtime)"] if d.degraded > 0 else []
    parts += [f"maintenance for {span_words(d.maintenance)} (not downtime)"] if d.maintenance > 0 else []
    words = ", ".join(parts or ["up"]) + f", {percent_words(d.percent)} uptime"
    return words + (f" ({span_words(d.monitored)} of data)" if d.unknown > 0 else "")


@dataclass(frozen=True)
class Run:
    """Consecutive days described by the same words (today always alone), drawn as one span."""

    days: tuple[DayUptime, ...]
    today: bool

    @property
    def status(self) -> str:
        """The colour: every day of the run has the same status."""
        return self.days[0].status

    @property
    def title(self) -> str:
        """Hover text (and accessible name), true for every day of the run."""
        first, n = self.days[0].day.isoformat(), len(self.days)
        when = f"{first} (today, so far)" if self.today else first
        if n > 1:
            when = f"{first} to {self.days[-1].day.isoformat()} ({n} days), each"
        return f"{when}: {day_words(self.days[0])}"


@dataclass(frozen=True)
class Bars:
    """A component's last DAYS days (oldest first) and its uptime over them."""

    runs: tuple[Run, ...]
    total: Metrics  # uptime.metrics over the whole window: the same numbers as the Sorry metrics API
    last: tuple[float, str] | None = None  # the newest history row: (since when, status)

    @property
    def percent(self) -> float | None:
        """The window's uptime; None when nothing in it is known."""
        return self.total.percent

    @property
    def data(self) -> str | None:
        """"5 h" of data, while the monitored time is less than the window (None once it covers it all)."""
        known = self.total.monitored_time
        return span_words(known) if self.percent is not None and known < self.total.total_time else None


def runs(days: Sequence[DayUptime]) -> tuple[Run, ...]:
    """Group consecutive days with the same words; the last day (today, still changing) stands alone."""
    out: list[Run] = []
    group: list[DayUptime] = []
    words = [day_words(d) for d in days]
    for i, d in enumerate(days):
        if group and (i == len(days) - 1 or words[i] != words[i - 1]):
            out.append(Run(tuple(group), False))
            group = []
        group.append(d)
    if group:
        out.append(Run(tuple(group), True))
    return tuple(out)


def component_bars(rows: Sequence[tuple[float, str]], unplanned: Iterable[Interval], planned: Iterable[Interval],
                   now: float, days: int = DAYS) -> Bars:
    """Pure: the last `days` UTC days up to now, from shown-status rows (the one holding at the start first)."""
    window = daily_uptime(rows, unplanned, planned, utc_date(now) - timedelta(days=days - 1), days, now)
    return Bars(runs(window.days), window.total, rows[-1] if rows else None)


def window_start(now: float, days: int = DAYS) -> float:
    """00:00 UTC of the bars' first day: where their history read starts."""
    return midnight(utc_date(now) - timedelta(days=days - 1))


def snapshot_bars(snap: Snapshot, component_id: str, rows: Sequence[tuple[float, str]], now: float) -> Bars:
    """A component's bars from its shown-status history rows and the snapshot's notices linked to it."""
    unplanned, planned = notice_intervals(snap.notices, {component_id}, now)
    return component_bars(rows, unplanned, planned, now)
