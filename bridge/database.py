"""The SQLite database (sqlite-utils, WAL): schema migrations, opening, write transactions and change detection."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

log = logging.getLogger("bridge.database")

migrations = Migrations("status-bridge")
# Seconds a connection waits for another writer's lock (the CLI, a second daemon) before "database is locked".
BUSY_TIMEOUT = 10.0
# Notices not yet published and the private reasons of overrides: for the service user only. The README has
# the CLI run as that user too, so no group needs the file (and SQLite gives its -wal and -shm the same mode).
FILE_MODE = 0o600


@migrations()
def m001_notices(db: Database) -> None:
    """Notices, updates, notice<->component links and overrides."""
    db["notices"].create(
        {
            "id": int,
            "type": str,
            "state": str,
            "subject": str,
            "slug": str,
            "began_at": float,
            "ended_at": float,
            "begins_at": float,
            "ends_at": float,
            "created_at": float,
            "updated_at": float,
        },
        pk="id",
        not_null={"type", "state", "subject", "slug", "created_at", "updated_at"},
    )
    db["notice_updates"].create(
        {"id": int, "notice_id": int, "state": str, "content": str, "created_at": float, "updated_at": float},
        pk="id",
        foreign_keys=[("notice_id", "notices", "id")],
        not_null={"notice_id", "state", "content", "created_at", "updated_at"},
    )
    db["notice_updates"].create_index(["notice_id"])
    db["notice_components"].create(
        {"notice_id": int, "component_id": str},
        pk=("notice_id", "component_id"),
        foreign_keys=[("notice_id", "notices", "id")],
    )
    db["overrides"].create(
        {
            "id": int,
            "component_id": str,
            "status": str,
            "starts_at": float,
            "ends_at": float,
            "reason": str,
            "created_at": float,
        },
        pk="id",
        not_null={"component_id", "status", "starts_at", "reason", "created_at"},
    )


@migrations()
def m002_history(db: Database) -> None:
    """Append-only component status history: one row per change of a monitored or effective status."""
    db["history"].create(
        {"id": int, "component_id": str, "kind": str, "status": str, "at": float},
        pk="id",
        not_null={"component_id", "kind", "status", "at"},
    )
    # Serves both "last row per component before t" and "rows of a component in [a, b)" by index seeks.
    db["history"].create_index(["component_id", "kind", "at"])


@migrations()
def m003_override_message(db: Database) -> None:
    """Overrides get a public `message`; `reason` becomes private to administrators, and both are optional.

    Existing rows get their reason copied into message: until now the reason was what the page and the Oxford
    feed showed, so the upgrade must not change (or blank) what the public sees.
    """
    db["overrides"].add_column("message", str)
    db.execute("update overrides set message = reason")
    # SQLite cannot drop a NOT NULL in place: transform rebuilds the table (no foreign keys point at it).
    db["overrides"].transform(not_null={"reason": False})


def create_private(path: Path) -> None:
    """Create the database file 0600 whatever the umask (SQLite gives -wal and -shm its mode); an existing file is
    left as it is, with a warning for each of the three that anyone may read."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            with contextlib.suppress(OSError):
                mode = name.stat().st_mode
                if stat.S_ISREG(mode) and mode & stat.S_IROTH:
                    log.warning("%s is readable by everyone (mode %o): chmod 600 it", name, stat.S_IMODE(mode))
        return
    except OSError:
        return  # an unwritable directory: SQLite's own open reports it, as it always has
    try:
        os.fchmod(fd, FILE_MODE)  # a umask can only take bits away, and without u+w SQLite could not write
    finally:
        os.close(fd)


def open_db(path: Path | str) -> Database:
    """Open (creating) the database: WAL, FULL sync so an acknowledged write survives power loss, migrated."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        create_private(Path(path))
    # The CLI writes while the daemon runs: wait for the other writer instead of failing at once.
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT, check_same_thread=False)
    db = Database(conn)
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA synchronous=FULL")
    if str(path) != ":memory:":
        db.enable_wal()
    migrations.apply(db)
    return db


@contextlib.contextmanager
def write_transaction(db: Database) -> Iterator[Database]:
    """A write transaction that takes the write lock up front (BEGIN IMMEDIATE); nested calls use savepoints."""
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    # A deferred BEGIN that reads and then writes fails at once (SQLITE_BUSY, no busy wait) when another
    # connection (the CLI, a second daemon) committed in between; IMMEDIATE waits for the lock instead.
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.rollback()
        raise
    try:
        db.conn.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise


def data_version(db: Database) -> int:
    """SQLite's data_version: changes whenever another connection commits (cheap change detection)."""
    return int(db.execute("PRAGMA data_version").fetchone()[0])


def is_busy(error: BaseException) -> bool:
    """True for SQLite's "database is locked": another writer held the lock past the busy timeout."""
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(error, sqlite3.OperationalError) and code is not None and code & 0xFF in (
        sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
