"""Resolve a component's host/service glob patterns to concrete checks, with a per-name-set cache.

A Matcher is shared by the event loop and worker threads (a source preparing its new StatusData,
Live merging sources and preparing the result before it is published): its caches are immutable
once built or only ever gain entries, and every swap is a single attribute assignment, so a race
costs at most some work done twice, never a wrong answer.
"""

from __future__ import annotations

import fnmatch
import re
import weakref
from collections.abc import Iterable, Mapping
from functools import lru_cache
from operator import itemgetter
from typing import Any, NamedTuple

from bridge.config import CheckPattern, Component
from bridge.model import StatusData

CheckKey = tuple[str, str | None]  # (host, service) ; service None = the host check itself

_GLOB_CHARS = frozenset("*?[")
_SERVICE_NAME = itemgetter(1)


class Plan(NamedTuple):
    """A resolution arranged for aggregation: host checks, then services grouped by host."""

    keys: list[CheckKey]  # everything matched, as match_patterns returns it
    hosts: list[str]  # host checks matched
    # (host, positions of its matched services in data.services' iteration order)
    services_by_host: list[tuple[str, tuple[int, ...]]]
    positions: tuple[int, ...] = ()  # every position of services_by_host, host after host
    by_host: dict[str, tuple[int, ...]] = {}  # services_by_host as a dict


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> Any:
    """Compile one shell-style glob, case-sensitively as Nagios names are; return its match."""
    return re.compile(fnmatch.translate(pattern)).match


def _names(pattern: str, names: Mapping[str, object]) -> list[str]:
    """Names matching one glob, in data order."""
    if _GLOB_CHARS.isdisjoint(pattern):
        # No glob syntax: a lookup instead of a scan over every name.
        return [pattern] if pattern in names else []
    return list(filter(_compile(pattern), names))


class _Index:
    """Host names and per-host service names (with their positions) of one StatusData."""

    def __init__(self, data: StatusData) -> None:
        self.hosts: dict[str, None] = dict.fromkeys(data.hosts)
        self.services: dict[str, dict[str, int]] = {}
        for i, (h, s) in enumerate(data.services):
            per_host = self.services.get(h)
            if per_host is None:
                per_host = self.services[h] = {}
            per_host[s] = i
        self._service_names = dict.fromkeys(map(_SERVICE_NAME, data.services))
        self._service_globs: dict[str, frozenset[str]] = {}

    def _matching_services(self, pattern: str) -> frozenset[str]:
        """Distinct service names matching a glob: each name is matched once, not once per host."""
        found = self._service_globs.get(pattern)
        if found is None:
            found = self._service_globs[pattern] = frozenset(filter(_compile(pattern), self._service_names))
        return found

    def resolve(self, patterns: Iterable[CheckPattern]) -> list[CheckKey]:
        """Keys matched by any pattern, deduplicated, in pattern then data order."""
        found: dict[CheckKey, None] = {}
        for pat in patterns:
            if pat.service is None:
                for h in _names(pat.host, self.hosts):
                    found[(h, None)] = None
                continue
            # Services are found under their own host names: a passive-only host may lack a host block.
            hosts = _names(pat.host, self.services)
            if _GLOB_CHARS.isdisjoint(pat.service):
                for h in hosts:
                    if pat.service in self.services[h]:
                        found[(h, pat.service)] = None
                continue
            wanted = self._matching_services(pat.service).__contains__
            for h in hosts:
                for s in filter(wanted, self.services[h]):
                    found[(h, s)] = None
        return list(found)

    def plan(self, patterns: Iterable[CheckPattern]) -> Plan:
        """Resolve patterns and group the services by host, as positions."""
        keys = self.resolve(patterns)
        hosts: list[str] = []
        by_host: dict[str, list[int]] = {}
        for h, s in keys:
            if s is None:
                hosts.append(h)
            else:
                by_host.setdefault(h, []).append(self.services[h][s])
        # Tuples, not lists: tuples of ints are untracked by the GC after one collection, while
        # 100 components x 500 hosts of lists would be walked by every full collection.
        frozen = {h: tuple(positions) for h, positions in by_host.items()}
        grouped = list(frozen.items())
        return Plan(keys, hosts, grouped, tuple(p for _, positions in grouped for p in positions), frozen)


# The index of the last data given to match_patterns: config checks call it once per pattern.
_last: tuple[weakref.ref[StatusData], int, int, _Index] | None = None


def match_patterns(patterns: Iterable[CheckPattern], data: StatusData) -> list[CheckKey]:
    """Return the keys of every check in data matched by any pattern, in a stable order."""
    global _last
    last = _last
    if last is not None and last[0]() is data and last[1:3] == (len(data.hosts), len(data.services)):
        return last[3].resolve(patterns)
    index = _Index(data)
    _last = (weakref.ref(data), len(data.hosts), len(data.services), index)
    return index.resolve(patterns)


class Names:
    """The object names of a StatusData, in order, and the plans resolved against them."""

    __slots__ = ("host_list", "service_list", "_index", "_plans", "_sets")

    def __init__(self, data: StatusData) -> None:
        self.host_list = list(data.hosts)
        self.service_list = list(data.services)
        self._index: _Index | None = None
        self._plans: dict[tuple[CheckPattern, ...], Plan] = {}
        # Per pattern set: (its host checks, its service positions) as sets, for bridge.aggregate_delta.
        self._sets: dict[tuple[CheckPattern, ...], tuple[frozenset[str], frozenset[int]]] = {}

    def same(self, data: StatusData) -> bool:
        """Whether data lists exactly these objects in this order (Plan positions rely on it)."""
        if len(data.hosts) != len(self.host_list) or len(data.services) != len(self.service_list):
            return False
        # Nagios writes objects in config order, so a fresh parse nearly always compares equal here;
        # list equality needs no tuple hashing and also pins the positions Plan relies on.
        return list(data.hosts) == self.host_list and list(data.services) == self.service_list

    def plan(self, patterns: tuple[CheckPattern, ...], data: StatusData) -> Plan:
        """The plan for patterns; data must have these names (it is read only to build the index)."""
        hit = self._plans.get(patterns)
        if hit is None:
            index = self._index
            if index is None:
                index = self._index = _Index(data)
            hit = self._plans[patterns] = index.plan(patterns)
        return hit

    def index_plan(self, patterns: tuple[CheckPattern, ...], data: StatusData) -> tuple[frozenset[str], frozenset[int]]:
        """The plan for patterns as sets (host checks, service positions), built once per name set."""
        sets = self._sets.get(patterns)
        if sets is None:
            plan = self.plan(patterns, data)
            sets = self._sets[patterns] = (frozenset(plan.hosts), frozenset(plan.positions))
        return sets

    def position(self, key: CheckKey, data: StatusData) -> int | None:
        """Where a service check sits in data.services' order (None for a host check or an unknown one)."""
        index = self._index
        if index is None:
            index = self._index = _Index(data)
        per_host = index.services.get(key[0])
        return None if per_host is None or key[1] is None else per_host.get(key[1])


class Memo:
    """What is cached for one StatusData object: its Names and whatever aggregation derives from it."""

    __slots__ = ("ref", "names", "values")

    def __init__(self, data: StatusData, names: Names) -> None:
        self.ref = weakref.ref(data)
        self.names = names
        # Owned by the callers (aggregate): per-data derived values. Never the data's states themselves:
        # a memo outlives its data by one generation, and would keep 100k states alive meanwhile.
        self.values: dict[Any, Any] = {}


class Matcher:
    """Caches pattern resolution per pattern set while the hosts/services (and their order) stay the same."""

    # Recent StatusData objects (and name sets) remembered: the published one, the merge being prepared
    # for publishing and, while a second source comes up, that source's own object prepared meanwhile
    # (with 2 the published one's counts were evicted then, and a rebuild recounted it on the loop).
    KEEP = 3

    def __init__(self) -> None:
        self._names: tuple[Names, ...] = ()
        self._memos: tuple[Memo, ...] = ()

    def memo(self, data: StatusData) -> Memo:
        """The cache entry of this data object, created (and its names compared or indexed) on first use."""
        for m in self._memos:
            if m.ref() is data:
                return m
        names = next((n for n in self._names if n.same(data)), None)
        if names is None:
            names = Names(data)
            self._names = (names, *self._names[: self.KEEP - 1])
        m = Memo(data, names)
        self._memos = (m, *(old for old in self._memos[: self.KEEP - 1] if old.ref() is not None))
        return m

    def peek(self, data: StatusData) -> Memo | None:
        """The cache entry of this data object, or None when it has none (never creates one)."""
        return next((m for m in self._memos if m.ref() is data), None)

    def forget(self, data: StatusData) -> None:
        """Drop data's entry (a merge that was never published), so it holds no slot a newer object needs."""
        self._memos = tuple(m for m in self._memos if m.ref() is not data)

    def plan(self, component: Component, data: StatusData) -> Plan:
        """component's matches in data, re-resolved only when the object names or their order changed."""
        # Keyed by the patterns, not the component id, so a config reload cannot serve stale matches.
        return self.memo(data).names.plan(component.checks, data)

    def resolve(self, component: Component, data: StatusData) -> list[CheckKey]:
        """Checks of data matched by component, recomputed only when the object names changed."""
        return self.plan(component, data).keys
