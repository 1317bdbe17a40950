"""Resolve a component's host/service glob patterns to concrete checks, with a per-name-set cache."""

from __future__ import annotations

import fnmatch
import re
import weakref
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from bridge.config import CheckPattern, Component
from bridge.model import StatusData

CheckKey = tuple[str, str | None]  # (host, service) ; service None = the host check itself

_GLOB_CHARS = frozenset("*?[")


class Plan(NamedTuple):
    """A resolution arranged for aggregation: host checks, then services grouped by host."""

    keys: list[CheckKey]  # everything matched, as match_patterns returns it
    hosts: list[str]  # host checks matched
    # (host, positions of its matched services in data.services' iteration order)
    services_by_host: list[tuple[str, list[int]]]


def _compile(pattern: str) -> re.Pattern[str]:
    """Compile one shell-style glob, case-sensitively as Nagios names are."""
    return re.compile(fnmatch.translate(pattern))


def _names(pattern: str, names: Mapping[str, object]) -> list[str]:
    """Names matching one glob, in data order."""
    if _GLOB_CHARS.isdisjoint(pattern):
        # No glob syntax: a lookup instead of a scan over every name.
        return [pattern] if pattern in names else []
    match = _compile(pattern).match
    return [n for n in names if match(n)]


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

    def resolve(self, patterns: Iterable[CheckPattern]) -> list[CheckKey]:
        """Keys matched by any pattern, deduplicated, in pattern then data order."""
        found: dict[CheckKey, None] = {}
        for pat in patterns:
            if pat.service is None:
                for h in _names(pat.host, self.hosts):
                    found[(h, None)] = None
                continue
            # Services are found under their own host names: a passive-only host may lack a host block.
            for h in _names(pat.host, self.services):
                for s in _names(pat.service, self.services[h]):
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
        return Plan(keys, hosts, list(by_host.items()))


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


class Matcher:
    """Caches pattern resolution per pattern set while the hosts/services (and their order) stay the same."""

    def __init__(self) -> None:
        self._data_ref: weakref.ref[StatusData] | None = None
        self._host_list: list[str] = []
        self._service_list: list[tuple[str, str]] = []
        self._index: _Index | None = None
        self._cache: dict[tuple[CheckPattern, ...], Plan] = {}

    def _same_names(self, data: StatusData) -> bool:
        """Whether data lists exactly the objects, in the order, the cached index was built from."""
        if len(data.hosts) != len(self._host_list) or len(data.services) != len(self._service_list):
            return False
        # Sources hand over a new StatusData rather than mutating one: the same object has the same names.
        if self._data_ref is not None and self._data_ref() is data:
            return True
        # Nagios writes objects in config order, so a fresh parse nearly always compares equal here;
        # list equality needs no tuple hashing and also pins the positions Plan relies on.
        return list(data.hosts) == self._host_list and list(data.services) == self._service_list

    def plan(self, component: Component, data: StatusData) -> Plan:
        """component's matches in data, re-resolved only when the object names or their order changed."""
        if self._index is None or not self._same_names(data):
            self._index = _Index(data)
            self._cache = {}
            self._host_list = list(data.hosts)
            self._service_list = list(data.services)
        # Later calls for the same data object (one per component) skip the name comparison.
        self._data_ref = weakref.ref(data)
        # Keyed by the patterns, not the component id, so a config reload cannot serve stale matches.
        hit = self._cache.get(component.checks)
        if hit is None:
            hit = self._cache[component.checks] = self._index.plan(component.checks)
        return hit

    def resolve(self, component: Component, data: StatusData) -> list[CheckKey]:
        """Checks of data matched by component, recomputed only when the object names changed."""
        return self.plan(component, data).keys
