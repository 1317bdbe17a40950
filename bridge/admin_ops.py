"""Notice and override writes shared by the admin API and the CLI: checked against the stored row under one lock.

Input that stands alone (a new notice, a new override, a component list) is parsed by the edge first, so a
CLI typo is reported before the database is opened; input that depends on the stored row (a patch, a
progress update) is parsed here, inside the write transaction, so no concurrent writer slips in between.
Edges map NotFound and InputError to their own shape (HTTP 404/422, CLI exit 1/2).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple

from sqlite_utils import Database

from bridge.admin_input import NoticeInput, parse_notice_patch, parse_update
from bridge.database import write_transaction
from bridge.notices import Notice, Override
from bridge.override_input import OverrideInput, parse_override_patch
from bridge.storage import (
    add_update,
    create_notice,
    create_override,
    delete_override,
    get_notice,
    get_override,
    update_notice,
    update_override,
)


class NotFound(LookupError):
    """An id that names no stored notice or override."""

    def __init__(self, what: str, ident: int) -> None:
        super().__init__(f"no {what} {ident}")
        self.what, self.ident = what, ident


class Patched(NamedTuple):
    """A notice after a patch, and the names of the fields the patch set (storage fields, then components)."""

    notice: Notice
    fields: tuple[str, ...]


def read_notice(db: Database, notice_id: int) -> Notice:
    """The stored notice; NotFound when there is none."""
    notice = get_notice(db, notice_id)
    if notice is None:
        raise NotFound("notice", notice_id)
    return notice


def add_notice(db: Database, spec: NoticeInput, now: float) -> Notice:
    """Store a validated new notice with its first update and component links."""
    return create_notice(
        db,
        type=spec.type,
        subject=spec.subject,
        state=spec.state,
        content=spec.content,
        now=now,
        components=spec.components,
        begins_at=spec.begins_at,
        ends_at=spec.ends_at,
    )


def patch_notice(db: Database, notice_id: int, body: object, known: Collection[str], now: float) -> Patched:
    """Change subject/schedule/components; the new schedule is checked against the stored one (InputError)."""
    with write_transaction(db):
        patch = parse_notice_patch(body, known, read_notice(db, notice_id), now)
        updated = update_notice(db, notice_id, now=now, components=patch.components, **patch.fields)
    assert updated is not None  # the write lock was held since the read
    return Patched(updated, (*patch.fields, *(("components",) if patch.components is not None else ())))


def post_update(db: Database, notice_id: int, body: object, now: float) -> Notice:
    """Add a progress update ({state?, content}); the notice moves to its state, checked against the type."""
    with write_transaction(db):
        update = parse_update(body, read_notice(db, notice_id))
        updated = add_update(db, notice_id, state=update.state, content=update.content, now=now)
    assert updated is not None
    return updated


def set_components(db: Database, notice_id: int, components: Collection[str], now: float) -> Notice:
    """Replace a notice's validated component links."""
    updated = update_notice(db, notice_id, now=now, components=components)
    if updated is None:
        raise NotFound("notice", notice_id)
    return updated


def add_override(db: Database, spec: OverrideInput, now: float) -> Override:
    """Store a validated new override."""
    return create_override(
        db,
        component_id=spec.component_id,
        status=spec.status,
        starts_at=spec.starts_at,
        ends_at=spec.ends_at,
        reason=spec.reason,
        message=spec.message,
        now=now,
    )


def patch_override(db: Database, override_id: int, body: object, now: float) -> tuple[Override, tuple[str, ...]]:
    """Change status/window/message/reason; the new window is checked against the stored one (InputError)."""
    with write_transaction(db):
        stored = get_override(db, override_id)
        if stored is None:
            raise NotFound("override", override_id)
        fields = parse_override_patch(body, stored, now)
        updated = update_override(db, override_id, **fields)
    assert updated is not None  # the write lock was held since the read
    return updated, tuple(fields)


def remove_override(db: Database, override_id: int) -> None:
    """Delete an override; NotFound when there is none."""
    if not delete_override(db, override_id):
        raise NotFound("override", override_id)
