"""SQLite storage on real temp files: migrations, WAL, notice/update/override semantics, atomicity, data_version."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlite_utils import Database

from bridge import storage
from bridge.database import data_version, migrations, open_db
from bridge.model import Status
from bridge.notices import due_transitions
from bridge.storage import (
    add_update,
    apply_transitions,
    create_notice,
    create_override,
    delete_override,
    get_notice,
    get_override,
    list_notices,
    list_overrides,
    update_notice,
    update_override,
)

T = 1_700_000_000.0


@pytest.fixture
def db(tmp_path: Path) -> Database:
    """A migrated database in a temp file, closed after the test."""
    database = open_db(tmp_path / "db.sqlite")
    yield database
    database.close()


def incident(db: Database, **kw: object) -> int:
    """An investigating incident on website, created at T; returns its id."""
    fields: dict[str, object] = dict(type="unplanned", subject="Site slow", state="investigating",
                                     content="Looking into it", now=T, components=["website"])
    fields.update(kw)
    return create_notice(db, **fields).id  # type: ignore[arg-type]


def maintenance(db: Database, begins_at: float = T + 100, ends_at: float | None = T + 200) -> int:
    """A scheduled maintenance on database; returns its id."""
    return create_notice(db, type="planned", subject="DB upgrade", state="scheduled", content="Planned",
                         now=T, components=["database"], begins_at=begins_at, ends_at=ends_at).id


def test_migrations_are_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "db.sqlite"  # parent directory is created
    first = open_db(path)
    incident(first)
    first.close()
    again = open_db(path)
    try:
        assert {"notices", "notice_updates", "notice_components", "overrides"} <= set(again.table_names())
        assert again.execute("select count(*) from _sqlite_migrations").fetchone()[0] == 3  # m001, m002, m003
        assert len(list_notices(again)) == 1  # data kept, nothing recreated
    finally:
        again.close()


def test_upgrade_copies_each_override_reason_into_its_public_message(tmp_path: Path) -> None:
    """A file written before overrides had a message: the reason (what the public saw) becomes the message, kept private too."""
    path = tmp_path / "old.sqlite"
    old = Database(sqlite3.connect(path))
    migrations.apply(old, stop_before="m003_override_message")  # the schema of the previous release
    rows = [("website", "down", T, None, "Firewall work"), ("database", "partial", T, T + 60, "Disk swap")]
    old.conn.executemany(
        "insert into overrides (component_id, status, starts_at, ends_at, reason, created_at) values (?, ?, ?, ?, ?, ?)",
        [(*r, T) for r in rows],
    )
    old.conn.commit()
    old.close()
    db = open_db(path)
    try:
        got = [(o.component_id, o.status.value, o.starts_at, o.ends_at, o.reason, o.message) for o in list_overrides(db)]
        assert got == [(*r, r[-1]) for r in rows]
        # Both texts are optional from now on: the NOT NULL on reason is gone.
        bare = create_override(db, component_id="website", status=Status.UP, starts_at=T, ends_at=None, now=T)
        assert (bare.reason, bare.message) == (None, None)
    finally:
        db.close()


def test_wal_and_foreign_keys_are_on(db: Database) -> None:
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_create_unplanned_notice(db: Database) -> None:
    n = get_notice(db, incident(db, components=["website", "database", "website"]))
    assert n is not None
    assert (n.type, n.state, n.slug, n.began_at, n.ended_at, n.created_at, n.updated_at) == (
        "unplanned", "investigating", "site-slow", T, None, T, T)
    assert n.components == ("database", "website")  # de-duplicated
    assert [(u.state, u.content, u.created_at) for u in n.updates] == [("investigating", "Looking into it", T)]


def test_create_resolved_notice_is_ended_at_once(db: Database) -> None:
    n = get_notice(db, incident(db, state="resolved", began_at=T - 600))
    assert n is not None and (n.began_at, n.ended_at) == (T - 600, T)


def test_create_planned_notice_has_not_begun(db: Database) -> None:
    n = get_notice(db, maintenance(db))
    assert n is not None
    assert (n.state, n.began_at, n.ended_at, n.begins_at, n.ends_at) == ("scheduled", None, None, T + 100, T + 200)


def test_add_update_moves_state_and_times(db: Database) -> None:
    nid = incident(db)
    n = add_update(db, nid, state="identified", content="Found it", now=T + 10)
    assert n is not None and (n.state, n.began_at, n.ended_at, n.updated_at) == ("identified", T, None, T + 10)
    n = add_update(db, nid, state="resolved", content="Fixed", now=T + 20)
    assert n is not None and (n.state, n.ended_at) == ("resolved", T + 20)
    n = add_update(db, nid, state="resolved", content="Really fixed", now=T + 30)
    assert n is not None and n.ended_at == T + 20  # the first end stays
    n = add_update(db, nid, state="investigating", content="Back again", now=T + 40)
    assert n is not None and (n.state, n.ended_at) == ("investigating", None)  # reopened
    assert [u.content for u in n.updates] == ["Looking into it", "Found it", "Fixed", "Really fixed", "Back again"]
    assert n.latest_update is not None and n.latest_update.created_at == T + 40


def test_add_update_at_a_given_time(db: Database) -> None:
    nid = maintenance(db)
    n = add_update(db, nid, state="underway", content="Started", now=T + 500, at=T + 100)
    assert n is not None and (n.began_at, n.updated_at, n.updates[-1].created_at) == (T + 100, T + 500, T + 100)
    n = add_update(db, nid, state="complete", content="Done", now=T + 500, at=T + 200)
    assert n is not None and (n.began_at, n.ended_at) == (T + 100, T + 200)


def test_unknown_ids(db: Database) -> None:
    assert get_notice(db, 99) is None
    assert add_update(db, 99, state="resolved", content="x", now=T) is None
    assert update_notice(db, 99, now=T, subject="x") is None
    assert get_override(db, 99) is None
    assert update_override(db, 99, reason="x") is None
    assert delete_override(db, 99) is False


def test_update_notice_replaces_component_links(db: Database) -> None:
    nid = incident(db, components=["website", "database"])
    n = update_notice(db, nid, now=T + 5, subject="Site down", components=["dns"])
    assert n is not None and (n.subject, n.slug, n.components, n.updated_at) == ("Site down", "site-down", ("dns",), T + 5)
    n = update_notice(db, nid, now=T + 6, ends_at=None)
    assert n is not None and n.components == ("dns",)  # components=None keeps the links
    n = update_notice(db, nid, now=T + 7, components=[])
    assert n is not None and n.components == ()
    assert db.execute("select count(*) from notice_components").fetchone()[0] == 0
    with pytest.raises(ValueError):
        update_notice(db, nid, now=T, state="resolved")  # state moves only through updates


def test_list_notices_newest_first_and_by_id(db: Database) -> None:
    old = incident(db, began_at=T - 1000)
    new = incident(db)
    planned = maintenance(db, begins_at=T + 50)
    assert [n.id for n in list_notices(db)] == [planned, new, old]
    assert [n.id for n in list_notices(db, [old])] == [old]
    assert list_notices(db, []) == []


def test_overrides_crud(db: Database) -> None:
    later = create_override(db, component_id="website", status=Status.DOWN, starts_at=T + 60, ends_at=None,
                            reason="Migration", now=T)
    first = create_override(db, component_id="database", status=Status.MAINTENANCE, starts_at=T, ends_at=T + 30,
                            reason="Patch", now=T)
    assert (first.status, first.ends_at, first.created_at) == (Status.MAINTENANCE, T + 30, T)
    assert [o.id for o in list_overrides(db)] == [first.id, later.id]  # by start time
    assert (later.reason, later.message) == ("Migration", None)
    changed = update_override(db, later.id, status="partial", ends_at=T + 90, reason="Slower", message="Upgrading")
    assert changed is not None
    assert (changed.status, changed.ends_at, changed.reason, changed.message) == (Status.PARTIAL, T + 90, "Slower", "Upgrading")
    cleared = update_override(db, later.id, reason=None)
    assert cleared is not None and (cleared.reason, cleared.message) == (None, "Upgrading")
    with pytest.raises(ValueError):
        update_override(db, later.id, component_id="dns")
    assert delete_override(db, first.id) is True
    assert [o.id for o in list_overrides(db)] == [later.id]


def test_failed_write_leaves_nothing_behind(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_update(db: Database, notice_id: int, state: str, content: str, at: float) -> None:
        # The last statement of create_notice violates the foreign key, after the notice and links went in.
        db["notice_updates"].insert({"notice_id": 9999, "state": state, "content": content,
                                     "created_at": at, "updated_at": at})

    monkeypatch.setattr(storage, "_insert_update", broken_update)
    with pytest.raises(sqlite3.IntegrityError):
        incident(db)
    counts = [db.execute(f"select count(*) from {t}").fetchone()[0] for t in ("notices", "notice_components", "notice_updates")]
    assert counts == [0, 0, 0]
    assert not db.conn.in_transaction
    monkeypatch.undo()
    assert get_notice(db, incident(db)) is not None  # the connection is still usable


def test_apply_transitions_records_scheduled_times_once(db: Database) -> None:
    nid = maintenance(db)
    due = due_transitions(list_notices(db), T + 500)
    assert apply_transitions(db, due, T + 500) == 2
    n = get_notice(db, nid)
    assert n is not None
    assert (n.state, n.began_at, n.ended_at, n.updated_at) == ("complete", T + 100, T + 200, T + 500)
    assert [(u.state, u.created_at) for u in n.updates] == [("scheduled", T), ("underway", T + 100), ("complete", T + 200)]
    # A stale list (another daemon already applied it) must not duplicate the updates.
    assert apply_transitions(db, due, T + 600) == 0
    assert len(get_notice(db, nid).updates) == 3  # type: ignore[union-attr]


def test_data_version_changes_when_another_connection_commits(db: Database, tmp_path: Path) -> None:
    before = data_version(db)
    incident(db)  # our own commit does not count
    assert data_version(db) == before
    other = open_db(tmp_path / "db.sqlite")
    try:
        create_override(other, component_id="website", status=Status.DOWN, starts_at=T, ends_at=None, reason="x", now=T)
        assert data_version(db) != before
        assert len(list_overrides(db)) == 1
    finally:
        other.close()


def test_writer_waits_for_another_writer(db: Database, tmp_path: Path) -> None:
    nid = incident(db)
    other = open_db(tmp_path / "db.sqlite")
    other.conn.execute("BEGIN IMMEDIATE")  # the CLI mid-write
    other.conn.execute("update notices set subject = 'Renamed' where id = ?", [nid])
    release = threading.Timer(0.3, other.conn.commit)
    release.start()
    try:
        n = add_update(db, nid, state="resolved", content="Fixed", now=T + 1)  # waits, then reads the fresh row
    finally:
        release.join()
        other.close()
    assert n is not None and (n.subject, n.state) == ("Renamed", "resolved")
