"""Uptime per UTC day and the page's bars: one split of the window gives colours, day and overall percents, label."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.render.bars import component_bars, span_words
from bridge.uptime import component_impact, metrics, percent_words
from bridge.uptime_days import DAY, daily_uptime, midnight

TODAY = date(2026, 12, 2)
T0 = midnight(TODAY)  # 00:00 UTC today
NOW = T0 + 12 * 3600  # noon: today is half a day so far
H, M = 3600.0, 60.0
LONG_AGO = T0 - 30 * DAY  # a row before the window: everything in it is monitored


def pct(p: float | None) -> str | None:
    """Percent as the page truncates it."""
    return None if p is None else percent_words(p)


# Each case: rows, unplanned and planned notice intervals; then per day (oldest first, 4 days: today last) the
# colour and the percentage; the overall percentage; the "N of data" label (None while all of the window is known).
CASES = {
    "two minutes of history": (
        [(NOW - 2 * M, "up")], [], [],
        ["nodata", "nodata", "nodata", "up"], [None, None, None, "100.00%"], "100.00%", "2 min"),
    "degraded today is amber and still 100 %": (
        [(LONG_AGO, "up"), (T0 + H, "partial"), (T0 + H + 12 * M, "up")], [], [],
        ["up", "up", "up", "partial"], ["100.00%"] * 4, "100.00%", None),
    "half an hour down yesterday": (
        [(LONG_AGO, "up"), (T0 - 6 * H, "down"), (T0 - 5.5 * H, "up")], [], [],
        ["up", "up", "down", "up"], ["100.00%", "100.00%", "97.91%", "100.00%"], pct(100 - 1800 / (3.5 * DAY) * 100),
        None),
    "down from midnight to midnight colours that day only": (
        [(LONG_AGO, "up"), (T0 - 2 * DAY, "down"), (T0 - DAY, "up")], [], [],
        ["up", "down", "up", "up"], ["100.00%", "0.00%", "100.00%", "100.00%"], pct(100 - 100 / 3.5), None),
    "a one-second problem still colours the day": (
        [(LONG_AGO, "up"), (T0 - 3 * DAY + 5, "partial"), (T0 - 3 * DAY + 6, "up")], [], [],
        ["partial", "up", "up", "up"], ["100.00%"] * 4, "100.00%", None),
    "down inside planned maintenance is maintenance, not downtime": (
        [(LONG_AGO, "up"), (T0 - DAY + H, "down"), (T0 - DAY + 2 * H, "up")], [], [(T0 - DAY, T0 - DAY + 3 * H)],
        ["up", "up", "maintenance", "up"], ["100.00%"] * 4, "100.00%", None),
    "an incident while monitoring said up is downtime": (
        [(LONG_AGO, "up")], [(T0 - 3 * DAY, T0 - 3 * DAY + 864)], [],
        ["down", "up", "up", "up"], ["99.00%", "100.00%", "100.00%", "100.00%"], pct(100 - 864 / (3.5 * DAY) * 100),
        None),
    "stale time is left out of the divisor": (
        [(LONG_AGO, "up"), (T0 - DAY, "unknown"), (T0 - DAY + 12 * H, "down"), (T0 - DAY + 18 * H, "up")], [], [],
        ["up", "up", "down", "up"], ["100.00%", "100.00%", "50.00%", "100.00%"], pct(100 - 6 / 72 * 100),
        "3 days"),
    "nothing known: no number at all": (
        [], [], [], ["nodata"] * 4, [None] * 4, None, None),
}


@pytest.mark.parametrize("rows, unplanned, planned, colours, percents, overall, label", CASES.values(), ids=CASES)
def test_day_colours_percents_and_label(rows: list[tuple[float, str]], unplanned: list[tuple[float, float]],
                                        planned: list[tuple[float, float]], colours: list[str],
                                        percents: list[str | None], overall: str | None, label: str | None) -> None:
    bars = component_bars(rows, unplanned, planned, NOW, days=4)
    days = [d for r in bars.runs for d in r.days]
    assert [d.day for d in days] == [TODAY - timedelta(days=3 - i) for i in range(4)]
    assert [r.status for r in bars.runs for _ in r.days] == colours
    assert [pct(d.percent) for d in days] == percents
    assert pct(bars.percent) == overall
    assert bars.data == label


TITLES = {
    "two minutes of history": ["2026-11-29 to 2026-12-01 (3 days), each: no data",
                               "2026-12-02 (today, so far): up, 100.00% uptime (2 min of data)"],
    "degraded today is amber and still 100 %": [
        "2026-11-29 to 2026-12-01 (3 days), each: up, 100.00% uptime",
        "2026-12-02 (today, so far): degraded for 12 min (not downtime), 100.00% uptime"],
    "half an hour down yesterday": ["2026-11-29 to 2026-11-30 (2 days), each: up, 100.00% uptime",
                                    "2026-12-01: down for 30 min, 97.91% uptime",
                                    "2026-12-02 (today, so far): up, 100.00% uptime"],
    "down inside planned maintenance is maintenance, not downtime": [
        "2026-11-29 to 2026-11-30 (2 days), each: up, 100.00% uptime",
        "2026-12-01: maintenance for 3 h (not downtime), 100.00% uptime",
        "2026-12-02 (today, so far): up, 100.00% uptime"],
    "stale time is left out of the divisor": [
        "2026-11-29 to 2026-11-30 (2 days), each: up, 100.00% uptime",
        "2026-12-01: down for 6 h, 50.00% uptime (12 h of data)",
        "2026-12-02 (today, so far): up, 100.00% uptime"],
}


@pytest.mark.parametrize("case", TITLES)
def test_run_titles_are_true_for_every_day_and_today_stands_alone(case: str) -> None:
    rows, unplanned, planned, *_ = CASES[case]
    bars = component_bars(rows, unplanned, planned, NOW, days=4)
    assert [r.title for r in bars.runs] == TITLES[case]


@pytest.mark.parametrize("seconds, words", [
    (0.4, "under 1 s"), (59.9, "59 s"), (120, "2 min"), (150, "2 min 30 s"), (5 * H + 59 * M + 59, "5 h 59 min"),
    (DAY - 1, "23 h 59 min"), (DAY, "1 day"), (3 * DAY + 4 * H + 5 * M, "3 days 4 h"), (89 * DAY, "89 days"),
])
def test_span_words_truncate(seconds: float, words: str) -> None:
    assert span_words(seconds) == words


STATUSES = st.sampled_from(["up", "partial", "down", "maintenance", "unknown", "nodata"])
# Whole seconds across the window and a little before it, so every piece of time is at least a second.
TIMES = st.integers(int(T0 - 5 * DAY), int(NOW))
SPANS = st.lists(st.tuples(TIMES, TIMES).map(lambda t: (float(min(t)), float(max(t)))), max_size=3)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.tuples(TIMES, STATUSES), max_size=25), SPANS, SPANS)
def test_days_add_up_to_uptime_metrics(raw: list[tuple[int, str]], unplanned: list[tuple[float, float]],
                                       planned: list[tuple[float, float]]) -> None:
    rows = sorted((float(at), s) for at, s in raw)
    first = TODAY - timedelta(days=3)
    window = daily_uptime(rows, unplanned, planned, first, 4, NOW)
    start = midnight(first)
    # The overall figures are the Sorry metrics API's for the same window, exactly.
    assert window.total == metrics(component_impact(rows, unplanned, planned, start, NOW), start, NOW)
    assert sum(d.down for d in window.days) == pytest.approx(window.total.impact_time)
    assert sum(d.monitored for d in window.days) == pytest.approx(window.total.monitored_time)
    for d in window.days:
        a = midnight(d.day)
        b = min(a + DAY, NOW)
        assert d.down + d.degraded + d.maintenance + d.up + d.unknown == pytest.approx(b - a)
        alone = metrics(component_impact(rows, unplanned, planned, a, b), a, b)
        assert d.percent == (None if alone.percent is None else pytest.approx(alone.percent))
        # The colour never contradicts the number: red exactly when it is below 100 %, grey exactly when none.
        assert (d.status == "down") == (d.percent is not None and d.percent < 100)
        assert (d.status == "nodata") == (d.unknown == pytest.approx(b - a))
    runs = component_bars(rows, unplanned, planned, NOW, days=4).runs
    assert [d for r in runs for d in r.days] == list(window.days)
    assert len(runs[-1].days) == 1 and runs[-1].days[0].day == TODAY
