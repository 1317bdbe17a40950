"""Resolve a component's host/service glob patterns to concrete checks, with a per-name-set cache."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

from bridge.config import CheckPattern, Component
from bridge.model import StatusData

CheckKey = tuple[str, str | None]  # (host, service) ; service None = the host check itself


def _compile(pattern: str) -> re.Pattern[str]:
    """Compile one shell-style glob, case-sensitively as Nagios names are."""
    return re.compile(fnmatch.translate(pattern))


def match_patterns(patterns: Iterable[CheckPattern], data: StatusData) -> list[CheckKey]:
    """Return the keys of every check in data matched by any pattern, in a stable order."""
    found: dict[CheckKey, None] = {}
    for pat in patterns:
        host_re = _compile(pat.host)
        hosts = [h for h in data.hosts if host_re.match(h)]
        if pat.service is None:
            for h in hosts:
                found[(h, None)] = None
            continue
        svc_re = _compile(pat.service)
        host_set = set(hosts)
        for h, s in data.services:
            if h in host_set and svc_re.match(s):
                found[(h, s)] = None
    return list(found)


class Matcher:
    """Caches pattern resolution per component until the set of known hosts/services changes."""

    def __init__(self) -> None:
        self._hosts: frozenset[str] = frozenset()
        self._services: frozenset[tuple[str, str]] = frozenset()
        self._cache: dict[str, list[CheckKey]] = {}

    def resolve(self, component: Component, data: StatusData) -> list[CheckKey]:
        """Checks of data matched by component, recomputed only when the object names changed."""
        # Nagios rewrites status.dat with the same objects nearly always; set equality is C-speed.
        if data.hosts.keys() != self._hosts or data.services.keys() != self._services:
            self._hosts = frozenset(data.hosts)
            self._services = frozenset(data.services)
            self._cache = {}
        hit = self._cache.get(component.id)
        if hit is None:
            hit = self._cache[component.id] = match_patterns(component.checks, data)
        return hit
