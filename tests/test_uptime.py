"""Pure uptime math: intervals, impact (outages, notices, maintenance, unknown), groups, metrics and words."""

from __future__ import annotations

import pytest

from bridge.notices import Notice
from bridge.uptime import (
    Impact,
    component_impact,
    duration_words,
    group_impact,
    impact_overlaps,
    intersect,
    maintenance_window,
    merge,
    metrics,
    notice_impact,
    percent_words,
    status_intervals,
    subtract,
)

# A timeframe of 1000 s keeps every expectation computable by hand.
START, END = 0.0, 1000.0


def notice(type_: str = "unplanned", state: str = "investigating", began: float | None = 0.0, ended: float | None = None) -> Notice:
    """A bare notice for interval tests."""
    return Notice(1, type_, state, "s", "s", began, ended, None, None, 0.0, 0.0, ("c",))


def test_interval_algebra() -> None:
    assert merge([(5, 7), (1, 3), (3, 4), (6, 9), (10, 10)]) == [(1, 4), (5, 9)]
    assert subtract([(0, 10), (20, 30)], [(2, 3), (5, 22), (29, 40)]) == [(0, 2), (3, 5), (22, 29)]
    assert subtract([(0, 10)], []) == [(0, 10)] and subtract([], [(0, 1)]) == []
    assert intersect([(0, 10), (20, 30)], [(5, 25)]) == [(5, 10), (20, 25)]


def test_status_intervals_hold_until_the_next_row_and_unknown_before_the_first() -> None:
    rows = [(-50.0, "up"), (100.0, "down"), (300.0, "down"), (400.0, "up")]
    assert status_intervals(rows, START, END) == {"up": [(0, 100), (400, 1000)], "down": [(100, 400)]}
    assert status_intervals([(600.0, "up")], START, END) == {"unknown": [(0, 600)], "up": [(600, 1000)]}
    assert status_intervals([], START, END) == {"unknown": [(0, 1000)]}


def test_no_outages() -> None:
    m = metrics(component_impact([(-10.0, "up")], [], [], START, END), START, END)
    assert (m.total_time, m.impact_time, m.episodes, m.unknown_time) == (1000, 0, 0, 0)
    # Decided: no failure means MTTR 0 and MTBF the whole timeframe (one unbroken run).
    assert (m.percent, m.mttr, m.mtbf) == (100.0, 0.0, 1000.0)


def test_overlapping_notice_and_outage_are_one_episode() -> None:
    rows = [(-10.0, "up"), (100.0, "down"), (300.0, "up")]
    m = metrics(component_impact(rows, [(200.0, 400.0)], [], START, END), START, END)
    # Impact [100, 400): 300 s in one episode.
    assert (m.impact_time, m.episodes, m.percent, m.mttr, m.mtbf) == (300, 1, 70.0, 300, 700)


def test_outage_spanning_the_timeframe_edges_is_clipped() -> None:
    rows = [(-100.0, "down"), (50.0, "up"), (950.0, "down")]
    m = metrics(component_impact(rows, [(-500.0, 20.0)], [], START, END), START, END)
    # [0, 50) and [950, 1000): 100 s in two episodes; MTTR 50, MTBF (1000 - 100) / 2.
    assert (m.impact_time, m.episodes, m.percent, m.mttr, m.mtbf) == (100, 2, 90.0, 50, 450)


def test_maintenance_inside_an_outage_is_not_impact() -> None:
    rows = [(-10.0, "up"), (100.0, "down"), (500.0, "up")]
    imp = component_impact(rows, [], [(200.0, 300.0)], START, END)
    assert imp.impact == [(100, 200), (300, 500)]
    m = metrics(imp, START, END)
    assert (m.impact_time, m.episodes, m.mttr, m.mtbf) == (300, 2, 150, 350)
    # A Nagios downtime (maintenance status) likewise hides an unplanned notice's time.
    rows = [(-10.0, "up"), (100.0, "maintenance"), (200.0, "up")]
    assert component_impact(rows, [(50.0, 250.0)], [], START, END).impact == [(50, 100), (200, 250)]


def test_unknown_periods_are_neither_up_nor_down() -> None:
    rows = [(-10.0, "down"), (100.0, "unknown"), (300.0, "down"), (400.0, "nodata"), (500.0, "up")]
    imp = component_impact(rows, [], [], START, END)
    m = metrics(imp, START, END)
    # Down [0, 100) and [300, 400); unknown [100, 300) and [400, 500) is in total_time but not monitored.
    assert (m.total_time, m.impact_time, m.episodes, m.unknown_time, m.monitored_time) == (1000, 200, 2, 300, 700)
    assert m.percent == pytest.approx(100 - 200 / 700 * 100)
    # An unplanned notice still counts while the data is unknown: a person declared it.
    assert component_impact(rows, [(150.0, 200.0)], [], START, END).impact == [(0, 100), (150, 200), (300, 400)]


def test_group_impact_is_the_union_of_its_children() -> None:
    a = component_impact([(-1.0, "up"), (100.0, "down"), (200.0, "up")], [], [], START, END)
    b = component_impact([(150.0, "down"), (300.0, "up")], [], [], START, END)  # unknown until 150
    g = group_impact([a, b], [(600.0, 700.0)], [(650.0, 660.0)], START, END)
    assert g.impact == [(100, 300), (600, 650), (660, 700)]
    m = metrics(g, START, END)
    assert (m.impact_time, m.episodes) == (290, 3)
    # Unknown only while every child is: a is known throughout, so the group is too.
    assert g.unknown == []
    assert group_impact([b, b], [], [], START, END).unknown == [(0, 150)]
    assert group_impact([], [], [], START, END) == Impact([], [(0, 1000)])


def test_notice_intervals() -> None:
    assert notice_impact(notice(began=10.0, ended=130.0), 999.0) == (10, 130)
    assert notice_impact(notice(began=10.0), 999.0) == (10, 999)  # ongoing: up to now
    assert notice_impact(notice(state="false_alarm", began=10.0, ended=20.0), 999.0) is None
    assert notice_impact(notice("planned", "underway", began=10.0), 999.0) is None
    assert maintenance_window(notice("planned", "underway", began=10.0), 50.0) == (10, 50)
    assert maintenance_window(notice("planned", "scheduled", began=None), 50.0) is None
    assert impact_overlaps(notice(began=10.0, ended=20.0), 20.0, 30.0, 99.0)
    assert not impact_overlaps(notice(began=10.0, ended=20.0), 21.0, 30.0, 99.0)


def test_zero_length_timeframe() -> None:
    m = metrics(Impact([], []), 5.0, 5.0)
    assert (m.total_time, m.percent, m.mttr, m.mtbf) == (0, None, 0, 0)  # nothing monitored: no number


# Uptime counts the monitored time only (timeframe - unknown); a declared outage over unknown time is monitored.
@pytest.mark.parametrize("timeframe, impact, unknown, monitored, percent, mttr, mtbf", [
    (1000, [], [], 1000, 100.0, 0, 1000),  # spotless: MTBF the whole monitored time
    (1000, [(0, 100)], [], 1000, 90.0, 100, 900),
    (1000, [(0, 100), (500, 600)], [], 1000, 80.0, 100, 400),
    (1000, [(0, 100)], [(500, 1000)], 500, 80.0, 100, 400),  # history began halfway: 100 of 500 s, not of 1000
    (1000, [], [(0, 600)], 400, 100.0, 0, 400),  # unknown time is not claimed as up: MTBF 400, not 1000
    (1000, [], [(0, 1000)], 0, None, 0, 0),  # all unknown: neither 100 % nor 0 %
    (1000, [(0, 250)], [(250, 1000)], 250, 0.0, 250, 0),  # all the monitored time was down
    (1000, [(100, 200)], [(0, 1000)], 100, 0.0, 100, 0),  # only a notice's outage over stale data is known
    (1000, [(400, 500)], [(0, 500)], 600, 100 - 100 / 600 * 100, 100, 500),  # a notice overlapping unknown time
    (0, [], [], 0, None, 0, 0),
])
def test_metrics_over_the_monitored_time(timeframe: float, impact: list[tuple[float, float]],
                                         unknown: list[tuple[float, float]], monitored: float,
                                         percent: float | None, mttr: float, mtbf: float) -> None:
    m = metrics(Impact(impact, unknown), 0.0, timeframe)
    assert (m.total_time, m.monitored_time, m.mttr, m.mtbf) == (timeframe, monitored, mttr, mtbf)
    assert m.unknown_time == timeframe - monitored
    assert m.percent == (None if percent is None else pytest.approx(percent))


@pytest.mark.parametrize("seconds, title, lower", [
    (194400, "2 Days, 6 Hours", "2 days, 6 hours"),  # the seed's MTBF words
    (72000, "20 Hours", "20 hours"),
    (2592000, "30 Days", "30 days"),
    (120, "2 Minutes", "2 minutes"),  # the seed's notice impact_time (lower case there)
    (2592000 + 3599, "30 Days", "30 days"),  # truncated: the next unit is zero, a third is never shown
    (86400 + 3600 + 61, "1 Day, 1 Hour", "1 day, 1 hour"),
    (61, "1 Minute, 1 Second", "1 minute, 1 second"),
    (0, "0 Seconds", "0 seconds"),
    (0.9, "0 Seconds", "0 seconds"),
])
def test_duration_words(seconds: float, title: str, lower: str) -> None:
    assert duration_words(seconds) == title
    assert duration_words(seconds, title=False) == lower


def test_percent_words() -> None:
    assert percent_words(97.260273972602) == "97.26%"  # the seed's example
    assert percent_words(100.0) == "100.00%"
    assert percent_words(99.999) == "99.99%"  # truncated: never "100.00%" after any impact
    assert percent_words(99.99) == "99.99%"
    assert percent_words(0.0) == "0.00%"
    assert percent_words(None) == "No data"  # nothing monitored
    # The seed's 72000 s of impact in 30 days.
    assert percent_words(metrics(Impact([(0.0, 72000.0)], []), 0.0, 2592000.0).percent) == "97.22%"
