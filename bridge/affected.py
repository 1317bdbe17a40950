"""What each notice update found its components showing: old and new shown status, from the recorded history."""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from sqlite_utils import Database

from bridge.db_thread import Closed, DbThread
from bridge.history import EFFECTIVE, HistoryRecorder, Record, read_history
from bridge.model import Snapshot, Status
from bridge.notices import Notice, NoticeUpdate

log = logging.getLogger("bridge.affected")

# History values that claim a status; "nodata" (never checked) and "unknown" (stale data) claim none.
KNOWN = {s.value: s for s in (Status.UP, Status.PARTIAL, Status.DOWN, Status.MAINTENANCE)}
Rows = Sequence[tuple[float, str]]  # (at, status) by time, as read_history returns them


class Change(NamedTuple):
    """One linked component around one update: shown just before it (old) and at it (new)."""

    component_id: str
    old: Status
    new: Status


Changes = Mapping[int, tuple[Change, ...]]  # update id -> components whose old and new status are both known
NONE: Changes = {}


def linked_components(snap: Snapshot, n: Notice) -> list[str]:
    """The notice's components in page order; a linked group stands for its components, unconfigured ids drop out."""
    linked = set(n.components)
    return [c.id for g in snap.groups for c in g.components if c.id in linked or g.id in linked]


def status_at(rows: Rows, at: float, inclusive: bool) -> Status | None:
    """The known status the rows say held at `at` (a row exactly at `at` counts when inclusive), else None."""
    times = [r[0] for r in rows]
    i = (bisect.bisect_right if inclusive else bisect.bisect_left)(times, at)
    return KNOWN.get(rows[i - 1][1]) if i else None


def update_changes(rows: Mapping[str, Rows], updates: Sequence[NoticeUpdate]) -> dict[int, tuple[Change, ...]]:
    """Per update (oldest first): old = the status at the previous update (before the first: just before it), new = at it."""
    out: dict[int, tuple[Change, ...]] = {}
    for k, u in enumerate(updates):
        found = []
        for cid, history in rows.items():
            old = (status_at(history, updates[k - 1].created_at, True) if k
                   else status_at(history, u.created_at, False))
            new = status_at(history, u.created_at, True)
            if old is not None and new is not None:
                found.append(Change(cid, old, new))
        out[u.id] = tuple(found)
    return out


def read_changes(db: Database, snap: Snapshot, notices: Iterable[Notice],
                 pending: Mapping[str, Record] | None = None) -> dict[int, tuple[Change, ...]]:
    """Changes of every update of the notices; pending: the newest record per component not yet known to be written."""
    out: dict[int, tuple[Change, ...]] = {}
    for n in notices:
        ids = linked_components(snap, n)
        if not ids or not n.updates:
            continue
        start, end = n.updates[0].created_at, math.nextafter(n.updates[-1].created_at, math.inf)
        rows: dict[str, Rows] = {}
        for cid in ids:
            found = read_history(db, cid, EFFECTIVE, start, end)
            last = (pending or {}).get(cid)
            # The history writer may not have stored the newest change yet: add the recorder's copy (a row
            # already stored twice changes no status at any instant).
            rows[cid] = sorted([*found, (last.at, last.status)], key=lambda r: r[0]) if last is not None else found
        out.update(update_changes(rows, n.updates))
    return out


class ChangeReader:
    """Reads Changes for a generation in the database reader thread (see bridge.db_thread)."""

    def __init__(self, reader: DbThread, recorder: HistoryRecorder | None) -> None:
        self.reader, self.recorder = reader, recorder

    def _pending(self, snap: Snapshot, notices: Sequence[Notice]) -> dict[str, Record]:
        """The recorder's newest effective record per linked component (taken on the loop, where it changes)."""
        if self.recorder is None:
            return {}
        last, wanted = self.recorder.last, {cid for n in notices for cid in n.components}
        # One pass over the page, not one per notice: this runs on the loop.
        ids = [c.id for g in snap.groups for c in g.components if c.id in wanted or g.id in wanted]
        return {cid: r for cid in ids if (r := last.get((cid, EFFECTIVE))) is not None}

    async def read(self, snap: Snapshot, notices: Sequence[Notice]) -> Changes:
        """The changes of the notices' updates; NONE (logged) when the database cannot be read."""
        pending = self._pending(snap, notices)
        try:
            return await self.reader.call(read_changes, snap, notices, pending)
        except Closed:
            return NONE  # shutting down: nobody is served these documents any more
        except Exception:
            # History is never a reason to stop publishing: every update then says it knows no component status.
            log.exception("reading the status history for the Statuspage documents failed")
            return NONE
