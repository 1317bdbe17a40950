"""One thread owning one SQLite connection: the loop hands it jobs in order and awaits results, never the database."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from sqlite_utils import Database

from bridge import database
from bridge.database import open_db

log = logging.getLogger("bridge.db")

T = TypeVar("T")
_STOP = object()
CLOSE_TIMEOUT = 15.0  # seconds close() waits for the job in hand (at most one busy timeout) and those queued


class Closed(RuntimeError):
    """A job handed to a DbThread after close()."""


class _Job(NamedTuple):
    """fn(db, *args) with the future that carries its outcome and the instant its busy wait runs out."""

    future: concurrent.futures.Future[Any]
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    deadline: float  # time.monotonic()


class DbThread:
    """Runs fn(db, *args) jobs FIFO on one connection; threaded for a file, inline on the given db for :memory:.

    A job waits for another writer's lock (the CLI) at most database.BUSY_TIMEOUT from the moment it was handed
    over, queueing included, so a backlog behind a held lock fails together instead of one timeout after another.
    """

    def __init__(self, name: str, connect: Callable[[], Database] | None = None, db: Database | None = None) -> None:
        """connect: opens the thread's own connection (in the thread, on its first job); db: run inline on it."""
        assert (connect is None) != (db is None)
        self.name, self._connect, self._inline = name, connect, db
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None  # started by the first job: an app never served costs nothing
        self._closed = False
        self.ident: int | None = None  # the thread's ident once started (tests check where SQLite ran)

    @classmethod
    def for_db(cls, name: str, db: Database, readonly: bool = False) -> DbThread:
        """A thread on a connection of its own to db's file; an in-memory db (nothing on disk) is used inline."""
        path = db_file(db)
        if path is None:
            return cls(name, db=db)
        return cls(name, connect=(lambda: open_reader(path)) if readonly else (lambda: open_db(path)))

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._closed

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(db, *args) after every job handed over before it; its exception is raised here."""
        if self._closed:
            raise Closed(f"database thread {self.name} is closed")
        if self._inline is not None:
            return fn(self._inline, *args)  # in memory: no disk, no other process, no lock to wait for
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put(_Job(future, fn, args, time.monotonic() + database.BUSY_TIMEOUT))
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"db-{self.name}", daemon=True)
            self._thread.start()
        return await asyncio.wrap_future(future)

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Refuse new jobs, let the thread finish those queued (at most timeout seconds) and close its connection."""
        self._closed = True
        thread = self._thread
        if thread is None:
            return
        self._queue.put(_STOP)
        await asyncio.to_thread(thread.join, timeout)
        if thread.is_alive():
            log.error("database thread %s did not finish within %g s (database locked?)", self.name, timeout)

    def _run(self) -> None:
        """The thread: run jobs until _STOP, then close its connection."""
        self.ident = threading.get_ident()
        db: Database | None = None
        try:
            while (job := self._queue.get()) is not _STOP:
                assert isinstance(job, _Job)
                if not job.future.set_running_or_notify_cancel():
                    continue  # its caller gave up before it started: nothing ran, nothing to report
                try:
                    if db is None:
                        assert self._connect is not None
                        db = self._connect()
                    # The busy wait left to this job: what its queueing has not used up (0: fail at once if locked).
                    left = max(0, int((job.deadline - time.monotonic()) * 1000))
                    db.conn.execute(f"PRAGMA busy_timeout = {left}")
                    result = job.fn(db, *job.args)
                except BaseException as e:  # handed to the awaiting caller, who decides what it means
                    job.future.set_exception(e)
                else:
                    job.future.set_result(result)
        finally:
            if db is not None:
                db.close()


def db_file(db: Database) -> str | None:
    """The file behind db's main database; None for an in-memory one (a second connection would be another DB)."""
    for _seq, name, file in db.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return file or None
    return None


def open_reader(path: str) -> Database:
    """A read-only connection to the database file (WAL: it never waits for a writer's lock)."""
    conn = sqlite3.connect(Path(path).as_uri() + "?mode=ro", uri=True, timeout=database.BUSY_TIMEOUT,
                           check_same_thread=False)
    return Database(conn)
