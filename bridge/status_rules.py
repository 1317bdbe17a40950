"""Status semantics: what one check contributes to a component, and the component and group rules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from bridge.config import DEFAULT_STATES, Component
from bridge.model import CheckState, Status

UP, PARTIAL, DOWN = Status.UP, Status.PARTIAL, Status.DOWN
MAINTENANCE, NODATA = Status.MAINTENANCE, Status.NODATA

_SERVICE_KEYS = ("ok", "warning", "critical", "unknown")  # indexed by Nagios service state
_HOST_KEYS = ("host_up", "host_down", "host_unreachable")  # indexed by Nagios host state

HARD = 1


class Rules(NamedTuple):
    """A component's state map flattened for the per-check hot loop."""

    downtime: Status
    pending: Status
    service: dict[int, Status]  # service state number -> Status
    host: dict[int, Status]  # host state number -> Status, for the host check itself
    host_problem: dict[int, Status]  # host DOWN/UNREACHABLE -> Status imposed on its services
    soft: bool


def full_states(component: Component) -> dict[str, Status]:
    """The component's state map with defaults filled in for keys it does not override."""
    return {**DEFAULT_STATES, **component.states}


def rules_for(component: Component) -> Rules:
    """Precompute component's mapping so each check costs a few dict lookups."""
    st = full_states(component)
    return Rules(
        downtime=st["downtime"],
        pending=st["pending"],
        service={i: st[k] for i, k in enumerate(_SERVICE_KEYS)},
        host={i: st[k] for i, k in enumerate(_HOST_KEYS)},
        host_problem={1: st["host_down"], 2: st["host_unreachable"]},
        soft=component.soft_states,
    )


def own_status(check: CheckState, r: Rules, table: dict[int, Status]) -> Status:
    """A check's status from its own state (no downtime, no host influence)."""
    if not check.has_been_checked:
        return r.pending
    state = check.current_state if r.soft or check.state_type == HARD else check.last_hard_state
    # A state number Nagios never writes means corrupt input: no claim, and certainly not DOWN.
    return table.get(state, NODATA)


def host_effect(host: CheckState | None, r: Rules) -> Status | None:
    """What a service's host imposes on it (downtime or a host problem), or None."""
    if host is None:
        return None
    if host.downtime_depth > 0:
        return r.downtime
    if not host.has_been_checked:
        return None
    state = host.current_state if r.soft or host.state_type == HARD else host.last_hard_state
    return r.host_problem.get(state)


def check_status_with(check: CheckState, host: CheckState | None, r: Rules) -> Status:
    """check_status with precomputed rules."""
    # Declared maintenance outranks everything: a host rebooting in its downtime is not an outage.
    if check.downtime_depth > 0:
        return r.downtime
    if check.service is None:
        return own_status(check, r, r.host)
    effect = host_effect(host, r)
    return effect if effect is not None else own_status(check, r, r.service)


# id(component) -> (component, its rules): history asks check_status once per matched check.
_RULES_CACHE: dict[int, tuple[Component, Rules]] = {}


def cached_rules(component: Component) -> Rules:
    """rules_for(component), remembered per component object (the entry keeps it alive, so its id stays its own)."""
    hit = _RULES_CACHE.get(id(component))
    if hit is not None and hit[0] is component:
        return hit[1]
    if len(_RULES_CACHE) >= 1024:  # config reloads make new components: forget the old ones
        _RULES_CACHE.clear()
    r = rules_for(component)
    _RULES_CACHE[id(component)] = (component, r)
    return r


def check_status(check: CheckState, host: CheckState | None, component: Component) -> Status:
    """The Status one host or service check contributes to component (host: the service's host)."""
    return check_status_with(check, host, cached_rules(component))


# Count slots for the hot loop: list indexing is cheaper than a dict keyed by Status.
SLOTS = (UP, MAINTENANCE, PARTIAL, DOWN, NODATA)
SLOT = {s: i for i, s in enumerate(SLOTS)}
NODATA_SLOT = SLOT[NODATA]


def combine_counts(c: Sequence[int], rule: str, quorum: float) -> Status:
    """combine() over counts indexed like SLOTS (the NODATA slot is ignored)."""
    up, maint, partial, down = c[0], c[1], c[2], c[3]
    judged = up + maint + partial + down
    if judged == 0:
        return NODATA
    problems = down + partial
    if rule == "worst":
        return DOWN if down else PARTIAL if partial else MAINTENANCE if maint else UP
    if rule == "all":
        if down == judged:
            return DOWN
        if problems:
            return PARTIAL
        return MAINTENANCE if maint else UP
    if rule == "quorum":
        # Cross-multiplied so "exactly at the threshold" is not lost to float division.
        if up * 100 >= quorum * judged:
            if up == judged:
                return UP
            return PARTIAL if problems else MAINTENANCE
        # Below quorum is an outage only if something is actually down: degraded or
        # maintained checks alone must never make the page say "Down".
        return DOWN if down else PARTIAL if partial else MAINTENANCE
    raise ValueError(f"unknown component rule {rule!r}")


def combine(statuses: Sequence[Status], rule: str, quorum: float) -> Status:
    """A component's Status from its checks' statuses by rule worst, all or quorum (percent up)."""
    counts = [0] * len(SLOTS)
    for s in statuses:
        counts[SLOT[Status(s)]] += 1
    return combine_counts(counts, rule, quorum)


def group_status(components: Sequence[Status]) -> Status:
    """The Oxford group rule: all up -> UP, all down -> DOWN, only up and maintenance -> MAINTENANCE, else PARTIAL."""
    judged = {s for s in components if s != NODATA}
    if not judged:
        return NODATA
    if len(judged) == 1:
        return next(iter(judged))
    # Planned work on part of a group is not a problem with the group: say maintenance, not "Partial".
    return MAINTENANCE if judged == {UP, MAINTENANCE} else PARTIAL
