"""Follow Nagios' status.dat: watch its directory, parse off the event loop, keep the last good data."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import aclosing
from pathlib import Path

from watchfiles import awatch

from .model import SourceHealth, StatusData
from .statusdat_file import (
    DirIdentity,
    Probe,
    Signature,
    TailFacts,
    apply_outcome,
    compute_health,
    probe,
    read_and_parse,
)

log = logging.getLogger(__name__)


SWITCH_INTERVAL = 0.001  # seconds; CPython's default is 0.005
_boost: list[float] = []  # the switch interval to restore, while some tailer runs


@contextlib.contextmanager
def loop_priority() -> Iterator[None]:
    """While tailing, let the event loop thread get the GIL back within ~1 ms of asking, not ~5 ms.

    The parser, Live.prepare and the freeing of an old snapshot give the GIL up between small
    steps, but a thread waiting for it only asks after the switch interval, and the loop thread
    waits again after every socket call of every request. Nested uses (a reload starting a new
    tailer before the old one stopped) restore the original interval once the last one ends.
    """
    _boost.append(sys.getswitchinterval())
    sys.setswitchinterval(min(SWITCH_INTERVAL, _boost[-1]))
    try:
        yield
    finally:
        sys.setswitchinterval(_boost.pop())


def _default_parse(raw: bytes | bytearray) -> StatusData:
    """Parse with bridge.statusdat, imported late so this module loads without it."""
    from .statusdat import parse

    return parse(raw)


class StatusDatTailer:
    """The only code that touches status.dat: keeps the last good StatusData and the source health."""

    def __init__(
        self,
        path: Path,
        stale_after: float,
        on_change: Callable[[], None],
        *,
        clock: Callable[[], float] = time.time,
        debounce: float = 0.02,
        parse: Callable[[bytes | bytearray], StatusData] | None = None,
        poll_interval: float = 2.0,
        dir_poll_interval: float = 1.0,
        prepare: Callable[[StatusData], None] | None = None,
    ) -> None:
        """Configure; nothing is read until run(). prepare(data) runs in the worker thread after a good parse
        (Live.prepare: the heavy part of publishing, done off the event loop)."""
        self.path = Path(path)
        self.stale_after = stale_after
        self.on_change = on_change
        self.clock = clock
        self.debounce = debounce
        self.parse = parse or _default_parse
        self.prepare = prepare
        self.poll_interval = poll_interval
        self.dir_poll_interval = dir_poll_interval
        self.current: StatusData | None = None
        self.facts = TailFacts()
        self._signature: Signature | None = None
        self._good_inode: int | None = None  # inode of the last good read: same inode = written in place
        self._loaded_once = False
        self._last_notified: tuple[bool, TailFacts] | None = None

    def health(self, now: float) -> SourceHealth:
        """Freshness of the data at ``now``."""
        return compute_health(self.facts, now, self.stale_after, self.path.name)

    async def run(self) -> None:
        """Load at once, then follow the file until cancelled."""
        with loop_priority():
            await self._run()

    async def _run(self) -> None:
        """run() itself."""
        while True:
            found = await asyncio.to_thread(probe, self.path)
            await self._refresh(found, changed=False)
            if found.directory is not None:
                try:
                    await self._watch(found.directory)
                    continue  # the directory was replaced or removed: re-arm at once
                except OSError as exc:  # removed between the stat and the watch
                    log.warning("cannot watch %s: %s", self.path.parent, exc)
            await asyncio.sleep(self.dir_poll_interval)

    async def _watch(self, directory: DirIdentity) -> None:
        """Follow events in the directory until it stops being the one we watch."""
        watcher = awatch(
            self.path.parent,
            watch_filter=None,
            step=max(1, round(self.debounce * 1000)),
            # Timeouts drive the fallback poll, for filesystems where inotify misses events.
            rust_timeout=max(1, round(self.poll_interval * 1000)),
            yield_on_timeout=True,
            recursive=False,
        )
        async with aclosing(watcher) as batches:
            async for batch in batches:
                ours = any(os.path.basename(p) == self.path.name for _, p in batch)
                found = await asyncio.to_thread(probe, self.path)
                await self._refresh(found, changed=ours)
                if found.directory != directory:
                    return  # inotify goes deaf once its directory is gone

    async def _refresh(self, found: Probe, *, changed: bool) -> None:
        """Re-read when an event or the poll says the file changed, then tell the listener."""
        if changed or not self._loaded_once or found.file != self._signature:
            await self._load()
        self._notify_if_changed()

    async def _load(self) -> None:
        """Read and parse in a worker thread; publish only a complete, good parse."""
        previous = self._good_inode
        outcome = await asyncio.to_thread(read_and_parse, self.path, self.parse, self.prepare, previous)
        self._loaded_once = True
        self._signature = outcome.signature
        if outcome.data is not None and outcome.signature is not None:
            self._good_inode = outcome.signature[0]
        if outcome.error is not None:
            log.warning("%s", outcome.error)
        if outcome.data is not None:
            self.current = outcome.data
        self.facts = apply_outcome(self.facts, outcome, self.clock())

    def _notify_if_changed(self) -> None:
        """Call on_change when the data or the health changed since the last call."""
        key = (self.health(self.clock()).stale, self.facts)
        if key == self._last_notified:
            return
        self._last_notified = key
        try:
            self.on_change()
        except Exception:  # a listener bug must not stop us following the file
            log.exception("on_change callback failed")
