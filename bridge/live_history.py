"""Live's status history: each change of a component's shown or monitored status, dated by the monitoring data."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from bridge.aggregate import explaining_times
from bridge.config import Component, Config
from bridge.history import EFFECTIVE, MONITORED, UNKNOWN, HistoryRecorder, Key, Record, override_times, place
from bridge.matching import Matcher
from bridge.model import ComponentView, Snapshot, SourceHealth, Status, StatusData
from bridge.notices import Notice, Override

log = logging.getLogger("bridge.live")


class RecordsHistory:
    """The part of bridge.live.Live that appends status changes to the history (Live sets these attributes)."""

    recorder: HistoryRecorder | None
    data: StatusData | None
    health: SourceHealth
    config: Config
    matcher: Matcher
    notices: tuple[Notice, ...]
    overrides: tuple[Override, ...]
    _components: dict[str, Component]

    def _record(self, snap: Snapshot, shown: Mapping[str, Status], now: float) -> None:
        """Append each change of a component's monitored or shown status to the history, dated by the data."""
        # Until monitoring data first arrives every status is provisional ("no data", or stale because a
        # source reported nothing yet): never history. Sources keep their last data, so this is start-up only.
        if self.recorder is None or self.data is None:
            return
        try:
            views = {c.id: c for g in snap.groups for c in g.components}
            current: dict[Key, str] = {}
            for c in views.values():
                monitored = UNKNOWN if c.stale else c.monitored_status.value
                current[(c.id, MONITORED)] = monitored
                current[(c.id, EFFECTIVE)] = shown[c.id].value if c.id in shown else monitored
            explained: dict[str, list[float]] = {}  # both kinds of one component need the same check times
            records = [
                Record(cid, kind, current[(cid, kind)], self._when(views[cid], kind, shown, now, explained))
                for cid, kind in self.recorder.changed(current)
            ]
            self.recorder.commit(records)  # one transaction per snapshot, written off the loop
        except Exception:
            # History is a record of the page, never a reason to stop publishing it.
            log.exception("recording status history failed")

    def _when(
        self, c: ComponentView, kind: str, shown: Mapping[str, Status], now: float, explained: dict[str, list[float]]
    ) -> float:
        """When c's `kind` status changed: from the monitoring data or override times; our clock is the last resort."""
        assert self.recorder is not None
        prev = self.recorder.last.get((c.id, kind))
        if c.stale and (kind == MONITORED or c.id not in shown):
            return place(prev, (), self._stale_since(now), now)
        starts, ends = override_times(c.id, self.overrides, self.notices, now)
        if kind == EFFECTIVE and c.id in shown:
            return place(prev, starts, max(starts, default=now), now)
        comp, data = self._components.get(c.id), self.data
        if comp is None or data is None:  # not reached: _record needs data, views come from the config
            return place(prev, ends, now, now)
        # The newest state change among the checks that now explain the status; an ended override may too.
        times = explained.get(c.id)
        if times is None:
            times = explained[c.id] = explaining_times(comp, data, c.monitored_status, self.matcher)
        return place(prev, times + ends if kind == EFFECTIVE else times, data.created, now)

    def _stale_since(self, now: float) -> float:
        """When the data went stale: created + stale_after for aged data, else now (a vanished file, one stale check)."""
        created = self.health.data_created
        return created + self.config.stale_after if self.health.stale and created is not None else now
