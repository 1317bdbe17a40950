"""The Sorry(TM) status API v1 notice documents: pure functions of a Snapshot and `now`."""

from __future__ import annotations

from typing import Any

from bridge.model import Snapshot
from bridge.notices import Notice, NoticeUpdate, notice_url, timeline_state
from bridge.render.sorry import TreeTimes, entry_id, iso_ms, render_entry, tree_entries
from bridge.render.sorry_query import API, NoticeFilter, linked_ids, paged
from bridge.uptime import duration_words, impact_overlaps, notice_impact


def _update_object(u: NoticeUpdate) -> dict[str, Any]:
    """One progress update."""
    return {
        "state": u.state,
        "content": u.content,
        "created_at": iso_ms(u.created_at),
        "updated_at": iso_ms(u.updated_at),
    }


def impact_time(n: Notice, now: float) -> dict[str, Any] | None:
    """An unplanned notice's impact {seconds, words} (lower case, as the seed's notices); None for planned ones."""
    if n.type != "unplanned":
        return None
    span = notice_impact(n, now)  # None for a false alarm: it had no impact
    seconds = 0 if span is None else round(span[1] - span[0])
    return {"seconds": seconds, "words": duration_words(seconds, title=False)}


def notice_object(snap: Snapshot, n: Notice, timeline: str, now: float) -> dict[str, Any]:
    """A notice as listed (no components, latest update only); timeline is its timeline_state now."""
    obj: dict[str, Any] = {
        "id": n.id,
        "type": n.type,
        "timeline_state": timeline,
        "state": n.state,
        "subject": n.subject,
        "url": notice_url(snap.page_url, n),
    }
    if n.type == "planned":
        obj["begins_at"] = iso_ms(n.begins_at)
        obj["ends_at"] = iso_ms(n.ends_at)
    obj["began_at"] = iso_ms(n.began_at)
    obj["ended_at"] = iso_ms(n.ended_at)
    obj["created_at"] = iso_ms(n.created_at)
    obj["updated_at"] = iso_ms(n.updated_at)
    if (impact := impact_time(n, now)) is not None:
        obj["impact_time"] = impact
    obj["links"] = {"self": f"{API}/notices/{n.id}"}
    latest = n.latest_update
    obj["latest_update"] = _update_object(latest) if latest is not None else None
    return obj


def notices_doc(snap: Snapshot, flt: NoticeFilter, page: int, now: float, recent_days: float) -> dict[str, Any]:
    """GET /api/v1/notices: filtered, paginated notices, newest first (the snapshot's order)."""
    picked: list[tuple[Notice, str]] = []
    linked = linked_ids(snap, flt.components_id) if flt.components_id is not None else None
    for n in snap.notices:
        if flt.type_eq is not None and n.type != flt.type_eq:
            continue
        if linked is not None and linked.isdisjoint(n.components):
            continue
        if flt.impact_overlaps is not None and not impact_overlaps(n, *flt.impact_overlaps, now):
            continue
        tl = timeline_state(n, now, recent_days)
        if flt.timeline_state_eq is None or tl == flt.timeline_state_eq:
            picked.append((n, tl))
    doc = paged("notices", picked, page, f"{API}/notices", flt.pairs())
    # Render only the page being served, not every match.
    doc["notices"] = [notice_object(snap, n, tl, now) for n, tl in doc["notices"]]
    return doc


def notice_doc(snap: Snapshot, n: Notice, now: float, recent_days: float) -> dict[str, Any]:
    """GET /api/v1/notices/{id}: the notice with its components (page order) and every update, oldest first."""
    obj = notice_object(snap, n, timeline_state(n, now, recent_days), now)
    linked = set(n.components)
    # A link to a component since removed from the config is dropped rather than invented.
    times = TreeTimes.of(snap)
    obj["components"] = [render_entry(e, times, False) for e in tree_entries(snap) if entry_id(e) in linked]
    obj["updates"] = [_update_object(u) for u in n.updates]
    return {"notice": obj}
