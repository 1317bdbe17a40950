"""The newest pushed result per check, bounded: at most max_checks held, outputs capped, old checks forgotten."""

from __future__ import annotations

import fnmatch
import re
import sys
from collections.abc import Iterable
from typing import NamedTuple

from bridge.config import Config
from bridge.merge import CheckKey, SourceView
from bridge.model import CheckState, SourceHealth, StatusData
from bridge.passive import Result, cap_output, split_output
from bridge.passive_ages import Ages

SOURCE = "passive"
# Pattern decisions kept, counted in bytes of their keys: a flood of unique names costs pattern matches, never memory.
# About 250k decisions of ordinary names: the default max_checks (200k) fit, so a big passive site never re-matches.
FILTER_CACHE_BYTES = 64 << 20
ENTRY_BYTES = 150  # one decision besides its name strings: the key tuple and its dict slot (CPython, 64-bit)


def _glob(pattern: str) -> str:
    """A shell glob as regex source without the end anchor, so globs can be joined (case-sensitive)."""
    return fnmatch.translate(pattern).removesuffix(r"\Z")


def _union(sources: list[str]) -> re.Pattern[str]:
    """One regex matching any of sources in full (never matching when there are none)."""
    return re.compile("|".join(f"(?:{s})" for s in sources) if sources else r"(?!)")


def _size(text: str) -> int:
    """Bytes of memory a held output string takes ("" is shared, so it costs nothing)."""
    return sys.getsizeof(text) if text else 0


class CheckFilter:
    """Decides whether any component pattern of a config can use a result; decisions cached within a byte budget."""

    def __init__(self, config: Config, budget: int | None = None) -> None:
        self.config = config
        patterns = [p for c in config.components() for p in c.checks]
        # A host result matters to every pattern naming the host: host DOWN marks its services down.
        self._host = _union([_glob(p.host) for p in patterns])
        # Names never contain NUL (validated), so "host\0service" pairs up the two globs unambiguously.
        self._service = _union([_glob(p.host) + "\x00" + _glob(p.service) for p in patterns if p.service is not None])
        self._cache: dict[CheckKey, bool] = {}
        self.budget = FILTER_CACHE_BYTES if budget is None else budget
        self.cache_bytes = 0  # the strings and entries of _cache, as counted when they were added

    def wants(self, host: str, service: str | None) -> bool:
        """True when some component pattern matches this host or service check."""
        key = (host, service)
        hit = self._cache.get(key)
        if hit is None:
            if service is None:
                hit = self._host.fullmatch(host) is not None
            else:
                hit = self._service.fullmatch(f"{host}\x00{service}") is not None
            cost = ENTRY_BYTES + sys.getsizeof(host) + (0 if service is None else sys.getsizeof(service))
            if self.cache_bytes + cost > self.budget:
                self._cache.clear()  # cleared rather than trimmed: cheap, and a flood cannot make it grow
                self.cache_bytes = 0
            self._cache[key] = hit
            self.cache_bytes += cost
        return hit

    def __len__(self) -> int:
        """Decisions cached."""
        return len(self._cache)


class Outcome(NamedTuple):
    """What became of a batch: stored, ignored (unmapped, older than held, or past forget_after), refused (store full)."""

    accepted: int
    ignored: int
    refused: int


class PassiveStore:
    """The newest pushed result per check, as CheckStates, within the [passive] limits; counts what it did with each."""

    name = SOURCE

    def __init__(self, config: Config) -> None:
        self._filter = CheckFilter(config)
        self.config = config
        self.hosts: dict[str, CheckState] = {}
        self.services: dict[tuple[str, str], CheckState] = {}
        self._times: dict[CheckKey, float] = {}  # exact result time per check (last_check is whole seconds)
        self._ages = Ages()
        self._stale: set[CheckKey] = set()
        self._changed: set[CheckKey] = set()  # state, presence or staleness changed since the last take()
        self._rebuild = True  # the next take() asks for a complete publish (the first one, a new config)
        self._restale = False  # stale_after may have changed: recount every check at the next _age()
        self.newest = 0.0
        self.output_bytes = 0  # memory held by outputs, at most config.passive_max_output_total
        self.accepted = self.ignored = self.invalid = self.refused = self.truncated = self.forgotten = 0
        self.version = 0  # bumped whenever a held result changes
        self._data: tuple[int, StatusData] | None = None

    @property
    def filter_cache_bytes(self) -> int:
        """Bytes the pattern decision cache holds (for /metrics)."""
        return self._filter.cache_bytes

    def set_config(self, config: Config) -> None:
        """Follow a config reload (patterns, staleness, limits); held results stay, staleness is recomputed."""
        if config is not self.config:
            self._filter = CheckFilter(config)
            self.config = config
            self._rebuild = self._restale = True
            self.version += 1

    def reject(self, count: int) -> None:
        """Count invalid items (they never reach the store)."""
        self.invalid += count

    def submit(self, results: Iterable[Result], now: float) -> Outcome:
        """Store each result unless no component uses it, a newer one is held, or it is a new check and the store is full."""
        accepted = ignored = refused = 0
        wants, times = self._filter.wants, self._times
        too_old = now - self.config.passive_forget_after
        room = self.config.passive_max_checks - len(times)
        for r in results:
            key = (r.host, r.service)
            held = times.get(key)
            # Equal times: the later arrival wins (two pushes in the same second, in order).
            if (held is not None and r.timestamp < held) or r.timestamp < too_old or not wants(r.host, r.service):
                ignored += 1
                continue
            if held is None:
                if room <= 0:
                    refused += 1
                    continue
                room -= 1
            times[key] = r.timestamp
            self._ages.add(r.timestamp, key)
            self._store(r)
            self._changed.add(key)
            accepted += 1
        if accepted:
            self.version += 1
            self._ages.compact(times, self._stale)
        self.accepted += accepted
        self.ignored += ignored
        self.refused += refused
        return Outcome(accepted, ignored, refused)

    def _store(self, r: Result) -> None:
        """Build and keep the CheckState for one accepted result, its output within both output limits."""
        old = self.hosts.get(r.host) if r.service is None else self.services.get((r.host, r.service))
        text = cap_output(r.output, self.config.passive_max_output)
        short, long = split_output(text)
        held = _size(old.plugin_output) + _size(old.long_plugin_output) if old is not None else 0
        room = self.config.passive_max_output_total - (self.output_bytes - held)
        size, cut = _size(short) + _size(long), text is not r.output
        if size > room:  # the store-wide budget is spent: the state still counts, its output is cut
            long, short = "", short[: max(0, room - 80) // 4]  # 80: a str header at most; 4: bytes per character at most
            size, cut = _size(short), True
        self.truncated += cut
        self.output_bytes += size - held
        when = int(r.timestamp)
        changed = old is None or old.current_state != r.state
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

    def take(self, now: float) -> tuple[set[CheckKey], bool]:
        """(checks whose state, presence or staleness changed since the last take, whether to publish everything)."""
        self._age(now)
        changed, self._changed = self._changed, set()
        rebuild, self._rebuild = self._rebuild, False
        return changed, rebuild

    def stale_keys(self, now: float) -> frozenset[CheckKey]:
        """Checks whose newest result is older than stale_after (checks older than forget_after are dropped first)."""
        self._age(now)
        return frozenset(self._stale)

    def _age(self, now: float) -> None:
        """Turn checks stale and fresh, and forget the ones not refreshed for forget_after, as of now."""
        times, stale, changed = self._times, self._stale, self._changed
        cutoff = now - self.config.passive_stale_after
        if self._restale:  # a new stale_after: recount every check (a complete publish follows anyway)
            self._restale = False
            self._stale = stale = {k for k, t in times.items() if t < cutoff}
            self._ages.rebuild(times, stale)
        for key in [k for k in changed if k in stale and times.get(k, cutoff) >= cutoff]:
            stale.discard(key)  # a fresh result for a stale check
        for key, when in self._ages.aged(cutoff, times):
            if key not in stale:
                stale.add(key)
                changed.add(key)
            self._ages.went_stale(when, key)
        for key in self._ages.due(now - self.config.passive_forget_after, times, stale):
            self._forget(key)

    def _forget(self, key: CheckKey) -> None:
        """Drop one check: stale for forget_after, nobody refreshed it."""
        del self._times[key]
        self._stale.discard(key)
        old = self.hosts.pop(key[0]) if key[1] is None else self.services.pop(key)  # type: ignore[arg-type]
        self.output_bytes -= _size(old.plugin_output) + _size(old.long_plugin_output)
        self._changed.add(key)
        self.forgotten += 1
        self.version += 1
        if not self._times:
            self.newest = 0.0

    def state(self, key: CheckKey) -> CheckState | None:
        """The held state of one check."""
        return self.hosts.get(key[0]) if key[1] is None else self.services.get(key)  # type: ignore[arg-type]

    def is_stale(self, key: CheckKey) -> bool:
        """Whether one check was stale at the last take()."""
        return key in self._stale

    def health(self) -> SourceHealth:
        """Fresh while any held check is; no data while nothing is held."""
        if not self._times:
            return SourceHealth(stale=True, reason="no passive results held")
        fresh = len(self._stale) < len(self._times)
        reason = None if fresh else f"no passive result in the last {self.config.passive_stale_after:g} s"
        return SourceHealth(stale=not fresh, reason=reason, data_created=self.newest)

    def view(self) -> SourceView:
        """Every held check, as of the last take(), for a complete merge (data None while nothing is held)."""
        if not self._times:
            return SourceView(SOURCE, None, self.health(), annotated=False)
        if self._data is None or self._data[0] != self.version:
            # Copies, so later pushes never mutate a StatusData a published snapshot was built from.
            data = StatusData(created=self.newest, version=None, hosts=dict(self.hosts), services=dict(self.services))
            self._data = (self.version, data)
        # Pushed results know nothing of downtimes or acknowledgements: merge keeps those from the core.
        return SourceView(SOURCE, self._data[1], self.health(), frozenset(self._stale), annotated=False)

    def __len__(self) -> int:
        """Number of checks held."""
        return len(self._times)
