"""Merge check states from several sources: per check the newest result wins; staleness stays per source."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
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


def _newer(a: CheckState, b: CheckState) -> bool:
    """True when a is a strictly newer result than b (ties keep the earlier source)."""
    return a.last_check > b.last_check


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
    hosts: dict[str, CheckState] = {}
    services: dict[tuple[str, str], CheckState] = {}
    origin: dict[CheckKey, SourceView] = {}
    for v in with_data:
        assert v.data is not None
        for name, st in v.data.hosts.items():
            old = hosts.get(name)
            if old is None or _newer(st, old):
                hosts[name] = st
                origin[(name, None)] = v
        for key, st in v.data.services.items():
            old = services.get(key)
            if old is None or _newer(st, old):
                services[key] = st
                origin[key] = v
    _annotate(hosts, services, origin, with_data)
    stale = frozenset(k for k, v in origin.items() if v.is_stale(k))
    created = max((v.data.created for v in with_data if v.data is not None), default=0.0)
    return Merged(StatusData(created=created, version=None, hosts=hosts, services=services), health, stale)


def _annotate(
    hosts: dict[str, CheckState],
    services: dict[tuple[str, str], CheckState],
    origin: dict[CheckKey, SourceView],
    views: Sequence[SourceView],
) -> None:
    """Give winners from unannotated sources the downtime/acknowledgement of the newest annotated state."""
    annotated = [v.data for v in views if v.annotated and v.data is not None]
    if not annotated or len(annotated) == len(views):
        return
    # Only checks some core has in downtime or acknowledged can need it: usually a handful of 100k.
    marked: set[CheckKey] = set()
    for d in annotated:
        marked.update((h, None) for h, st in d.hosts.items() if st.downtime_depth or st.acknowledged)
        marked.update(k for k, st in d.services.items() if st.downtime_depth or st.acknowledged)
    for key in marked:
        if origin[key].annotated:
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
    if data is None:
        return []
    return [(h, None) for h in data.hosts] + list(data.services)
