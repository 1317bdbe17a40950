"""The one page state every surface renders: from the shown component statuses, their staleness and the sources."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from bridge.model import ComponentView, GroupView, PageState, SourceHealth, Status
from bridge.notices import DEGRADING_STATES, Notice, is_underway

UNKNOWN, MAJOR, MINOR, MAINTENANCE, OPERATIONAL = "unknown", "major", "minor", "maintenance", "operational"
STATES = (UNKNOWN, MAJOR, MINOR, MAINTENANCE, OPERATIONAL)  # first match wins, in this order

HEADLINE = {
    MAJOR: "Major problems reported",
    MINOR: "Some problems reported",
    MAINTENANCE: "Scheduled maintenance in progress",
    OPERATIONAL: "Systems running smoothly",
}
UNKNOWN_HEADLINE = {
    "no_data": "Status unknown: no monitoring data yet",
    "stale": "Status unknown: monitoring data is stale",
    "unchecked": "Status unknown: nothing has been checked yet",
    "empty": "Status unknown: no services are configured",
}


def _known(c: ComponentView) -> bool:
    """The shown status says something current: fresh monitoring, or a person's override or maintenance."""
    if c.status is Status.NODATA:
        return False
    return not c.stale or c.status != c.monitored_status


def _judge(groups: Sequence[GroupView], notices: Sequence[Notice]) -> str:
    """The state the shown statuses and the notices give, staleness aside (never UNKNOWN)."""
    statuses = {c.status for g in groups for c in g.components}
    judged = {g.status for g in groups if g.status is not Status.NODATA}
    if judged == {Status.DOWN}:
        return MAJOR
    incident = any(n.type == "unplanned" and n.state in DEGRADING_STATES for n in notices)
    if incident or Status.DOWN in statuses or Status.PARTIAL in statuses:
        return MINOR
    if Status.MAINTENANCE in statuses or any(is_underway(n) for n in notices):
        return MAINTENANCE
    return OPERATIONAL


def page_state(groups: Sequence[GroupView], health: SourceHealth, notices: Iterable[Notice] = ()) -> PageState:
    """The page state, first match wins: unknown, major, minor, maintenance, operational (see docs/states.md)."""
    notices = tuple(notices)
    components = [c for g in groups for c in g.components]
    stale = sum(c.stale for c in components)
    count = len(components)
    if not any(_known(c) for c in components):
        if not components:
            cause = "empty"
        elif health.data_created is None and all(c.status is Status.NODATA for c in components):
            cause = "no_data"
        elif stale or health.stale:
            cause = "stale"
        else:
            cause = "unchecked"
        last = None
        if cause == "stale" and any(c.status is not Status.NODATA for c in components):
            last = HEADLINE[_judge(groups, notices)]
        return PageState(UNKNOWN, UNKNOWN_HEADLINE[cause], cause, health.reason if health.stale else None, last,
                         stale, count)
    state = _judge(groups, notices)
    return PageState(state, HEADLINE[state], stale_components=stale, components=count)
