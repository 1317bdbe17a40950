"""The current Snapshot and its pre-encoded feed bodies, swapped atomically on every rebuild."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bridge.aggregate import aggregate, explaining_times, prepare
from bridge.config import Config
from bridge.history import EFFECTIVE, MONITORED, UNKNOWN, HistoryRecorder, Key, Record, place
from bridge.history import override_times
from bridge.matching import CheckKey, Matcher
from bridge.merge import SourceView, merge
from bridge.model import ComponentView, GroupView, SourceHealth, Snapshot, Status, StatusData
from bridge.notices import Notice, Override, page_state, shown_overrides
from bridge.render import oxford

log = logging.getLogger("bridge.live")
NO_DATA_HEALTH = SourceHealth(stale=True, reason="no monitoring data yet")


RELEASE_MIN = 20_000  # checks: below this, freeing a StatusData on the event loop takes under ~3 ms


def _free_in_steps(box: list[StatusData]) -> None:
    """Free a big StatusData in small steps (in a worker thread), once nothing else refers to it.

    Freeing 100k CheckStates at once is one ~20-40 ms C call holding the GIL, wherever it runs.
    Popping the dicts item by item instead lets the event loop thread take the GIL in between.
    The dicts are emptied only when provably unreachable from anywhere else (reference counts),
    so no reader can ever see a StatusData change.
    """
    data = box.pop()
    for _ in range(100):  # the publishing code may still hold it in a local variable for a moment
        if sys.getrefcount(data) <= 2:  # `data` and getrefcount's own argument
            break
        time.sleep(0.005)
    else:
        return  # still referenced (a test, a merge): it is freed with its last reference, as usual
    for name in ("services", "hosts"):
        table = getattr(data, name)
        if sys.getrefcount(table) <= 3:  # the StatusData's attribute, `table`, the argument
            pop = table.popitem
            for _ in range(len(table)):
                pop()
            del pop
        del table


def release(data: StatusData | None) -> None:
    """Let go of a StatusData that was just replaced: a big one is freed off the event loop, in steps."""
    if data is None or len(data.services) + len(data.hosts) < RELEASE_MIN:
        return
    try:
        asyncio.get_running_loop().run_in_executor(None, _free_in_steps, [data])
    except RuntimeError:
        pass  # no loop to protect (CLI, tests) or it is shutting down: freed here, as usual


JSON_TYPE = "application/json; charset=utf-8"
JS_TYPE = "application/javascript; charset=utf-8"
_VARIANTS_MAX = 64  # JSONP callbacks and max-ages remembered per body; a flood of names just recomputes


@dataclass(frozen=True)
class Encoded:
    """A feed body encoded once per snapshot, with its strong ETag; JSONP forms and headers made once too."""

    body: bytes
    etag: str
    content_type: str = JSON_TYPE
    # Per-request work done once per generation: JSONP bodies by callback, header sets by max-age.
    _memo: dict[object, object] = dataclasses.field(default_factory=dict, repr=False, compare=False, hash=False)

    @classmethod
    def of(cls, obj: object) -> Encoded:
        """Encode obj as compact UTF-8 JSON and hash it for the ETag."""
        body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return cls(body, '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"')

    def _remember(self, key: object, value: object) -> object:
        """Store one memo entry, forgetting them all past _VARIANTS_MAX (callbacks are client input)."""
        if len(self._memo) >= _VARIANTS_MAX:
            self._memo.clear()
        self._memo[key] = value
        return value

    def jsonp(self, callback: str) -> Encoded:
        """The body wrapped as `/**/callback(...);` (callback already validated), with its own ETag."""
        hit = self._memo.get(callback)
        if hit is None:
            body = b"/**/" + callback.encode() + b"(" + self.body + b");"
            etag = '"' + hashlib.blake2b(self.etag.encode() + callback.encode(), digest_size=12).hexdigest() + '"'
            hit = self._remember(callback, Encoded(body, etag, JS_TYPE))
        return hit  # type: ignore[return-value]

    def headers(self, max_age: int, with_type: bool = True) -> dict[str, str]:
        """Response headers of this body (a 304 carries them without Content-Type); copy before changing."""
        key = (max_age, with_type)
        hit = self._memo.get(key)
        if hit is None:
            headers = {"Content-Type": self.content_type} if with_type else {}
            headers.update({"ETag": self.etag, "Cache-Control": f"public, max-age={max_age}",
                            "Access-Control-Allow-Origin": "*"})  # fmt: skip
            if self.content_type == JS_TYPE:
                headers["X-Content-Type-Options"] = "nosniff"
            hit = self._remember(key, headers)
        return hit  # type: ignore[return-value]


@dataclass(frozen=True)
class Published:
    """One consistent generation: the snapshot and every feed rendered from it."""

    snapshot: Snapshot
    feeds: dict[str, Encoded]


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
        prepare(data, self.config, self.matcher)

    def update(self, data: StatusData | None, health: SourceHealth, source: str = "statusdat") -> None:
        """Take new inputs from one source and publish a new generation."""
        self.update_source(SourceView(source, data, health))

    def update_source(self, view: SourceView) -> None:
        """Replace one source's view, re-merge (newest result per check wins) and publish."""
        old = self.sources.get(view.name)
        previous = self.data
        self.sources[view.name] = view
        merged = merge(list(self.sources.values()))
        self.data, self.health, self.stale_keys = merged.data, merged.health, merged.stale_keys
        self.published = self._build(self.clock())
        kept = {id(self.data), *(id(v.data) for v in self.sources.values())}
        for gone in {id(d): d for d in (previous, old.data if old is not None else None) if d is not None}.values():
            if id(gone) not in kept:
                release(gone)

    def set_notices(self, notices: Sequence[Notice], overrides: Sequence[Override], now: float | None = None) -> None:
        """Take the stored notices and overrides (after a write or a scheduled time) and republish as of now."""
        self.notices, self.overrides = tuple(notices), tuple(overrides)
        self.published = self._build(self.clock() if now is None else now)

    def set_config(self, config: Config) -> None:
        """Swap the configuration (reload) and republish."""
        # The Matcher stays: its caches are keyed by the patterns and state maps, never by component
        # ids, so components a reload leaves alone are not re-resolved and re-counted on the loop.
        self.config = config
        self._components = {c.id: c for c in config.components()}
        self.published = self._build(self.clock())

    def _build(self, now: float) -> Published:
        """Aggregate and encode every feed once."""
        shown = shown_overrides(self.overrides, self.notices, now)
        snap = aggregate(self.data, self.health, self.config, now, self.matcher, shown)
        snap = dataclasses.replace(
            snap,
            groups=self._stamp(snap.groups, now),
            notices=self.notices,
            overrides=self.overrides,
            page_state=page_state(self.notices),
        )
        self._record(snap, shown, now)
        feeds = {
            "services": Encoded.of(oxford.services_feed(snap)),
            "announcements": Encoded.of(oxford.announcements_feed(snap)),
        }
        return Published(snap, feeds)

    def _component_stale(self, component_id: str) -> bool:
        """True when any check behind the component comes from a stale source."""
        if self.data is None:
            return self.health.stale
        if not self.stale_keys:
            return False
        comp = self._components.get(component_id)
        return comp is not None and any(k in self.stale_keys for k in self.matcher.resolve(comp, self.data))

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
                views.append(dataclasses.replace(c, since=entry[1], stale=self._component_stale(c.id)))
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
