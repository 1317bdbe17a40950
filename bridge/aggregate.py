"""Pure aggregation: monitored check states -> component, group and page Status -> Snapshot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from bridge.config import DEFAULT_STATES, Component, Config
from bridge.matching import Matcher
from bridge.model import (
    CheckState,
    ComponentView,
    GroupView,
    Snapshot,
    SourceHealth,
    Status,
    StatusData,
)

BANNER_UP = "Systems running smoothly"
BANNER_PARTIAL = "Some problems reported"
BANNER_DOWN = "Major problems reported"

UP, PARTIAL, DOWN = Status.UP, Status.PARTIAL, Status.DOWN
MAINTENANCE, NODATA = Status.MAINTENANCE, Status.NODATA

_SERVICE_KEYS = ("ok", "warning", "critical", "unknown")  # indexed by Nagios service state
_HOST_KEYS = ("host_up", "host_down", "host_unreachable")  # indexed by Nagios host state

_HARD = 1


class _Rules(NamedTuple):
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


def _rules(component: Component) -> _Rules:
    """Precompute component's mapping so each check costs a few dict lookups."""
    st = full_states(component)
    return _Rules(
        downtime=st["downtime"],
        pending=st["pending"],
        service={i: st[k] for i, k in enumerate(_SERVICE_KEYS)},
        host={i: st[k] for i, k in enumerate(_HOST_KEYS)},
        host_problem={1: st["host_down"], 2: st["host_unreachable"]},
        soft=component.soft_states,
    )


def _own(check: CheckState, r: _Rules, table: dict[int, Status]) -> Status:
    """A check's status from its own state (no downtime, no host influence)."""
    if not check.has_been_checked:
        return r.pending
    state = check.current_state if r.soft or check.state_type == _HARD else check.last_hard_state
    # A state number Nagios never writes means corrupt input: no claim, and certainly not DOWN.
    return table.get(state, NODATA)


def _host_effect(host: CheckState | None, r: _Rules) -> Status | None:
    """What a service's host imposes on it (downtime or a host problem), or None."""
    if host is None:
        return None
    if host.downtime_depth > 0:
        return r.downtime
    if not host.has_been_checked:
        return None
    state = host.current_state if r.soft or host.state_type == _HARD else host.last_hard_state
    return r.host_problem.get(state)


def _check(check: CheckState, host: CheckState | None, r: _Rules) -> Status:
    """check_status with precomputed rules."""
    # Declared maintenance outranks everything: a host rebooting in its downtime is not an outage.
    if check.downtime_depth > 0:
        return r.downtime
    if check.service is None:
        return _own(check, r, r.host)
    effect = _host_effect(host, r)
    return effect if effect is not None else _own(check, r, r.service)


def check_status(check: CheckState, host: CheckState | None, component: Component) -> Status:
    """The Status one host or service check contributes to component (host: the service's host)."""
    return _check(check, host, _rules(component))


# Count slots for the hot loop: list indexing is cheaper than a dict keyed by Status.
_SLOTS = (UP, MAINTENANCE, PARTIAL, DOWN, NODATA)
_SLOT = {s: i for i, s in enumerate(_SLOTS)}
_NODATA_SLOT = _SLOT[NODATA]


def _combine_counts(c: Sequence[int], rule: str, quorum: float) -> Status:
    """combine() over counts indexed like _SLOTS (the NODATA slot is ignored)."""
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
    counts = [0] * len(_SLOTS)
    for s in statuses:
        counts[_SLOT[Status(s)]] += 1
    return _combine_counts(counts, rule, quorum)


def group_status(components: Sequence[Status]) -> Status:
    """The Oxford group rule: all up -> UP, all down -> DOWN, all maintenance -> MAINTENANCE, else PARTIAL."""
    judged = {s for s in components if s != NODATA}
    if not judged:
        return NODATA
    if len(judged) == 1:
        return next(iter(judged))
    return PARTIAL


def page_status(groups: Sequence[Status]) -> tuple[Status, str]:
    """The page banner: UP when nothing is wrong, DOWN when every group is down, else PARTIAL."""
    judged = {s for s in groups if s != NODATA}
    if judged <= {UP}:
        return UP, BANNER_UP
    if judged == {DOWN}:
        return DOWN, BANNER_DOWN
    return PARTIAL, BANNER_PARTIAL


def _component_status(
    component: Component, data: StatusData, services: list[CheckState], matcher: Matcher
) -> tuple[Status, int]:
    """(monitored status, matched checks) of one component; services is list(data.services.values())."""
    plan = matcher.plan(component, data)
    r = _rules(component)
    hosts, slot = data.hosts, _SLOT
    counts = [0] * len(_SLOTS)
    for h in plan.hosts:
        check = hosts.get(h)
        if check is not None:
            counts[slot[_check(check, None, r)]] += 1
    downtime, pending, soft = slot[r.downtime], slot[r.pending], r.soft
    table = {state: slot[status] for state, status in r.service.items()}
    at = services.__getitem__
    for h, positions in plan.services_by_host:
        effect = _host_effect(hosts.get(h), r)
        forced = None if effect is None else slot[effect]
        # Inlined _check/_own: this loop runs once per matched service (100k on big sites).
        for check in map(at, positions):
            if check.downtime_depth > 0:
                counts[downtime] += 1
            elif forced is not None:
                counts[forced] += 1
            elif not check.has_been_checked:
                counts[pending] += 1
            else:
                hard = soft or check.state_type == _HARD
                state = check.current_state if hard else check.last_hard_state
                counts[table.get(state, _NODATA_SLOT)] += 1
    return _combine_counts(counts, component.rule, component.quorum), len(plan.keys)


def aggregate(
    data: StatusData | None,
    health: SourceHealth,
    config: Config,
    now: float,
    matcher: Matcher | None = None,
    overrides: Mapping[str, Status] | None = None,
) -> Snapshot:
    """Build the immutable Snapshot; overrides (component id -> Status) replace the shown status only."""
    # Pass a long-lived Matcher: a fresh one re-resolves every glob on every call.
    matcher = matcher if matcher is not None else Matcher()
    overrides = overrides or {}
    # Built per call, not cached: positions in a Plan index the current iteration order.
    services = list(data.services.values()) if data is not None else []
    group_views: list[GroupView] = []
    for group in config.groups:
        views: list[ComponentView] = []
        for comp in group.components:
            monitored, matched = (
                _component_status(comp, data, services, matcher) if data is not None else (NODATA, 0)
            )
            views.append(
                ComponentView(
                    id=comp.id,
                    name=comp.name,
                    group_id=group.id,
                    description=comp.description,
                    status=Status(overrides[comp.id]) if comp.id in overrides else monitored,
                    monitored_status=monitored,
                    checks_matched=matched,
                )
            )
        group_views.append(
            GroupView(
                id=group.id,
                name=group.name,
                description=group.description,
                status=group_status([v.status for v in views]),
                components=tuple(views),
            )
        )
    status, banner = page_status([g.status for g in group_views])
    return Snapshot(
        page_name=config.page_name,
        page_url=config.page_url,
        generated_at=now,
        data_created=data.created if data is not None else None,
        stale=health.stale,
        stale_reason=health.reason,
        status=status,
        banner=banner,
        groups=tuple(group_views),
        health=health,
    )
