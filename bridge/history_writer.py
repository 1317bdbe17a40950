"""One thread appending history batches through its own SQLite connection, so no commit (fsync) stalls the loop."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlite_utils import Database

if TYPE_CHECKING:
    from bridge.history import Record

log = logging.getLogger("bridge.history")

Batch = Sequence["Record"]
Write = Callable[[Database, Batch], "list[Record] | None"]  # None: the write failed (and was logged)
Done = Callable[[Batch, "list[Record] | None"], None]
_STOP = object()


class Stopped(NamedTuple):
    """How a stop ended: whether the thread finished, the batches it never took, records it may still be writing."""

    finished: bool
    untaken: list[Batch]
    in_flight: int


class HistoryWriter:
    """Runs write(db, batch) for each submitted batch in order (FIFO), then done(batch, result) back on the loop."""

    def __init__(self, db: Database, write: Write, done: Done, loop: asyncio.AbstractEventLoop) -> None:
        self.db = db  # the thread's own connection: a sqlite3 connection is never shared between threads here
        self._write, self._done, self._loop = write, done, loop
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._busy = 0  # records of the batch being written now
        self._stopped = asyncio.Event()
        self.thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self.thread.start()

    def submit(self, batch: Batch) -> None:
        """Queue a batch; it is written after every batch queued before it."""
        self._queue.put(list(batch))

    async def flush(self) -> None:
        """Wait until every batch submitted so far is written and its done() has run on the loop."""
        if not self.thread.is_alive():
            return
        marker = self._loop.create_future()
        self._queue.put(marker)
        await marker

    async def stop(self, timeout: float) -> Stopped:
        """Let the thread write what is queued, waiting at most timeout seconds, and end it."""
        self._queue.put(_STOP)
        try:
            await asyncio.wait_for(self._stopped.wait(), timeout)
        except TimeoutError:
            untaken = self._drain()
            self._queue.put(_STOP)  # the thread ends after the write it is stuck in
            return Stopped(False, untaken, self._busy)
        # Batches submitted while it stopped came after _STOP: the caller writes them, still in order.
        return Stopped(True, self._drain(), 0)

    def _drain(self) -> list[Batch]:
        """Take every batch still queued (releasing flush() waiters and dropping stop markers)."""
        out: list[Batch] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return out
            if isinstance(item, asyncio.Future):
                _release(item)
            elif isinstance(item, list):
                out.append(item)

    def _run(self) -> None:
        """The thread: write batches until _STOP, then close its connection."""
        try:
            while (item := self._queue.get()) is not _STOP:
                if isinstance(item, asyncio.Future):
                    self._post(_release, item)  # FIFO: every earlier done() was posted before this
                    continue
                assert isinstance(item, list)
                self._busy = len(item)
                try:
                    result = self._write(self.db, item)
                except Exception:  # a bug, not a DB error: still report it and keep the thread serving
                    log.exception("recording %d status changes failed; retrying with the next snapshot", len(item))
                    result = None
                self._post(self._done, item, result)
                self._busy = 0
        finally:
            self.db.close()
            self._post(self._stopped.set)

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        """Run fn(*args) on the loop; dropped when the loop is already closed (process exit)."""
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass


def _release(marker: asyncio.Future[None]) -> None:
    """Wake a flush() waiter (unless it gave up)."""
    if not marker.done():
        marker.set_result(None)
