"""Pure aggregation: monitored check states -> component, group and page Status -> Snapshot."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import islice
from operator import itemgetter
from typing import NamedTuple

from bridge.config import DEFAULT_STATES, Component, Config
from bridge.matching import Matcher, Memo
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


# id(component) -> (component, its rules): history asks check_status once per matched check.
_RULES_CACHE: dict[int, tuple[Component, _Rules]] = {}


def _cached_rules(component: Component) -> _Rules:
    """_rules(component), remembered per component object (the entry keeps it alive, so its id stays its own)."""
    hit = _RULES_CACHE.get(id(component))
    if hit is not None and hit[0] is component:
        return hit[1]
    if len(_RULES_CACHE) >= 1024:  # config reloads make new components: forget the old ones
        _RULES_CACHE.clear()
    r = _rules(component)
    _RULES_CACHE[id(component)] = (component, r)
    return r


def check_status(check: CheckState, host: CheckState | None, component: Component) -> Status:
    """The Status one host or service check contributes to component (host: the service's host)."""
    return _check(check, host, _cached_rules(component))


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


# What a service's own status depends on, as one hashable key:
# (downtime_depth, has_been_checked, state_type, current_state, last_hard_state).
_STATUS_FIELDS = itemgetter(7, 5, 3, 2, 4)
_CHUNK = 8192  # services per C-level step: ~1 ms of GIL each, so a worker thread never stalls the loop
Key = tuple[int, bool, int, int, int]


class _Table:
    """Per StatusData: every service's status key as a small int code, and the hosts that may impose a status."""

    __slots__ = ("codes", "keys", "imposing")

    def __init__(self, data: StatusData) -> None:
        codes: list[int] = []
        index: dict[Key, int] = {}
        values = iter(data.services.values())
        while chunk := list(map(_STATUS_FIELDS, islice(values, _CHUNK))):
            for key in dict.fromkeys(chunk):  # a few dozen distinct keys in a whole file
                index.setdefault(key, len(index))
            codes.extend(map(index.__getitem__, chunk))
        self.codes = codes
        self.keys: list[Key] = list(index)  # code -> key
        # Hosts in downtime or in a problem state: the only ones whose services may be overruled.
        self.imposing = frozenset(
            name for name, h in data.hosts.items()
            if h.downtime_depth > 0 or (h.has_been_checked and (h.current_state in (1, 2) or h.last_hard_state in (1, 2)))
        )


def _table(memo: Memo, data: StatusData) -> _Table:
    """The data's table, built once per StatusData object."""
    table = memo.values.get(_Table)
    if table is None:
        table = memo.values[_Table] = _Table(data)
    return table


def _key_slot(key: Key, r: _Rules, slot: Mapping[Status, int]) -> int:
    """The count slot of one service status key under rules r (no host influence)."""
    downtime_depth, checked, state_type, current, last_hard = key
    if downtime_depth > 0:
        return slot[r.downtime]
    if not checked:
        return slot[r.pending]
    state = current if r.soft or state_type == _HARD else last_hard
    status = r.service.get(state)
    return _NODATA_SLOT if status is None else slot[status]


def _rules_key(component: Component) -> tuple:
    """What a component's counts depend on besides its patterns (the rule is applied to the counts later)."""
    return component.checks, tuple(component.states.items()), component.soft_states


def component_counts(component: Component, data: StatusData, matcher: Matcher) -> tuple[tuple[int, ...], int]:
    """(check counts by _SLOTS, matched checks) of one component, computed once per StatusData object."""
    memo = matcher.memo(data)
    cache_key = _rules_key(component)
    hit = memo.values.get(cache_key)
    if hit is not None:
        return hit
    plan = memo.names.plan(component.checks, data)
    r = _rules(component)
    hosts, slot = data.hosts, _SLOT
    counts = [0] * len(_SLOTS)
    for h in plan.hosts:
        check = hosts.get(h)
        if check is not None:
            counts[slot[_check(check, None, r)]] += 1
    if plan.positions:
        table = _table(memo, data)
        at = table.codes.__getitem__
        tally = Counter(map(at, plan.positions))  # at C speed: one dict update per matched service
        # Services whose host imposes a status (downtime, host down), by that status's slot.
        imposed: dict[int, list[int]] = {}
        for h in table.imposing.intersection(plan.by_host):
            effect = _host_effect(hosts.get(h), r)
            if effect is not None:
                imposed.setdefault(slot[effect], []).extend(plan.by_host[h])
        downtime = slot[r.downtime]
        for forced_slot, positions in imposed.items():
            forced = Counter(map(at, positions))
            tally.subtract(forced)
            for code, n in forced.items():  # a service in its own downtime stays in maintenance
                counts[downtime if table.keys[code][0] > 0 else forced_slot] += n
        for code, n in tally.items():
            if n:
                counts[_key_slot(table.keys[code], r, slot)] += n
    result = memo.values[cache_key] = (tuple(counts), len(plan.keys))
    return result


def _component_status(component: Component, data: StatusData, matcher: Matcher) -> tuple[Status, int]:
    """(monitored status, matched checks) of one component."""
    counts, matched = component_counts(component, data, matcher)
    return _combine_counts(counts, component.rule, component.quorum), matched


def explaining_times(component: Component, data: StatusData, status: Status, matcher: Matcher) -> list[float]:
    """bridge.history.explaining_times(component, matched keys, data, status), from the per-data table.

    The last_state_change of each matched check whose own status is `status` and whose state change
    can explain it (not in a downtime, HARD unless the component counts SOFT states; a service's time is
    at least its host's). Only the checks that qualify are visited one by one: the status of the rest
    is decided per distinct status key, which matters when every component changes at once (start-up,
    data fresh again) at 100k services.
    """
    memo = matcher.memo(data)
    plan = memo.names.plan(component.checks, data)
    r = _cached_rules(component)
    hosts = data.hosts
    out: list[float] = []
    for h in plan.hosts:
        chk = hosts.get(h)
        if chk is None or not chk.has_been_checked or chk.downtime_depth > 0:
            continue
        if (chk.state_type == 0 and not r.soft) or _own(chk, r, r.host) != status:
            continue
        if chk.last_state_change > 0:
            out.append(float(chk.last_state_change))
    if not plan.positions:
        return out
    # Positions to states through the names (no per-data list: a memo must never hold states alive).
    table, keys, services = _table(memo, data), memo.names.service_list, data.services
    codes = table.codes
    # Per status key: could such a service explain `status` at all (checked, no own downtime, hard)?
    usable = [checked and depth <= 0 and (state_type != 0 or r.soft)
              for depth, checked, state_type, _, _ in table.keys]  # fmt: skip
    own = [_key_slot(key, r, _SLOT) == _SLOT[status] for key in table.keys]
    for h, positions in plan.services_by_host:
        host = hosts.get(h)
        if host is not None and host.downtime_depth > 0:
            continue  # entering a host downtime dates nothing
        effect = _host_effect(host, r)
        if effect is not None:
            if effect != status:
                continue
            picked = [p for p in positions if usable[codes[p]]]
        else:
            picked = [p for p in positions if usable[codes[p]] and own[codes[p]]]
        if not picked:
            continue
        floor = host.last_state_change if host is not None and host.has_been_checked else None
        for p in picked:
            when = services[keys[p]].last_state_change
            if floor is not None and floor > when:
                when = floor
            if when > 0:
                out.append(float(when))
    return out


def prepare(data: StatusData, config: Config, matcher: Matcher) -> None:
    """Do the heavy part of aggregate(data, ...) ahead, e.g. in a worker thread: resolve and count every component."""
    for comp in config.components():
        component_counts(comp, data, matcher)


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
    group_views: list[GroupView] = []
    for group in config.groups:
        views: list[ComponentView] = []
        for comp in group.components:
            monitored, matched = (
                _component_status(comp, data, matcher) if data is not None else (NODATA, 0)
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
