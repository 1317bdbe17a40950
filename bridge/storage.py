"""Notice, update, component-link and override rows in the SQLite database, read and written as bridge.notices types."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlite_utils import Database

from bridge.database import write_transaction
from bridge.model import Status
from bridge.notices import (
    ENDED_STATES,
    Notice,
    NoticeUpdate,
    Override,
    Transition,
    due_transitions,
)


def slugify(text: str) -> str:
    """A URL slug for a subject."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80] or "notice"


def _notice(row: dict, components: tuple[str, ...], updates: tuple[NoticeUpdate, ...]) -> Notice:
    """A Notice from a notices row plus its links and updates."""
    return Notice(
        id=row["id"],
        type=row["type"],
        state=row["state"],
        subject=row["subject"],
        slug=row["slug"],
        began_at=row["began_at"],
        ended_at=row["ended_at"],
        begins_at=row["begins_at"],
        ends_at=row["ends_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        components=components,
        updates=updates,
    )


def list_notices(db: Database, ids: Iterable[int] | None = None) -> list[Notice]:
    """Every notice (or those with the given ids) with components and updates, newest first."""
    where, params = "", []
    if ids is not None:
        params = list(ids)
        if not params:
            return []
        where = f"where id in ({','.join('?' * len(params))})"
    rows = list(db.query(f"select * from notices {where} order by coalesce(began_at, begins_at, created_at) desc, id desc", params))
    if not rows:
        return []
    marks = ",".join("?" * len(rows))
    keys = [r["id"] for r in rows]
    comps: dict[int, list[str]] = {}
    for r in db.query(f"select * from notice_components where notice_id in ({marks}) order by component_id", keys):
        comps.setdefault(r["notice_id"], []).append(r["component_id"])
    ups: dict[int, list[NoticeUpdate]] = {}
    for r in db.query(f"select * from notice_updates where notice_id in ({marks}) order by created_at, id", keys):
        ups.setdefault(r["notice_id"], []).append(NoticeUpdate(**r))
    return [_notice(r, tuple(comps.get(r["id"], ())), tuple(ups.get(r["id"], ()))) for r in rows]


def get_notice(db: Database, notice_id: int) -> Notice | None:
    """One notice by id, or None."""
    found = list_notices(db, [notice_id])
    return found[0] if found else None


def create_notice(
    db: Database,
    *,
    type: str,
    subject: str,
    state: str,
    content: str,
    now: float,
    components: Iterable[str] = (),
    began_at: float | None = None,
    begins_at: float | None = None,
    ends_at: float | None = None,
) -> Notice:
    """Insert a notice with its first update and component links in one transaction (inputs pre-validated)."""
    with write_transaction(db):
        if began_at is None and (type == "unplanned" or state != "scheduled"):
            began_at = now  # a maintenance created underway (its start already past) began when it was announced
        ended_at = now if state in ENDED_STATES else None
        notice_id = db["notices"].insert(
            {
                "type": type,
                "state": state,
                "subject": subject,
                "slug": slugify(subject),
                "began_at": began_at,
                "ended_at": ended_at,
                "begins_at": begins_at,
                "ends_at": ends_at,
                "created_at": now,
                "updated_at": now,
            }
        ).last_pk
        _set_components(db, notice_id, components)
        _insert_update(db, notice_id, state, content, now)
    notice = get_notice(db, notice_id)
    assert notice is not None
    return notice


def update_notice(db: Database, notice_id: int, *, now: float, components: Iterable[str] | None = None, **fields: object) -> Notice | None:
    """Change subject/begins_at/ends_at/began_at (and the component links); None when the id is unknown."""
    allowed = {"subject", "begins_at", "ends_at", "began_at"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"cannot update {sorted(unknown)}")
    with write_transaction(db):
        if not db.execute("select 1 from notices where id = ?", [notice_id]).fetchone():
            return None
        values = dict(fields, updated_at=now)
        if "subject" in fields:
            values["slug"] = slugify(str(fields["subject"]))
        db["notices"].update(notice_id, values)
        if components is not None:
            _set_components(db, notice_id, components)
    return get_notice(db, notice_id)


def add_update(db: Database, notice_id: int, *, state: str, content: str, now: float, at: float | None = None) -> Notice | None:
    """Add a progress update and move the notice to its state (began/ended times follow); None if unknown id."""
    when = now if at is None else at
    with write_transaction(db):
        row = db.execute("select type, began_at, ended_at from notices where id = ?", [notice_id]).fetchone()
        if row is None:
            return None
        _type, began_at, ended_at = row
        values: dict[str, object] = {"state": state, "updated_at": now}
        if state in ENDED_STATES:
            values["ended_at"] = ended_at if ended_at is not None else when
            if began_at is None:
                values["began_at"] = when
        else:
            values["ended_at"] = None  # reopened
            if state != "scheduled" and began_at is None:
                values["began_at"] = when
        db["notices"].update(notice_id, values)
        _insert_update(db, notice_id, state, content, when)
    return get_notice(db, notice_id)


def apply_transitions(db: Database, transitions: Iterable[Transition], now: float) -> int:
    """Record due planned transitions (at their scheduled times) in one transaction; returns how many applied."""
    transitions = list(transitions)
    count = 0
    with write_transaction(db):
        # Re-check under the write lock: another process (a second daemon on the same file, an admin edit)
        # may have applied or moved this transition since the caller read the notices.
        still_due = set(due_transitions(list_notices(db, {t.notice_id for t in transitions}), now))
        for t in transitions:
            if t in still_due and add_update(db, t.notice_id, state=t.state, content=t.content, now=now, at=t.at):
                count += 1
    return count


def _insert_update(db: Database, notice_id: int, state: str, content: str, at: float) -> None:
    """Append one update row."""
    db["notice_updates"].insert(
        {"notice_id": notice_id, "state": state, "content": content, "created_at": at, "updated_at": at}
    )


def _set_components(db: Database, notice_id: int, components: Iterable[str]) -> None:
    """Replace the component links of a notice."""
    db.execute("delete from notice_components where notice_id = ?", [notice_id])
    db["notice_components"].insert_all(
        [{"notice_id": notice_id, "component_id": c} for c in dict.fromkeys(components)], pk=("notice_id", "component_id")
    )


def _override(row: dict) -> Override:
    """An Override from its row."""
    return Override(**{**row, "status": Status(row["status"])})


def list_overrides(db: Database) -> list[Override]:
    """Every stored override, by start time."""
    return [_override(r) for r in db.query("select * from overrides order by starts_at, id")]


def create_override(
    db: Database,
    *,
    component_id: str,
    status: Status,
    starts_at: float,
    ends_at: float | None,
    now: float,
    reason: str | None = None,
    message: str | None = None,
) -> Override:
    """Insert an override (inputs pre-validated); message is public, reason private."""
    with write_transaction(db):
        pk = db["overrides"].insert(
            {
                "component_id": component_id,
                "status": Status(status).value,
                "starts_at": starts_at,
                "ends_at": ends_at,
                "reason": reason,
                "message": message,
                "created_at": now,
            }
        ).last_pk
    found = get_override(db, pk)
    assert found is not None
    return found


def get_override(db: Database, override_id: int) -> Override | None:
    """One override by id, or None."""
    rows = list(db.query("select * from overrides where id = ?", [override_id]))
    return _override(rows[0]) if rows else None


def update_override(db: Database, override_id: int, **fields: object) -> Override | None:
    """Change status/starts_at/ends_at/reason/message of an override (inputs pre-validated); None when the id is unknown."""
    allowed = {"status", "starts_at", "ends_at", "reason", "message"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"cannot update {sorted(unknown)}")
    if "status" in fields:
        fields["status"] = Status(fields["status"]).value
    with write_transaction(db):
        if not db.execute("select 1 from overrides where id = ?", [override_id]).fetchone():
            return None
        if fields:
            db["overrides"].update(override_id, fields)
    return get_override(db, override_id)


def delete_override(db: Database, override_id: int) -> bool:
    """Remove an override; False when it did not exist."""
    with write_transaction(db):
        cur = db.execute("delete from overrides where id = ?", [override_id])
    return cur.rowcount > 0
