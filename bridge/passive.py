"""Passive check results: validation, output splitting and the newest-result-per-check store (pure, no I/O)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, TypeVar

from bridge.admin_input import InputError, parse_time
from bridge.config import Config
from bridge.merge import CheckKey, SourceView
from bridge.model import CheckState, SourceHealth, StatusData

SOURCE = "passive"
NAME_MAX = 1024
# Names reach the page, the feeds and log lines: no control characters at all (Nagios allows none), and,
# as in admin input, no lone surrogate (JSON allows "\ud800"; it cannot be written as UTF-8 anywhere).
CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
CACHE_MAX = 500_000  # pattern decisions kept; cleared when full so random names cannot grow memory
ERRORS_MAX = 100  # per-item errors listed in one answer (the count is always complete)
T = TypeVar("T")


class Result(NamedTuple):
    """One validated passive check result (service None = a host result)."""

    host: str
    service: str | None
    state: int
    output: str
    timestamp: float


class ItemError(NamedTuple):
    """Why one item of a batch was rejected."""

    index: int
    field: str
    message: str


def check_name(value: object, field: str) -> str:
    """A host or service name: a non-empty string without control characters."""
    if not isinstance(value, str) or not value:
        raise InputError(field, "must be a non-empty string")
    if len(value) > NAME_MAX:
        raise InputError(field, f"is longer than {NAME_MAX} characters")
    if CONTROL.search(value):
        raise InputError(field, "must not contain control characters or lone surrogates")
    return value


def check_state(value: object, is_host: bool, field: str) -> int:
    """A Nagios state number: 0-3 for services, 0-2 (UP, DOWN, UNREACHABLE) for hosts."""
    top = 2 if is_host else 3
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(field, f"must be an integer 0-{top}")
    if not 0 <= value <= top:
        kind = "host states are 0 UP, 1 DOWN, 2 UNREACHABLE" if is_host else "service states are 0-3"
        raise InputError(field, f"{value} is out of range ({kind})")
    return value


def check_time(value: object, field: str, now: float) -> float:
    """A result time (epoch or ISO-8601); None means now, and the future is clamped to now."""
    if value is None:
        return now
    # A clock running ahead must not pin a check: a "future" result could never be replaced.
    return min(parse_time(value, field), now)


def split_output(text: str) -> tuple[str, str]:
    """(plugin_output, long_plugin_output) as Nagios splits them, performance data after '|' dropped."""
    first, _, rest = text.partition("\n")
    short = first.partition("|")[0].rstrip()
    # Nagios: in the remaining lines everything up to the first '|' is long output, the rest perf data.
    long = rest.partition("|")[0].rstrip() if rest else ""
    return short, long


def parse_item(item: object, index: int, now: float) -> Result:
    """One native item {host, service?, state, output?, timestamp?}; InputError names results[index].FIELD."""
    at = f"results[{index}]"
    if not isinstance(item, Mapping):
        raise InputError(at, "must be an object")
    host = check_name(item.get("host"), f"{at}.host")
    service = item.get("service")
    if service is not None:
        service = check_name(service, f"{at}.service")
    if "state" not in item:
        raise InputError(f"{at}.state", "is required")
    state = check_state(item["state"], service is None, f"{at}.state")
    output = item.get("output", "")
    if output is None:
        output = ""
    if not isinstance(output, str):
        raise InputError(f"{at}.output", "must be a string")
    return Result(host, service, state, output, check_time(item.get("timestamp"), f"{at}.timestamp", now))


def parse_batch(body: Any, now: float) -> tuple[list[Result], list[ItemError]]:
    """A native body ({"results": [...]} or a bare list) -> valid results and per-item errors."""
    items = body.get("results") if isinstance(body, dict) else body
    if not isinstance(items, list):
        field = "results" if isinstance(body, dict) else "body"
        raise InputError(field, 'expected {"results": [...]} or a JSON list of results')
    return collect(items, parse_item, now)


def collect(
    items: Iterable[T], parse: Callable[[T, int, float], Result], now: float
) -> tuple[list[Result], list[ItemError]]:
    """parse(item, index, now) for each item (native or NRDP) -> valid results and per-item errors."""
    results: list[Result] = []
    errors: list[ItemError] = []
    add = results.append  # bound once: this loop runs for every pushed result
    for i, item in enumerate(items):
        try:
            add(parse(item, i, now))
        except InputError as e:
            errors.append(ItemError(i, e.field, e.message))
    return results, errors


def _glob(pattern: str) -> str:
    """A shell glob as regex source without the end anchor, so globs can be joined (case-sensitive)."""
    return fnmatch.translate(pattern).removesuffix(r"\Z")


def _union(sources: list[str]) -> re.Pattern[str]:
    """One regex matching any of sources in full (never matching when there are none)."""
    return re.compile("|".join(f"(?:{s})" for s in sources) if sources else r"(?!)")


class CheckFilter:
    """Decides whether any component pattern of a config can use a result; decisions cached per check."""

    def __init__(self, config: Config) -> None:
        self.config = config
        patterns = [p for c in config.components() for p in c.checks]
        # A host result matters to every pattern naming the host: host DOWN marks its services down.
        self._host = _union([_glob(p.host) for p in patterns])
        # Names never contain NUL (validated), so "host\0service" pairs up the two globs unambiguously.
        self._service = _union([_glob(p.host) + "\x00" + _glob(p.service) for p in patterns if p.service is not None])
        self._cache: dict[CheckKey, bool] = {}

    def wants(self, host: str, service: str | None) -> bool:
        """True when some component pattern matches this host or service check."""
        key = (host, service)
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            if service is None:
                hit = self._host.fullmatch(host) is not None
            else:
                hit = self._service.fullmatch(f"{host}\x00{service}") is not None
            self._cache[key] = hit
        return hit


class PassiveStore:
    """The newest pushed result per check, as CheckStates; counts what it accepted, ignored and rejected."""

    def __init__(self, config: Config) -> None:
        self._filter = CheckFilter(config)
        self.stale_after = config.passive_stale_after
        self.hosts: dict[str, CheckState] = {}
        self.services: dict[tuple[str, str], CheckState] = {}
        self._times: dict[CheckKey, float] = {}  # exact result time per check (last_check is whole seconds)
        self.newest = 0.0
        # A lower bound of every held result time: results only ever replace older ones, so while
        # now - stale_after is below it nothing can be stale and the scan is skipped.
        self._oldest_bound = float("inf")
        self.accepted = self.ignored = self.invalid = 0
        self.version = 0  # bumped whenever a stored result changes
        self._data: tuple[int, StatusData] | None = None

    def set_config(self, config: Config) -> None:
        """Follow a config reload (new patterns and staleness); stored results stay."""
        if config is not self._filter.config:
            self._filter = CheckFilter(config)
            self.stale_after = config.passive_stale_after
            self.version += 1

    def reject(self, count: int) -> None:
        """Count invalid items (they never reach the store)."""
        self.invalid += count

    def submit(self, results: Iterable[Result]) -> tuple[int, int]:
        """Store each result unless no component uses it or a newer one is held; (accepted, ignored)."""
        accepted = ignored = 0
        wants, times = self._filter.wants, self._times
        for r in results:
            key = (r.host, r.service)
            held = times.get(key)
            # Equal times: the later arrival wins (two pushes in the same second, in order).
            if not wants(r.host, r.service) or (held is not None and r.timestamp < held):
                ignored += 1
                continue
            times[key] = r.timestamp
            self._store(r)
            accepted += 1
        if accepted:
            self.version += 1
        self.accepted += accepted
        self.ignored += ignored
        return accepted, ignored

    def _store(self, r: Result) -> None:
        """Build and keep the CheckState for one accepted result."""
        old = self.hosts.get(r.host) if r.service is None else self.services.get((r.host, r.service))
        when = int(r.timestamp)
        changed = old is None or old.current_state != r.state
        short, long = split_output(r.output)
        # Passive results are HARD at once: the sender decided; there are no retries to wait for.
        # Positional: this runs once per accepted result, and keywords make construction 2x slower.
        since = old.last_state_change if old is not None and not changed else when
        state = CheckState(r.host, r.service, r.state, 1, r.state, True, False, 0, False, when, since, short, long)
        if r.service is None:
            self.hosts[r.host] = state
        else:
            self.services[(r.host, r.service)] = state
        if r.timestamp > self.newest:
            self.newest = r.timestamp
        if r.timestamp < self._oldest_bound:
            self._oldest_bound = r.timestamp

    def __len__(self) -> int:
        """Number of checks held."""
        return len(self._times)

    def stale_keys(self, now: float) -> frozenset[CheckKey]:
        """Checks whose newest result is older than stale_after."""
        cutoff = now - self.stale_after
        if cutoff <= self._oldest_bound:
            return frozenset()
        self._oldest_bound = min(self._times.values(), default=float("inf"))
        return frozenset(k for k, t in self._times.items() if t < cutoff)

    def view(self, now: float) -> SourceView | None:
        """This source for Live.update_source; None while nothing is held (so it claims nothing)."""
        if not self._times:
            return None
        if self._data is None or self._data[0] != self.version:
            # Copies, so later pushes never mutate a StatusData a published snapshot was built from.
            data = StatusData(created=self.newest, version=None, hosts=dict(self.hosts), services=dict(self.services))
            self._data = (self.version, data)
        stale = self.stale_keys(now)
        fresh = len(stale) < len(self._times)
        reason = None if fresh else f"no passive result in the last {self.stale_after:g} s"
        health = SourceHealth(stale=not fresh, reason=reason, data_created=self.newest)
        # Pushed results know nothing of downtimes or acknowledgements: merge keeps those from the core.
        return SourceView(SOURCE, self._data[1], health, stale, annotated=False)
