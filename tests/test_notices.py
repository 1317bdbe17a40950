"""Pure notice rules: timeline state, page state, shown overrides, due transitions, next change."""

from __future__ import annotations

import pytest

from bridge.model import Status
from bridge.notices import (
    DAY,
    Notice,
    Override,
    Transition,
    active_overrides,
    due_transitions,
    next_change,
    sorry_state,
    shown_overrides,
    timeline_state,
)

T = 1_700_000_000.0


def notice(id: int = 1, type: str = "unplanned", state: str = "investigating", *, began_at: float | None = None,
           ended_at: float | None = None, begins_at: float | None = None, ends_at: float | None = None,
           components: tuple[str, ...] = ()) -> Notice:
    """A notice created and last updated at T."""
    return Notice(id, type, state, "Subject", "subject", began_at, ended_at, begins_at, ends_at, T, T, components)


def planned(id: int = 1, state: str = "scheduled", begins_at: float = T + 100, ends_at: float | None = T + 200,
            components: tuple[str, ...] = ()) -> Notice:
    """A planned maintenance."""
    return notice(id, "planned", state, begins_at=begins_at, ends_at=ends_at, components=components)


def override(id: int, component: str, status: Status, starts_at: float, ends_at: float | None) -> Override:
    """An override created at T."""
    return Override(id, component, status, starts_at, ends_at, "reason", T)


@pytest.mark.parametrize("n, now, expected", [
    (planned(), T, "future"),
    (planned(begins_at=T - 5), T, "future"),  # still "scheduled": not begun until the transition is applied
    (planned(state="underway", begins_at=T - 5), T, "present"),
    (notice(began_at=T - 60), T, "present"),
    (notice(state="recovering", began_at=T - 60), T, "present"),  # not degrading, but not over either
    (notice(began_at=T + 60), T, "future"),
    (notice(state="resolved", began_at=T - 60, ended_at=T - 30), T, "past_recent"),
    (notice(state="false_alarm", began_at=T - 60, ended_at=T - 30), T, "past_recent"),
    (notice(state="resolved", ended_at=T - 7 * DAY), T, "past_recent"),  # exactly recent_days: still recent
    (notice(state="resolved", ended_at=T - 7 * DAY - 1), T, "past_distant"),
    (notice(type="planned", state="complete", began_at=T - 9 * DAY, ended_at=T - 8 * DAY), T, "past_distant"),
    (notice(state="resolved"), T + 7 * DAY, "past_recent"),  # no ended_at: falls back to updated_at
    (notice(state="resolved"), T + 7 * DAY + 1, "past_distant"),
])
def test_timeline_state(n: Notice, now: float, expected: str) -> None:
    assert timeline_state(n, now) == expected


def test_timeline_recent_days_is_configurable() -> None:
    n = notice(state="resolved", ended_at=T - 2 * DAY)
    assert (timeline_state(n, T, recent_days=2), timeline_state(n, T, recent_days=1.5)) == ("past_recent", "past_distant")


@pytest.mark.parametrize("notices, expected", [
    ((), "operational"),
    ((notice(state="investigating"),), "degraded"),
    ((notice(state="identified"),), "degraded"),
    ((notice(state="recovering"),), "operational"),  # Sorry: recovering is no longer current
    ((notice(state="resolved"),), "operational"),
    ((planned(state="scheduled"),), "operational"),
    ((planned(state="underway"),), "under_maintenance"),
    ((planned(state="complete"),), "operational"),
    ((planned(1, state="underway"), notice(2, state="identified")), "degraded"),  # degraded wins
    ((notice(2, state="recovering"), planned(1, state="underway")), "under_maintenance"),
])
def test_sorry_state(notices: tuple[Notice, ...], expected: str) -> None:
    assert sorry_state(notices) == expected


def test_shown_overrides_precedence() -> None:
    notices = [
        planned(1, "underway", T - 100, T + 100, components=("db", "web")),
        planned(2, "scheduled", T + 50, T + 100, components=("mail",)),  # not underway: no effect yet
        notice(3, components=("dns",)),  # an incident never replaces the monitored status
    ]
    overrides = [
        override(1, "web", Status.DOWN, T - 10, T + 10),  # override beats maintenance
        override(2, "cdn", Status.PARTIAL, T - 10, None),  # open-ended
        override(3, "dns", Status.UP, T + 1, None),  # not started
        override(4, "api", Status.DOWN, T - 20, T),  # ended exactly now (end exclusive)
    ]
    assert shown_overrides(overrides, notices, T) == {
        "db": Status.MAINTENANCE,
        "web": Status.DOWN,
        "cdn": Status.PARTIAL,
    }


def test_overlapping_overrides_latest_start_wins() -> None:
    overrides = [
        override(2, "web", Status.PARTIAL, T - 10, None),
        override(1, "web", Status.DOWN, T - 100, None),
    ]
    assert active_overrides(overrides, T)["web"].id == 2
    assert shown_overrides(overrides, [], T) == {"web": Status.PARTIAL}
    assert shown_overrides(overrides, [], T - 50) == {"web": Status.DOWN}


@pytest.mark.parametrize("now, active", [(T - 1, False), (T, True), (T + 9.999, True), (T + 10, False)])
def test_override_window_is_start_inclusive_end_exclusive(now: float, active: bool) -> None:
    assert override(1, "web", Status.DOWN, T, T + 10).active(now) is active


UNDERWAY = "This maintenance is now underway."
COMPLETE = "This maintenance is complete."


@pytest.mark.parametrize("n, now, expected", [
    (planned(), T + 99, []),  # one second before begins_at: nothing
    (planned(), T + 100, [Transition(1, "underway", T + 100, UNDERWAY)]),  # exactly at begins_at
    (planned(), T + 199, [Transition(1, "underway", T + 100, UNDERWAY)]),
    (planned(), T + 200, [Transition(1, "underway", T + 100, UNDERWAY), Transition(1, "complete", T + 200, COMPLETE)]),
    (planned(state="underway"), T + 199, []),
    (planned(state="underway"), T + 200, [Transition(1, "complete", T + 200, COMPLETE)]),
    (planned(ends_at=None), T + 10 * DAY, [Transition(1, "underway", T + 100, UNDERWAY)]),  # no end: stays underway
    (planned(state="underway", ends_at=None), T + 10 * DAY, []),
    (planned(state="complete"), T + 300, []),
    (notice(began_at=T), T + 300, []),  # unplanned notices move only by hand
])
def test_due_transitions_at_exact_times(n: Notice, now: float, expected: list[Transition]) -> None:
    assert due_transitions([n], now) == expected


def test_due_transitions_are_ordered_by_time() -> None:
    notices = [planned(1, begins_at=T + 50, ends_at=T + 60), planned(2, begins_at=T + 10, ends_at=T + 100)]
    due = due_transitions(notices, T + 1000)
    assert [(t.notice_id, t.state, t.at) for t in due] == [
        (2, "underway", T + 10), (1, "underway", T + 50), (1, "complete", T + 60), (2, "complete", T + 100),
    ]


@pytest.mark.parametrize("notices, overrides, now, expected", [
    ([], [], T, None),
    ([planned()], [], T, T + 100),
    ([planned()], [], T + 100, T + 200),  # at begins_at (transition pending): the next one is the end
    ([planned(state="underway")], [], T + 150, T + 200),
    ([planned()], [], T + 200, None),  # everything due now is due_transitions' business, not a wake-up
    ([planned(state="complete")], [], T, None),
    ([notice(began_at=T)], [], T, None),
    ([], [override(1, "web", Status.DOWN, T + 30, T + 60)], T, T + 30),
    ([], [override(1, "web", Status.DOWN, T + 30, T + 60)], T + 30, T + 60),
    ([], [override(1, "web", Status.DOWN, T - 30, None)], T, None),
    ([planned()], [override(1, "web", Status.DOWN, T + 150, None)], T + 120, T + 150),
])
def test_next_change(notices: list[Notice], overrides: list[Override], now: float, expected: float | None) -> None:
    assert next_change(notices, overrides, now) == expected
