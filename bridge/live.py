"""The current Snapshot and its pre-encoded feed bodies, swapped atomically on every rebuild."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence, Set

from bridge.aggregate import aggregate, prepare
from bridge.config import Config
from bridge.encoded import Encoded, Published
from bridge.history import HistoryRecorder
from bridge.live_delta import IN_PLACE_MAX, ChangedSource, apply_in_place, owned
from bridge.live_history import RecordsHistory
from bridge.matching import CheckKey, Matcher
from bridge.merge import Merged, SourceView, combined_health, merge
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

NO_DATA_HEALTH = SourceHealth(stale=True, reason="no monitoring data yet")


class Live(RecordsHistory):
    """Holds the latest inputs and the published generation; rebuilt on input change or tick."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._components = {c.id: c for c in config.components()}
        self.clock = clock
        self.matcher = Matcher()
        self.sources: dict[str, SourceView] = {}
        self.data: StatusData | None = None  # merged over sources
        self.health: SourceHealth = NO_DATA_HEALTH  # combined over sources
        self.stale_keys: Set[CheckKey] = frozenset()  # a set Live changes in place while data is its own
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
        # Sources that publish changes (publish_changes): while there are any, merges give Live its own data
        # (self._own), which their changes are applied to in place; their views may lag (self._lagging).
        self._changing: set[str] = set()
        self._lagging: dict[str, ChangedSource] = {}
        self._own: StatusData | None = None
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
        views = self._current_views()
        own = self._owning()
        started = time.perf_counter()
        merged = merge(views)
        merged = owned(merged, views) if own else merged
        self._publish(merged, time.perf_counter() - started, self._inputs, own)

    async def publish_changes(self, source: ChangedSource, keys: Set[CheckKey], rebuild: bool = False) -> None:
        """Publish what changed in one source: in place in O(changed) when few checks changed and none appeared or
        vanished, else as publish_source(source.view()) would. rebuild: the source wants a full merge."""
        self._changing.add(source.name)
        if not rebuild and self._in_place(source, keys):
            return
        self._lagging.pop(source.name, None)
        self._take(source.view())
        await self._republish()

    def _in_place(self, source: ChangedSource, keys: Set[CheckKey]) -> bool:
        """Apply keys to Live's own merged data and publish (True); False, nothing touched, when it cannot be."""
        view, health = self.sources.get(source.name), source.health()
        if (self.data is None or self.data is not self._own or self._shown != self._inputs or self._merging.locked()
                or view is None or view.data is None or not len(source) or view.health.stale != health.stale
                or len(keys) > IN_PLACE_MAX or any(name != source.name for name in self._lagging)):
            return False
        current = dataclasses.replace(view, health=health)  # its data lags: source answers for the changed keys
        views = [current if v is view else v for v in self.sources.values()]
        assert isinstance(self.stale_keys, set)  # Live's own, like self.data
        started = time.perf_counter()
        if not apply_in_place(self.data, self.stale_keys, views, source, keys, self.config, self.matcher):
            return False
        self.stats.changed(source.name, time.perf_counter() - started)
        self.sources[source.name] = current
        self._lagging[source.name] = source
        self.health = combined_health(views)
        self._inputs += 1
        self._shown = self._inputs
        self._swap(self.clock())
        return True

    def _owning(self) -> bool:
        """Whether the next merge should be Live's own: while a source that publishes changes holds data."""
        return any(v.data is not None for name, v in self.sources.items() if name in self._changing)

    def _current_views(self) -> tuple[SourceView, ...]:
        """Every source's view, asking lagging sources for a complete one first."""
        for source in self._lagging.values():
            self._take(source.view())
        self._lagging.clear()
        return tuple(self.sources.values())

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
        self._lagging.pop(name, None)
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
                views = self._current_views()
                inputs, own = self._inputs, self._owning()
                merged, took = await asyncio.to_thread(self._merge_prepared, views, own)
                if inputs == self._inputs:
                    self._publish(merged, took, inputs, own)
                else:  # newer inputs came meanwhile: merge those (or a synchronous update published them)
                    self._discard(merged)

    def _merge_prepared(self, views: Sequence[SourceView], own: bool) -> tuple[Merged, float]:
        """merge(views) prepared for aggregation, and its duration (worker thread; one source: its own object unless
        own, which makes it Live's own to change in place)."""
        started = time.perf_counter()
        merged = merge(views)
        if own:
            merged = owned(merged, views)
        if merged.data is not None:  # for a single source, usually all cache hits
            prepare(merged.data, self.config, self.matcher, merged.stale_keys, in_place=own)
        return merged, time.perf_counter() - started

    def _publish(self, merged: Merged, took: float, inputs: int, own: bool = False) -> None:
        """Swap in merged (inputs generation `inputs`, made ready in `took` s; own: Live's to change in place), publish
        it and release what it replaced."""
        previous = self.data
        self.data, self.health, self.stale_keys = merged.data, merged.health, merged.stale_keys
        self._own = merged.data if own else None
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
        # Cached counts of the old components are no longer kept up to date: changes go to a full merge next.
        self._own = None
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
