"""Held passive checks in result-time order, so the ones turning stale or due to be forgotten are found without a scan."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Mapping, Set

from bridge.merge import CheckKey

SLACK = 1024  # superseded entries a heap may hold beyond twice the checks before it is rebuilt

Entry = tuple[float, int, CheckKey]  # (result time, arrival number: equal times never compare keys, key)


class Ages:
    """Two lazy min-heaps of (time, key): fresh checks by result time, and stale ones by result time.

    A newer result for a check pushes a new entry and leaves the old one in place: an entry counts only
    while its time is still the check's time. Each heap is rebuilt once it holds more than twice the
    entries it needs, so a result costs O(log n) amortised and memory stays O(checks).
    """

    def __init__(self) -> None:
        self._fresh: list[Entry] = []
        self._stale: list[Entry] = []
        self._order = itertools.count()

    def add(self, when: float, key: CheckKey) -> None:
        """A check got a result at `when`."""
        heapq.heappush(self._fresh, (when, next(self._order), key))

    def went_stale(self, when: float, key: CheckKey) -> None:
        """A check whose result is from `when` is stale now: it is due to be forgotten in time order too."""
        heapq.heappush(self._stale, (when, next(self._order), key))

    def aged(self, cutoff: float, times: Mapping[CheckKey, float]) -> Iterator[tuple[CheckKey, float]]:
        """(key, time) of each check whose current result is older than cutoff and was not yet reported."""
        fresh = self._fresh
        while fresh and fresh[0][0] < cutoff:
            when, _, key = heapq.heappop(fresh)
            if times.get(key) == when:
                yield key, when

    def due(self, cutoff: float, times: Mapping[CheckKey, float], stale: Set[CheckKey]) -> Iterator[CheckKey]:
        """Stale checks whose current result is older than cutoff (to be forgotten: each is asked for once it is)."""
        heap = self._stale
        while heap and heap[0][0] < cutoff:
            when, _, key = heapq.heappop(heap)
            if times.get(key) == when and key in stale:
                yield key

    def compact(self, times: Mapping[CheckKey, float], stale: Set[CheckKey]) -> None:
        """Rebuild a heap holding more than twice the entries it needs (superseded results pile up)."""
        if len(self._fresh) > 2 * len(times) + SLACK or len(self._stale) > 2 * len(stale) + SLACK:
            self.rebuild(times, stale)

    def rebuild(self, times: Mapping[CheckKey, float], stale: Set[CheckKey]) -> None:
        """Both heaps from scratch: one entry per check, and one per stale check."""
        order = self._order
        # Stale checks too: one may have a fresh result not taken yet, and must be able to age again.
        self._fresh = [(t, next(order), k) for k, t in times.items()]
        self._stale = [(times[k], next(order), k) for k in stale]
        heapq.heapify(self._fresh)
        heapq.heapify(self._stale)

    def __len__(self) -> int:
        """Entries held in both heaps (superseded ones included)."""
        return len(self._fresh) + len(self._stale)
