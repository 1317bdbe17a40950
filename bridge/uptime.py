"""Pure uptime metrics: status intervals -> impact (down or under an unplanned notice, minus maintenance) -> metrics."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice

from bridge.notices import Notice

Interval = tuple[float, float]  # [start, end) in epoch seconds

# Only "down" is an outage: "partial" is degraded service, not lost service (a notice can still declare it).
IMPACT_STATUSES = frozenset({"down"})
MAINTENANCE_STATUSES = frozenset({"maintenance"})
# Neither up nor down: stale data, PENDING/no checks, and any time before a component's first record.
UNKNOWN_STATUSES = frozenset({"unknown", "nodata"})

Unit = tuple[int, str, str]  # (seconds, singular, plural)
_UNITS: tuple[Unit, ...] = ((86400, "Day", "Days"), (3600, "Hour", "Hours"), (60, "Minute", "Minutes"),
                            (1, "Second", "Seconds"))


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """The sorted union of intervals, empty ones dropped and touching ones joined."""
    out: list[Interval] = []
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def clip(intervals: Iterable[Interval], start: float, end: float) -> list[Interval]:
    """Intervals cut to [start, end), empty ones dropped."""
    return [(max(a, start), min(b, end)) for a, b in intervals if min(b, end) > max(a, start)]


def subtract(keep: Sequence[Interval], remove: Sequence[Interval]) -> list[Interval]:
    """keep minus remove; both merged (sorted, disjoint)."""
    out: list[Interval] = []
    j = 0
    for a, b in keep:
        while j < len(remove) and remove[j][1] <= a:
            j += 1
        k, cur = j, a
        while k < len(remove) and remove[k][0] < b:
            if remove[k][0] > cur:
                out.append((cur, remove[k][0]))
            cur = max(cur, remove[k][1])
            k += 1
        if cur < b:
            out.append((cur, b))
    return out


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """The overlap of two merged interval lists."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def length(intervals: Iterable[Interval]) -> float:
    """Total seconds covered by disjoint intervals."""
    return sum(b - a for a, b in intervals)


def status_intervals(rows: Sequence[tuple[float, str]], start: float, end: float) -> dict[str, list[Interval]]:
    """Per status, where it held within [start, end): rows are (at, status) by time, each holding until the next.

    Pass the last row before start too. Time before the first row is "unknown".
    """
    out: dict[str, list[Interval]] = {}
    if end <= start:
        return out
    # One clipping pass up front keeps the per-row loop free of min/max calls (a year is 10k+ rows).
    times = [start if r[0] < start else end if r[0] > end else r[0] for r in rows]
    if not times or times[0] > start:
        out["unknown"] = [(start, times[0] if times else end)]
    times.append(end)
    for (_at, status), a, b in zip(rows, times, islice(times, 1, None)):
        if b > a:
            spans = out.get(status)
            if spans is None:
                out[status] = [(a, b)]
            elif spans[-1][1] == a:
                spans[-1] = (spans[-1][0], b)  # repeated status rows (another writer) or pre-history: one span
            else:
                spans.append((a, b))
    return out


def notice_impact(notice: Notice, now: float) -> Interval | None:
    """An unplanned notice's impact interval [began_at, ended_at or now); None for planned ones and false alarms."""
    if notice.type != "unplanned" or notice.state == "false_alarm" or notice.began_at is None:
        return None
    end = notice.ended_at if notice.ended_at is not None else now
    return (notice.began_at, max(notice.began_at, end))


def impact_overlaps(notice: Notice, start: float, end: float, now: float) -> bool:
    """True when the notice's impact interval meets [start, end] (planned notices and false alarms have none)."""
    span = notice_impact(notice, now)
    return span is not None and span[0] <= end and span[1] >= start


def maintenance_window(notice: Notice, now: float) -> Interval | None:
    """A planned notice's actual maintenance interval [began_at, ended_at or now); None until it began."""
    if notice.type != "planned" or notice.began_at is None:
        return None
    end = notice.ended_at if notice.ended_at is not None else now
    return (notice.began_at, max(notice.began_at, end))


@dataclass(frozen=True)
class Impact:
    """Where a component (or group) was impacted, and where its status was unknown, within one timeframe."""

    impact: list[Interval]
    unknown: list[Interval]


def component_impact(
    rows: Sequence[tuple[float, str]], unplanned: Iterable[Interval], planned: Iterable[Interval], start: float, end: float
) -> Impact:
    """(down ∪ unplanned notices) minus (planned maintenance ∪ maintenance status), within [start, end)."""
    return spans_impact(status_intervals(rows, start, end), unplanned, planned, start, end)


def spans_impact(spans: dict[str, list[Interval]], unplanned: Iterable[Interval], planned: Iterable[Interval],
                 start: float, end: float) -> Impact:
    """component_impact from status_intervals' spans (for callers that need the spans too)."""
    down = [i for s in IMPACT_STATUSES for i in spans.get(s, [])]
    maintenance = [i for s in MAINTENANCE_STATUSES for i in spans.get(s, [])]
    unknown = merge(i for s in UNKNOWN_STATUSES for i in spans.get(s, []))
    hit = merge([*down, *clip(unplanned, start, end)])
    # An outage inside declared maintenance (a planned notice or a Nagios downtime) is not impact.
    return Impact(subtract(hit, merge([*maintenance, *clip(planned, start, end)])), unknown)


def group_impact(
    children: Sequence[Impact], unplanned: Iterable[Interval], planned: Iterable[Interval], start: float, end: float
) -> Impact:
    """A group is impacted while any child is (or a notice on the group is), minus the group's own maintenance."""
    hit = merge([*(i for c in children for i in c.impact), *clip(unplanned, start, end)])
    impact = subtract(hit, merge(clip(planned, start, end)))
    # Unknown only while every child is unknown: one known child is enough to say something.
    unknown = [(start, end)] if end > start else []
    for c in children:
        unknown = intersect(unknown, c.unknown)
    return Impact(impact, unknown)


@dataclass(frozen=True)
class Metrics:
    """The Sorry metrics of one timeframe (seconds): uptime is measured over the monitored time only."""

    total_time: float  # the whole timeframe
    impact_time: float
    episodes: int  # distinct impact episodes (merged intervals)
    unknown_time: float  # no known status and no declared outage: neither up nor down
    percent: float | None  # None when nothing in the timeframe is known: neither 100 % nor 0 %
    mttr: float
    mtbf: float

    @property
    def monitored_time(self) -> float:
        """The part of the timeframe with a known status (or a declared outage): the uptime's divisor."""
        return self.total_time - self.unknown_time


def uptime_percent(impact_time: float, monitored_time: float) -> float | None:
    """100 - impact / monitored * 100; None when nothing was monitored (neither 100 % nor 0 %)."""
    # max(): float noise when everything monitored was impact, never a real difference.
    return max(0.0, 100.0 - impact_time / monitored_time * 100.0) if monitored_time > 0 else None


def metrics(impact: Impact, start: float, end: float) -> Metrics:
    """Uptime %, MTTR and MTBF over the monitored part of [start, end); no impact gives 100 % and MTTR 0."""
    total = max(0.0, end - start)
    hit = length(impact.impact)
    episodes = len(impact.impact)
    # An unplanned notice over stale data is known impact (a person declared it), so that time is monitored:
    # impact never exceeds the monitored time and the percentage stays within 0..100.
    unknown = length(subtract(impact.unknown, impact.impact))
    monitored = total - unknown
    percent = uptime_percent(hit, monitored)
    mttr = hit / episodes if episodes else 0.0
    mtbf = max(0.0, monitored - hit) / episodes if episodes else monitored
    return Metrics(total, hit, episodes, unknown, percent, mttr, mtbf)


def largest_units(seconds: float, units: Sequence[Unit], sep: str) -> str | None:
    """The largest unit that fits and the next one when non-zero, truncated: "2 Days, 6 Hours"; None below them all."""
    left = max(0, int(seconds)) if math.isfinite(seconds) else 0
    for i, (size, one, many) in enumerate(units):
        if left >= size:
            n, rest = divmod(left, size)
            words = f"{n} {one if n == 1 else many}"
            # The next smaller unit only: "2 Days, 6 Hours", never "2 Days, 0 Hours" nor a third unit.
            if i + 1 < len(units) and (m := rest // units[i + 1][0]):
                words += f"{sep}{m} {units[i + 1][1] if m == 1 else units[i + 1][2]}"
            return words
    return None


def duration_words(seconds: float, title: bool = True) -> str:
    """The two largest units, truncated: "2 Days, 6 Hours", "30 Days", "2 Minutes" (lower case when not title)."""
    words = largest_units(seconds, _UNITS, ", ") or "0 Seconds"
    return words if title else words.lower()


def percent_words(percent: float | None) -> str:
    """"97.26%": truncated, not rounded, so only a spotless timeframe reads "100.00%"; "No data" for None."""
    if percent is None:
        return "No data"
    # The epsilon absorbs binary noise (99.99 * 100 = 9998.999...), never a real difference.
    return f"{math.floor(percent * 100 + 1e-6) / 100:.2f}%"
