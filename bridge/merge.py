"""Merge check states from several sources: per check the newest result wins; staleness stays per source."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bridge.model import CheckState, SourceHealth, StatusData

CheckKey = tuple[str, str | None]


@dataclass(frozen=True)
class SourceView:
    """One source's current checks and health; stale_keys marks single stale checks of a fresh source."""

    name: str
    data: StatusData | None
    health: SourceHealth
    stale_keys: frozenset[CheckKey] = frozenset()
    # False for sources that cannot know downtimes/acknowledgements (pushed results): merge takes those
    # from the newest annotated source holding the same check.
    annotated: bool = True

    def is_stale(self, key: CheckKey) -> bool:
        """True when this source's state for key should not be trusted as current."""
        return self.health.stale or key in self.stale_keys


@dataclass(frozen=True)
class Merged:
    """The merged view aggregation works on."""

    data: StatusData | None
    health: SourceHealth  # stale only when no source has fresh data
    stale_keys: frozenset[CheckKey]  # checks whose winning state came from a stale source




def combined_health(views: Sequence[SourceView]) -> SourceHealth:
    """Stale only when every source that has data is stale; otherwise the freshest source's health."""
    with_data = [v for v in views if v.data is not None]
    fresh = [v for v in with_data if not v.health.stale]
    if fresh:
        return max(fresh, key=lambda v: v.health.data_created or 0.0).health
    if with_data:
        return with_data[0].health
    return views[0].health if views else SourceHealth(stale=True, reason="no monitoring source configured")


def merge(views: Sequence[SourceView]) -> Merged:
    """Merge sources in priority order; a single source with data is passed through untouched (cache-friendly)."""
    with_data = [v for v in views if v.data is not None]
    health = combined_health(views)
    if not with_data:
        return Merged(None, health, frozenset())
    if len(with_data) == 1:
        only = with_data[0]
        stale = _all_keys(only.data) if only.health.stale else only.stale_keys
        return Merged(only.data, health, stale)
    # The biggest source (a 100k status.dat beside a few pushed checks) is copied at C speed and the
    # others laid over it; only their keys are looked at in Python (0.2 s -> ms at 100k per publish).
    rank = {id(v): i for i, v in enumerate(with_data)}
    base = max(with_data, key=lambda v: _size(v.data))
    assert base.data is not None
    hosts, services = dict(base.data.hosts), dict(base.data.services)
    origin: dict[CheckKey, SourceView] = {}  # keys some other source won; the rest are base's
    for v in with_data:
        if v is base:
            continue
        assert v.data is not None
        mine = rank[id(v)]
        for name, st in v.data.hosts.items():
            old = hosts.get(name)
            if old is None or _wins(st, mine, old, rank[id(origin.get((name, None), base))]):
                hosts[name] = st
                origin[(name, None)] = v
        for key, st in v.data.services.items():
            old = services.get(key)
            if old is None or _wins(st, mine, old, rank[id(origin.get(key, base))]):
                services[key] = st
                origin[key] = v
    _annotate(hosts, services, origin, base, with_data)
    stale = {k for k, v in origin.items() if v.is_stale(k)}
    if base.health.stale:
        stale.update(k for k in _keys_of(hosts, services) if k not in origin)
    else:
        stale.update(k for k in base.stale_keys if k not in origin and _has(base.data, k))
    created = max((v.data.created for v in with_data if v.data is not None), default=0.0)
    return Merged(StatusData(created=created, version=None, hosts=hosts, services=services), health, frozenset(stale))


def merge_one(key: CheckKey, views: Sequence[SourceView], name: str, state: Callable[[CheckKey], CheckState | None],
              stale: Callable[[CheckKey], bool]) -> tuple[CheckState | None, bool]:
    """merge(views) for one check: (its merged state or None, whether it is stale), as merge() decides them.

    Source `name` is asked through state() and stale() (its view's data may lag its changes); the others
    are read from their views. Costs O(sources), whatever the size of the data.
    """
    best: CheckState | None = None
    best_stale = best_annotated = False
    annotated: list[CheckState] = []
    host, service = key
    for v in views:
        if v.data is None:
            continue
        if v.name == name:
            st, is_stale = state(key), v.health.stale or stale(key)
        else:
            st = v.data.hosts.get(host) if service is None else v.data.services.get((host, service))
            is_stale = st is not None and v.is_stale(key)
        if st is None:
            continue
        if v.annotated:
            annotated.append(st)
        if best is None or st.last_check > best.last_check:  # a tie keeps the source earlier in priority order
            best, best_stale, best_annotated = st, is_stale, v.annotated
    if best is not None and not best_annotated and any(a.downtime_depth or a.acknowledged for a in annotated):
        core = max(annotated, key=lambda a: a.last_check)
        best = best._replace(downtime_depth=core.downtime_depth, acknowledged=core.acknowledged)
    return best, best_stale


def _has(data: StatusData, key: CheckKey) -> bool:
    """True when data holds the check key."""
    return key[0] in data.hosts if key[1] is None else key in data.services


def _size(data: StatusData | None) -> int:
    """Checks in data."""
    return 0 if data is None else len(data.hosts) + len(data.services)


def _wins(new: CheckState, new_rank: int, old: CheckState, old_rank: int) -> bool:
    """True when new replaces old: a newer result, or as new from a source earlier in priority order."""
    return new.last_check > old.last_check or (new.last_check == old.last_check and new_rank < old_rank)


def _annotate(
    hosts: dict[str, CheckState],
    services: dict[tuple[str, str], CheckState],
    origin: dict[CheckKey, SourceView],
    base: SourceView,
    views: Sequence[SourceView],
) -> None:
    """Give winners from unannotated sources the downtime/acknowledgement of the newest annotated state."""
    annotated = [v.data for v in views if v.annotated and v.data is not None]
    if not annotated or len(annotated) == len(views):
        return
    # Only checks some core has in downtime or acknowledged can need it: usually a handful of 100k.
    marked: set[CheckKey] = set()
    for d in annotated:
        marked.update(_marked(d))
    for key in marked:
        if origin.get(key, base).annotated:
            continue
        host, service = key
        found = [d.hosts.get(host) if service is None else d.services.get((host, service)) for d in annotated]
        best = max((f for f in found if f is not None), key=lambda f: f.last_check)
        # A pushed OK must not end a maintenance window the core still has scheduled.
        if service is None:
            hosts[host] = hosts[host]._replace(downtime_depth=best.downtime_depth, acknowledged=best.acknowledged)
        else:
            services[(host, service)] = services[(host, service)]._replace(
                downtime_depth=best.downtime_depth, acknowledged=best.acknowledged
            )


# Checks in downtime or acknowledged, per annotated StatusData: a core's data changes with its file,
# pushed results far more often, and each merge would otherwise scan all 100k states again (~10 ms).
_marks: dict[int, tuple[weakref.ref[StatusData], frozenset[CheckKey]]] = {}


def _marked(data: StatusData) -> frozenset[CheckKey]:
    """The keys of data's checks in downtime or acknowledged, remembered while data lives."""
    hit = _marks.get(id(data))
    if hit is not None and hit[0]() is data:
        return hit[1]
    keys = frozenset([(h, None) for h, st in data.hosts.items() if st.downtime_depth or st.acknowledged]
                     + [k for k, st in data.services.items() if st.downtime_depth or st.acknowledged])
    for ident in [i for i, (ref, _) in _marks.items() if ref() is None]:
        del _marks[ident]  # dead entries go whenever a new one comes: the table stays as small as the live data
    _marks[id(data)] = (weakref.ref(data), keys)
    return keys


# The last StatusData whose keys were all marked stale, and that set: while a sole source stays stale,
# every rebuild (ticks, notices) would otherwise rebuild a 100k-key set on the event loop.
_all_stale: tuple[weakref.ref[StatusData], frozenset[CheckKey]] | None = None


def _all_keys(data: StatusData | None) -> frozenset[CheckKey]:
    """frozenset(_keys(data)), remembered for the last data object."""
    global _all_stale
    last = _all_stale
    if data is not None and last is not None and last[0]() is data:
        return last[1]
    keys = frozenset(_keys(data))
    if data is not None:
        _all_stale = (weakref.ref(data), keys)
    return keys


def _keys(data: StatusData | None) -> list[CheckKey]:
    """Every check key in data."""
    return [] if data is None else _keys_of(data.hosts, data.services)


def _keys_of(hosts: dict[str, CheckState], services: dict[tuple[str, str], CheckState]) -> list[CheckKey]:
    """Every check key of a hosts and a services table."""
    return [(h, None) for h in hosts] + list(services)
