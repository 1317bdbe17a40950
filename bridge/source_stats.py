"""Per-source counts and timings of the page's inputs (updates taken, time spent preparing them), for /metrics."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable

from bridge.merge import SourceView
from bridge.model import StatusData


class SourceStats:
    """What Live saw of each source: how often it took new data from it, and how long making that data ready took.

    Only weak references to data are kept: release() frees a replaced StatusData in steps only when
    nothing else holds it. prepared() runs in the sources' worker threads, the rest on the event loop.
    """

    def __init__(self) -> None:
        self.updates: dict[str, int] = {}  # source -> new data objects taken (a counter)
        self.prepare_seconds: dict[str, float] = {}  # source -> preparing its newest published data took
        self._lock = threading.Lock()  # guards _early, written from worker threads
        # Preparing a source's own object already in its thread (the tailer after a parse), per object.
        self._early: dict[int, tuple[weakref.ref[StatusData], float]] = {}
        self._timed: dict[str, weakref.ref[StatusData]] = {}  # source -> the object its time was taken for

    def taken(self, old: StatusData | None, view: SourceView) -> None:
        """Count view as an update of its source when it brings a data object the source did not have."""
        if view.data is not None and view.data is not old:
            self.updates[view.name] = self.updates.get(view.name, 0) + 1

    def changed(self, name: str, seconds: float) -> None:
        """A source's changes were applied in place (no new data object): an update that took seconds to prepare."""
        self.updates[name] = self.updates.get(name, 0) + 1
        self.prepare_seconds[name] = seconds

    def prepared(self, data: StatusData, seconds: float) -> None:
        """Remember that preparing data ahead (in a source's worker thread) took seconds."""
        with self._lock:
            # Objects overtaken before any merge took them never get popped: drop them once they are gone.
            for key in [k for k, (ref, _) in self._early.items() if ref() is None]:
                del self._early[key]
            self._early[id(data)] = (weakref.ref(data), seconds)

    def published(self, views: Iterable[SourceView], seconds: float) -> None:
        """A merge and prepare of views that took seconds is published: time each source's data new to the page."""
        for view in views:
            data = view.data
            last = self._timed.get(view.name)
            if data is None or (last is not None and last() is data):
                continue  # unchanged since its last publish: the time then is still the one that counts
            self._timed[view.name] = weakref.ref(data)
            with self._lock:
                early = self._early.pop(id(data), None)
            ahead = early[1] if early is not None and early[0]() is data else 0.0
            self.prepare_seconds[view.name] = ahead + seconds
