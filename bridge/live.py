"""The current Snapshot and its pre-encoded feed bodies, swapped atomically on every rebuild."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from bridge.aggregate import aggregate, explaining_times, prepare
from bridge.config import Config
from bridge.encoded import Encoded, Published
from bridge.history import (
    EFFECTIVE,
    MONITORED,
    UNKNOWN,
    HistoryRecorder,
    Key,
    Record,
    override_times,
    place,
)
from bridge.matching import CheckKey, Matcher
from bridge.merge import Merged, SourceView, merge
from bridge.model import (
    ComponentView,
    GroupView,
    Snapshot,
    SourceHealth,
    Status,
    StatusData,
)
from bridge.notices import Notice, Override, shown_overrides, sorry_state
from bridge.release import release
from bridge.render import oxford
from bridge.source_stats import SourceStats

log = logging.getLogger("bridge.live")
NO_DATA_HEALTH = SourceHealth(stale=True, reason="no monitoring data yet")


class Live:
    """Holds the latest inputs and the published generation; rebuilt on input change or tick."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._components = {c.id: c for c in config.components()}
        self.clock = clock
        self.matcher = Matcher()
        self.sources: dict[str, SourceView] = {}
        self.data: StatusData | None = None  # merged over sources
        self.health: SourceHealth = NO_DATA_HEALTH  # combined over sources
        self.stale_keys: frozenset[CheckKey] = frozenset()
        self.notices: tuple[Notice, ...] = ()
        self.overrides: tuple[Override, ...] = ()
        self.started_at = self.clock()
        # component id -> (shown status, since): carried across rebuilds so "since" survives them.
        self._since: dict[str, tuple[Status, float]] = {}
        self._seeded = False  # becomes True at the first build with monitoring data
        self.recorder: HistoryRecorder | None = None  # set by the app: status changes go to the DB history
        # Generations of self.sources: bumped by every change of it; `shown` is the one data was merged from.
        self._inputs = self._shown = 0
        self._merging = asyncio.Lock()  # one merge in a worker thread at a time; later calls queue behind it
        self._replaced: list[StatusData] = []  # objects let go of since the last publish, released by the next
        self.stats = SourceStats()  # per source: updates taken, preparing time (for /metrics)
        self.published = self._build(self.started_at)

    @property
    def snapshot(self) -> Snapshot:
        """The snapshot handlers should read now."""
        return self.published.snapshot

    def prepare(self, data: StatusData) -> None:
        """Do the heavy, data-only part of publishing data ahead (thread-safe: call it from a worker thread).

        Resolving the globs (when the object names changed) and counting every component's checks
        is cached per StatusData object; update() with the same object then only assembles the
        snapshot and encodes the feeds, which keeps the event loop free at 100k services.
        """
        # With two sources holding data a merged object gets published, prepared by publish_source:
        # preparing a source's own object then is wasted work (and takes a Matcher slot).
        if sum(v.data is not None for v in tuple(self.sources.values())) < 2:
            started = time.perf_counter()
            prepare(data, self.config, self.matcher)
            self.stats.prepared(data, time.perf_counter() - started)

    def update(self, data: StatusData | None, health: SourceHealth, source: str = "statusdat") -> None:
        """Take new inputs from one source and publish a new generation."""
        self.update_source(SourceView(source, data, health))

    def update_source(self, view: SourceView) -> None:
        """Replace one source's view, re-merge (newest result per check wins) and publish, all on the loop."""
        self._take(view)
        self._publish(*self._merge_prepared(tuple(self.sources.values())), self._inputs)

    async def publish_source(self, view: SourceView) -> None:
        """Replace one source's view and publish: merged and prepared in a worker thread, assembled on the loop.

        Returns once a generation holding this view (or newer inputs) is published. Calls arriving
        while a merge runs queue behind it and are coalesced into one merge of the newest inputs.
        """
        self._take(view)
        await self._republish()

    async def drop_source(self, name: str, health_if_none: SourceHealth) -> None:
        """Forget a source (its section left the config) and publish the rest; with none left, health_if_none."""
        old = self.sources.pop(name, None)
        if old is None:
            return
        if old.data is not None:
            self._replaced.append(old.data)
        self._inputs += 1
        if not self.sources:  # the page says why there is no data rather than showing frozen data
            self._take(SourceView(name, None, health_if_none))
        await self._republish()

    def _take(self, view: SourceView) -> None:
        """Record one source's new view (published by the caller)."""
        old = self.sources.get(view.name)
        if old is not None and old.data is not None and old.data is not view.data:
            self._replaced.append(old.data)
        self.stats.taken(old.data if old is not None else None, view)
        self.sources[view.name] = view
        self._inputs += 1

    async def _republish(self) -> None:
        """Publish the current sources once a merge of inputs at least this new is done, never a stale one."""
        wanted = self._inputs
        async with self._merging:
            while self._shown < wanted:
                inputs = self._inputs
                merged, took = await asyncio.to_thread(self._merge_prepared, tuple(self.sources.values()))
                if inputs == self._inputs:
                    self._publish(merged, took, inputs)
                else:  # newer inputs came meanwhile: merge those (or a synchronous update published them)
                    self._discard(merged)

    def _merge_prepared(self, views: Sequence[SourceView]) -> tuple[Merged, float]:
        """merge(views), prepared for aggregation, and its duration (worker thread; one source: its own object)."""
        started = time.perf_counter()
        merged = merge(views)
        if merged.data is not None:
            prepare(merged.data, self.config, self.matcher)  # for a single source, usually all cache hits
        return merged, time.perf_counter() - started

    def _publish(self, merged: Merged, took: float, inputs: int) -> None:
        """Swap in merged (inputs generation `inputs`, made ready in `took` s), publish it, release what it replaced."""
        previous = self.data
        self.data, self.health, self.stale_keys = merged.data, merged.health, merged.stale_keys
        self._shown = inputs
        self.stats.published(self.sources.values(), took)
        self._swap(self.clock())
        if previous is not None:
            self._replaced.append(previous)
        kept = self._kept()
        gone, self._replaced = {id(d): d for d in self._replaced if id(d) not in kept}, []
        for data in gone.values():
            release(data)

    def _discard(self, merged: Merged) -> None:
        """Drop a merge that newer inputs overtook: its cache entry at once, its data with the next publish."""
        data = merged.data
        if data is not None and id(data) not in self._kept():
            self.matcher.forget(data)  # never published: its Matcher slot goes to the merge that will be
            self._replaced.append(data)

    def _kept(self) -> set[int]:
        """ids of the objects still in use: the published data and every source's."""
        return {id(self.data), *(id(v.data) for v in self.sources.values())}

    def set_notices(self, notices: Sequence[Notice], overrides: Sequence[Override], now: float | None = None) -> None:
        """Take the stored notices and overrides (after a write or a scheduled time) and republish as of now."""
        self.notices, self.overrides = tuple(notices), tuple(overrides)
        self._swap(self.clock() if now is None else now)

    def set_config(self, config: Config) -> None:
        """Swap the configuration (reload) and republish."""
        # The Matcher stays: its caches are keyed by the patterns and state maps, never by component
        # ids, so components a reload leaves alone are not re-resolved and re-counted on the loop.
        self.config = config
        self._components = {c.id: c for c in config.components()}
        self._swap(self.clock())

    def _swap(self, now: float) -> None:
        """Build and swap in a new generation (a plain attribute: every feed request reads it)."""
        old, self.published = self.published, self._build(now)
        self.on_published(old, self.published)

    def on_published(self, old: Published, new: Published) -> None:
        """Called after each swap; StateLoggingLive logs what changed."""

    def _build(self, now: float) -> Published:
        """Aggregate and encode every feed once."""
        shown = shown_overrides(self.overrides, self.notices, now)
        snap = aggregate(self.data, self.health, self.config, now, self.matcher, shown, self.stale_keys, self.notices)
        snap = dataclasses.replace(
            snap,
            groups=self._stamp(snap.groups, now),
            overrides=self.overrides,
            sorry_state=sorry_state(self.notices),
        )
        self._record(snap, shown, now)
        feeds = {
            "services": Encoded.of(oxford.services_feed(snap)),
            "announcements": Encoded.of(oxford.announcements_feed(snap)),
        }
        return Published(snap, feeds)

    def _stamp(self, groups: tuple[GroupView, ...], now: float) -> tuple[GroupView, ...]:
        """Set each component's `since` (when its shown status last changed) and remember it for the next build."""
        # Until monitoring data first arrives every status is provisional (nodata, then the first real
        # state): those changes are not news, so they keep the daemon's start time.
        when = now if self._seeded else self.started_at
        since: dict[str, tuple[Status, float]] = {}
        out: list[GroupView] = []
        for g in groups:
            views: list[ComponentView] = []
            for c in g.components:
                prev = self._since.get(c.id)
                entry = prev if prev is not None and prev[0] == c.status else (c.status, when)
                since[c.id] = entry
                views.append(dataclasses.replace(c, since=entry[1]))
            out.append(dataclasses.replace(g, components=tuple(views)))
        # Components removed by a config reload are forgotten; re-added ones start afresh.
        self._since = since
        self._seeded = self._seeded or self.data is not None
        return tuple(out)

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
