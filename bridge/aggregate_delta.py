"""Keeping one StatusData's aggregation caches right while a few of its checks change in place (Live's own data).

aggregate() reads per-data caches (bridge.aggregate: each component's counts, the status table, each
component's stale count). When Live changes some checks of its own merged data, these functions adjust
those caches by the changed checks alone, so a publish costs O(changed checks x components), not O(checks).
The key set never changes here (no check appears or vanishes): positions and plans stay valid.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from bridge.aggregate import STALE, STATUS_FIELDS, Table, imposes, rules_key
from bridge.config import Config
from bridge.matching import CheckKey, Memo
from bridge.model import CheckState, StatusData
from bridge.status_rules import SLOT, Rules, cached_rules, check_status_with, host_effect


def update_caches(memo: Memo, data: StatusData, new: Mapping[CheckKey, CheckState], flips: Mapping[CheckKey, bool],
                  config: Config, stale_keys: Set[CheckKey]) -> None:
    """Adjust memo's caches for new states (data still holds the old ones) and for flips (key -> now stale?)."""
    if new:
        _update_counts(memo, data, new, config)
        _update_table(memo, data, new)
    if flips:
        _update_stale(memo, data, flips, stale_keys)


def _slot(check: CheckState, host: CheckState | None, r: Rules) -> int:
    """The count slot one check takes under rules r (host: a service's host, None for a host check)."""
    return SLOT[check_status_with(check, host, r)]


def _update_counts(memo: Memo, data: StatusData, new: Mapping[CheckKey, CheckState], config: Config) -> None:
    """Move each changed check (and the services of a host whose effect changed) to its new count slot."""
    names, hosts, services = memo.names, data.hosts, data.services
    new_hosts = {h: st for (h, s), st in new.items() if s is None}
    at = {names.position(key, data): key for key in new if key[1] is not None}  # changed services by position
    seen: set[tuple] = set()
    for comp in config.components():
        cache_key = rules_key(comp)
        hit = memo.values.get(cache_key)
        if hit is None or cache_key in seen:  # uncounted (aggregate counts it from the data), or done already
            continue
        seen.add(cache_key)
        r, patterns = cached_rules(comp), comp.checks
        host_set, positions = names.index_plan(patterns, data)
        counts = list(hit[0])
        for p in positions.intersection(at):  # set intersection in C: O(changed), not O(matched)
            key = at[p]
            host = hosts.get(key[0])
            counts[_slot(services[key], host, r)] -= 1  # type: ignore[index]
            counts[_slot(new[key], new_hosts.get(key[0], host), r)] += 1
        for h, st in new_hosts.items():
            old = hosts[h]
            if h in host_set:
                counts[_slot(old, None, r)] -= 1
                counts[_slot(st, None, r)] += 1
            if host_effect(old, r) == host_effect(st, r):
                continue  # what the host imposes on its services did not change: neither did they
            for p in names.plan(patterns, data).by_host.get(h, ()):
                if p not in at:  # a changed service was moved above, with both hosts
                    svc = services[names.service_list[p]]  # type: ignore[index]
                    counts[_slot(svc, old, r)] -= 1
                    counts[_slot(svc, st, r)] += 1
        memo.values[cache_key] = (tuple(counts), hit[1])


def _update_table(memo: Memo, data: StatusData, new: Mapping[CheckKey, CheckState]) -> None:
    """Give changed services their new status code and changed hosts their place among the imposing ones."""
    table: Table | None = memo.values.get(Table)
    if table is None:
        return
    for key, st in new.items():
        if key[1] is not None:
            p = memo.names.position(key, data)
            assert p is not None  # the key set is unchanged: every changed service has its place
            table.codes[p] = table.code(STATUS_FIELDS(st))
        elif imposes(st) != (key[0] in table.imposing):
            table.imposing = table.imposing ^ {key[0]}


def _update_stale(memo: Memo, data: StatusData, flips: Mapping[CheckKey, bool], stale_keys: Set[CheckKey]) -> None:
    """Count each flipped check in or out of the stale counts of the components matching it."""
    hit = memo.values.get(STALE)
    if hit is None or hit[0]() is not stale_keys:
        return  # counted against another set: recounted when next asked
    counts: dict[tuple, int] = hit[1]
    names = memo.names
    at = {names.position(key, data): stale for key, stale in flips.items() if key[1] is not None}
    host_flips = {key[0]: stale for key, stale in flips.items() if key[1] is None}
    for patterns, n in counts.items():
        host_set, positions = names.index_plan(patterns, data)
        for p in positions.intersection(at):
            n += 1 if at[p] else -1
        for h in host_set.intersection(host_flips):
            n += 1 if host_flips[h] else -1
        counts[patterns] = n
