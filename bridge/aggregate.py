"""Pure aggregation: monitored check states -> component, group and page Status -> Snapshot, memoised per StatusData."""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Mapping, Set
from itertools import islice
from operator import itemgetter

from bridge.config import Component, Config
from bridge.matching import CheckKey, Matcher, Memo
from bridge.model import (
    CheckState,
    ComponentView,
    GroupView,
    Snapshot,
    SourceHealth,
    Status,
    StatusData,
)
from bridge.notices import Notice
from bridge.page_state import page_state
from bridge.status_rules import (
    HARD,
    NODATA,
    NODATA_SLOT,
    SLOT,
    SLOTS,
    Rules,
    cached_rules,
    check_status_with,
    combine_counts,
    group_status,
    host_effect,
    own_status,
    rules_for,
)

# What a service's own status depends on, as one hashable key:
# (downtime_depth, has_been_checked, state_type, current_state, last_hard_state).
STATUS_FIELDS = itemgetter(7, 5, 3, 2, 4)
_CHUNK = 8192  # services per C-level step: ~1 ms of GIL each, so a worker thread never stalls the loop
Key = tuple[int, bool, int, int, int]
STALE = "stale"  # memo.values key: (the stale key set counted, {patterns: matched checks in it})


def imposes(host: CheckState) -> bool:
    """Whether a host may overrule its services' statuses: in downtime or in a problem state."""
    return host.downtime_depth > 0 or (host.has_been_checked and (host.current_state in (1, 2) or host.last_hard_state in (1, 2)))


class Table:
    """Per StatusData: every service's status key as a small int code, and the hosts that may impose a status."""

    __slots__ = ("codes", "keys", "index", "imposing")

    def __init__(self, data: StatusData) -> None:
        codes: list[int] = []
        index: dict[Key, int] = {}
        values = iter(data.services.values())
        while chunk := list(map(STATUS_FIELDS, islice(values, _CHUNK))):
            for key in dict.fromkeys(chunk):  # a few dozen distinct keys in a whole file
                index.setdefault(key, len(index))
            codes.extend(map(index.__getitem__, chunk))
        self.codes = codes
        self.keys: list[Key] = list(index)  # code -> key
        self.index = index  # key -> code
        self.imposing = frozenset(name for name, h in data.hosts.items() if imposes(h))

    def code(self, key: Key) -> int:
        """The code of a status key, given a new one if it has none yet."""
        code = self.index.get(key)
        if code is None:
            code = self.index[key] = len(self.keys)
            self.keys.append(key)
        return code


def _table(memo: Memo, data: StatusData) -> Table:
    """The data's table, built once per StatusData object."""
    table = memo.values.get(Table)
    if table is None:
        table = memo.values[Table] = Table(data)
    return table


def _key_slot(key: Key, r: Rules, slot: Mapping[Status, int]) -> int:
    """The count slot of one service status key under rules r (no host influence)."""
    downtime_depth, checked, state_type, current, last_hard = key
    if downtime_depth > 0:
        return slot[r.downtime]
    if not checked:
        return slot[r.pending]
    state = current if r.soft or state_type == HARD else last_hard
    status = r.service.get(state)
    return NODATA_SLOT if status is None else slot[status]


def rules_key(component: Component) -> tuple:
    """What a component's counts depend on besides its patterns (the rule is applied to the counts later)."""
    return component.checks, tuple(component.states.items()), component.soft_states


def component_counts(component: Component, data: StatusData, matcher: Matcher) -> tuple[tuple[int, ...], int]:
    """(check counts by SLOTS, matched checks) of one component, computed once per StatusData object."""
    memo = matcher.memo(data)
    cache_key = rules_key(component)
    hit = memo.values.get(cache_key)
    if hit is not None:
        return hit
    plan = memo.names.plan(component.checks, data)
    r = rules_for(component)
    hosts, slot = data.hosts, SLOT
    counts = [0] * len(SLOTS)
    for h in plan.hosts:
        check = hosts.get(h)
        if check is not None:
            counts[slot[check_status_with(check, None, r)]] += 1
    if plan.positions:
        table = _table(memo, data)
        at = table.codes.__getitem__
        tally = Counter(map(at, plan.positions))  # at C speed: one dict update per matched service
        # Services whose host imposes a status (downtime, host down), by that status's slot.
        imposed: dict[int, list[int]] = {}
        for h in table.imposing.intersection(plan.by_host):
            effect = host_effect(hosts.get(h), r)
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
    return combine_counts(counts, component.rule, component.quorum), matched


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
    r = cached_rules(component)
    hosts = data.hosts
    out: list[float] = []
    for h in plan.hosts:
        chk = hosts.get(h)
        if chk is None or not chk.has_been_checked or chk.downtime_depth > 0:
            continue
        if (chk.state_type == 0 and not r.soft) or own_status(chk, r, r.host) != status:
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
    own = [_key_slot(key, r, SLOT) == SLOT[status] for key in table.keys]
    for h, positions in plan.services_by_host:
        host = hosts.get(h)
        if host is not None and host.downtime_depth > 0:
            continue  # entering a host downtime dates nothing
        effect = host_effect(host, r)
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


def prepare(data: StatusData, config: Config, matcher: Matcher, stale_keys: Set[CheckKey] = frozenset(),
            in_place: bool = False) -> None:
    """Do the heavy part of aggregate(data, ...) ahead, e.g. in a worker thread: resolve and count every component.

    stale_keys: count each component's stale checks too; in_place: also index the matches by check, for
    bridge.aggregate_delta (Live's own data, changed in place).
    """
    memo = matcher.memo(data)
    for comp in config.components():
        component_counts(comp, data, matcher)
        if stale_keys:
            stale_count(comp, data, stale_keys, matcher)
        if in_place:
            memo.names.index_plan(comp.checks, data)


def stale_count(component: Component, data: StatusData, stale_keys: Set[CheckKey], matcher: Matcher) -> int:
    """How many of the component's checks are in stale_keys, counted once per (data, stale key set)."""
    memo = matcher.memo(data)
    hit = memo.values.get(STALE)
    if hit is None or hit[0]() is not stale_keys:
        hit = memo.values[STALE] = (weakref.ref(stale_keys), {})
    counts: dict[tuple, int] = hit[1]
    n = counts.get(component.checks)
    if n is None:
        # A C-level walk of the matched keys, once per stale set: rebuilds (ticks, notices) then only look it up.
        n = counts[component.checks] = sum(map(stale_keys.__contains__, memo.names.plan(component.checks, data).keys))
    return n


def component_stale(component: Component, data: StatusData | None, health: SourceHealth,
                    stale_keys: Set[CheckKey], matcher: Matcher) -> bool:
    """True when any check behind the component comes from a stale source (all of them when there is no data)."""
    if data is None or health.stale:  # stale health: every source with data is stale
        return health.stale
    if not stale_keys:
        return False
    return stale_count(component, data, stale_keys, matcher) > 0


def aggregate(
    data: StatusData | None,
    health: SourceHealth,
    config: Config,
    now: float,
    matcher: Matcher | None = None,
    overrides: Mapping[str, Status] | None = None,
    stale_keys: Set[CheckKey] = frozenset(),
    notices: tuple[Notice, ...] = (),
) -> Snapshot:
    """Build the immutable Snapshot; overrides (component id -> Status) replace the shown status only.

    stale_keys: checks whose state comes from a stale source; notices: every stored notice (the page
    state counts open incidents and underway maintenance).
    """
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
                    stale=component_stale(comp, data, health, stale_keys, matcher),
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
    return Snapshot(
        page_name=config.page_name,
        page_url=config.page_url,
        generated_at=now,
        data_created=data.created if data is not None else None,
        stale=health.stale,
        stale_reason=health.reason,
        page=page_state(group_views, health, notices),
        groups=tuple(group_views),
        health=health,
        notices=notices,
    )
