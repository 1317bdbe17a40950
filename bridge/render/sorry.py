"""The Sorry(TM) status API v1 documents (seeds 001/003/004): pure functions of a Snapshot and `now`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from bridge.aggregate import group_status
from bridge.model import ComponentView, GroupView, Snapshot, Status
from bridge.notices import Notice, NoticeUpdate, timeline_state
from bridge.uptime import duration_words, impact_overlaps, notice_impact

PER_PAGE = 25
API = "/api/v1"

# Sorry knows three states only. "No data" is no claim of a problem (as in the Oxford feed),
# and partial/down both read "degraded"; the finer value is kept in the extra "status" key.
STATE: dict[Status, str] = {
    Status.UP: "operational",
    Status.NODATA: "operational",
    Status.PARTIAL: "degraded",
    Status.DOWN: "degraded",
    Status.MAINTENANCE: "under_maintenance",
}
STATE_TEXT: dict[str, str] = {
    "operational": "All systems are go!",
    "degraded": "We are experiencing problems",
    "under_maintenance": "Maintenance is underway",
}


@dataclass(frozen=True)
class ComponentFilter:
    """Parsed filter[parent_id_null] / filter[parent_id_eq]; None means not given."""

    parent_id_null: bool | None = None
    parent_id_eq: str | None = None

    def pairs(self) -> list[tuple[str, str]]:
        """The query pairs that reproduce this filter, in a stable order."""
        out: list[tuple[str, str]] = []
        if self.parent_id_null is not None:
            out.append(("filter[parent_id_null]", "true" if self.parent_id_null else "false"))
        if self.parent_id_eq is not None:
            out.append(("filter[parent_id_eq]", self.parent_id_eq))
        return out


@dataclass(frozen=True)
class NoticeFilter:
    """Parsed notice filters; None means not given. impact_overlaps is an epoch pair [from, to], both inclusive."""

    type_eq: str | None = None
    timeline_state_eq: str | None = None
    components_id: str | None = None
    impact_overlaps: tuple[float, float] | None = None

    def pairs(self) -> list[tuple[str, str]]:
        """The query pairs that reproduce this filter, in a stable order."""
        out: list[tuple[str, str]] = []
        if self.type_eq is not None:
            out.append(("filter[type_eq]", self.type_eq))
        if self.timeline_state_eq is not None:
            out.append(("filter[timeline_state_eq]", self.timeline_state_eq))
        if self.components_id is not None:
            out.append(("filter[components_id]", self.components_id))
        if self.impact_overlaps is not None:
            out += [("filter[impact_timeframe_overlaps][]", iso_s(t)) for t in self.impact_overlaps]
        return out


def iso_ms(epoch: float | None) -> str | None:
    """Epoch seconds as "2023-01-01T00:00:00.000Z" (UTC, milliseconds); None when absent or not a real time."""
    if epoch is None or not math.isfinite(epoch):
        return None
    # Whole milliseconds first, so 0.9999 s never prints as ".1000".
    millis = math.floor(epoch * 1000)
    try:
        moment = datetime.fromtimestamp(millis // 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis % 1000:03d}Z"


def iso_s(epoch: float) -> str:
    """Epoch seconds as "2023-03-01T00:00:00" (UTC, whole seconds), the Sorry filter's timestamp form."""
    return datetime.fromtimestamp(math.floor(epoch), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def href(path: str, pairs: Sequence[tuple[str, str]]) -> str:
    """path?k=v&... with brackets and colons left readable, as in the Sorry examples."""
    if not pairs:
        return path
    return path + "?" + "&".join(f"{quote(k, safe='[]')}={quote(v, safe=':')}" for k, v in pairs)


@dataclass(frozen=True)
class _Times:
    """created_at/updated_at epochs for the component tree, derived once per document."""

    created: float
    updated: dict[str, float]  # component or group id -> updated_at

    @classmethod
    def of(cls, snap: Snapshot) -> _Times:
        """created = earliest known change (else generated_at); a group is as new as its newest child."""
        known = [c.since for g in snap.groups for c in g.components if c.since is not None]
        created = min([*known, snap.generated_at])
        updated: dict[str, float] = {}
        for g in snap.groups:
            for c in g.components:
                updated[c.id] = c.since if c.since is not None else snap.generated_at
            updated[g.id] = max((updated[c.id] for c in g.components), default=snap.generated_at)
        return cls(created, updated)


# A tree entry: a group (component None) or one of its components; rendered only when served.
Entry = tuple[GroupView, ComponentView | None]


def _entries(snap: Snapshot) -> list[Entry]:
    """Every group and component in page order, each group followed by its children."""
    out: list[Entry] = []
    for g in snap.groups:
        out.append((g, None))
        out.extend((g, c) for c in g.components)
    return out


def _id(e: Entry) -> str:
    """The entry's Sorry id (our slug)."""
    return e[0].id if e[1] is None else e[1].id


def _parent(e: Entry) -> str | None:
    """Groups are top level; a component's parent is its group."""
    return None if e[1] is None else e[0].id


_NO_SUMMARY: Any = object()  # the key is left out (notice detail), unlike None which renders null


def _render(e: Entry, times: _Times, links: bool, summary: Any = _NO_SUMMARY) -> dict[str, Any]:
    """One Sorry component: the seed's keys in its order, then our extras."""
    g, c = e
    if c is None:
        # A group's shown status follows the Oxford rule; monitored applies it to what monitoring says.
        name, desc, status, children = g.name, g.description, g.status, len(g.components)
        monitored = group_status([x.monitored_status for x in g.components])
    else:
        name, desc, status, monitored, children = c.name, c.description, c.status, c.monitored_status, 0
    ident = _id(e)
    obj: dict[str, Any] = {
        "id": ident,
        "state": STATE[status],
        "name": name,
        "description": desc,
        "parent_id": _parent(e),
    }
    if summary is not _NO_SUMMARY:
        obj["metrics_summary"] = summary
    if links:
        link = href(f"{API}/components", [("filter[parent_id_eq]", ident)])
        obj["links"] = {"children": {"href": link, "count": children}}
    obj["created_at"] = iso_ms(times.created)
    obj["updated_at"] = iso_ms(times.updated[ident])
    obj["status"] = status.value
    obj["monitored_status"] = monitored.value
    return obj


def component_objects(snap: Snapshot, links: bool = True) -> list[dict[str, Any]]:
    """Every group and component rendered, in page order."""
    times = _Times.of(snap)
    return [_render(e, times, links) for e in _entries(snap)]


def _count_components(snap: Snapshot) -> int:
    """Groups plus components."""
    return sum(1 + len(g.components) for g in snap.groups)


def _paged(key: str, items: list[Any], page: int, path: str, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """One page of items with Sorry's meta; next_page keeps the filters, null on and past the last page."""
    start = (page - 1) * PER_PAGE
    chunk = items[start : start + PER_PAGE]
    more = start + PER_PAGE < len(items)
    return {
        key: chunk,
        "meta": {
            "count": len(chunk),
            "total_count": len(items),
            "next_page": href(path, [*pairs, ("page", str(page + 1))]) if more else None,
        },
    }


def status_doc(snap: Snapshot) -> dict[str, Any]:
    """GET /api/v1/status: the page state and links to the collections."""
    times = _Times.of(snap)
    created = min([times.created, *(n.created_at for n in snap.notices)])
    updated = max([*times.updated.values(), *(n.updated_at for n in snap.notices)], default=snap.generated_at)
    return {
        "page": {
            "name": snap.page_name,
            "state": snap.page_state,
            "state_text": STATE_TEXT.get(snap.page_state, snap.page_state),
            "url": snap.page_url,
            "links": {
                "components": {"href": f"{API}/components", "count": _count_components(snap)},
                "notices": {"href": f"{API}/notices", "count": len(snap.notices)},
            },
            "created_at": iso_ms(created),
            "updated_at": iso_ms(updated),
            # Extras: what monitoring says of the whole page, and whether that data is stale.
            "status": snap.status.value,
            "stale": bool(snap.stale),
        }
    }


Summaries = Callable[[list[str]], Mapping[str, Any]]  # ids on the page -> metrics_summary (None renders null)


def components_doc(snap: Snapshot, flt: ComponentFilter, page: int, summaries: Summaries | None = None) -> dict[str, Any]:
    """GET /api/v1/components: filtered, paginated components, with a metrics_summary each when summaries is given."""
    picked = [
        e
        for e in _entries(snap)
        if (flt.parent_id_null is None or (_parent(e) is None) == flt.parent_id_null)
        and (flt.parent_id_eq is None or _parent(e) == flt.parent_id_eq)
    ]
    doc = _paged("components", picked, page, f"{API}/components", flt.pairs())
    # Render only the page being served: big sites have thousands of components.
    times = _Times.of(snap)
    found = summaries([_id(e) for e in doc["components"]]) if summaries is not None else None
    doc["components"] = [
        _render(e, times, True, _NO_SUMMARY if found is None else found.get(_id(e))) for e in doc["components"]
    ]
    return doc


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
        "url": f"{snap.page_url.rstrip('/')}/notices/{n.id}-{n.slug}",
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
    doc = _paged("notices", picked, page, f"{API}/notices", flt.pairs())
    # Render only the page being served, not every match.
    doc["notices"] = [notice_object(snap, n, tl, now) for n, tl in doc["notices"]]
    return doc


def find_notice(snap: Snapshot, notice_id: int) -> Notice | None:
    """The snapshot's notice with this id, or None."""
    return next((n for n in snap.notices if n.id == notice_id), None)


def notice_doc(snap: Snapshot, n: Notice, now: float, recent_days: float) -> dict[str, Any]:
    """GET /api/v1/notices/{id}: the notice with its components (page order) and every update, oldest first."""
    obj = notice_object(snap, n, timeline_state(n, now, recent_days), now)
    linked = set(n.components)
    # A link to a component since removed from the config is dropped rather than invented.
    times = _Times.of(snap)
    obj["components"] = [_render(e, times, False) for e in _entries(snap) if _id(e) in linked]
    obj["updates"] = [_update_object(u) for u in n.updates]
    return {"notice": obj}


# --- notice filters shared with the component metrics ----------------------------------------------


def linked_ids(snap: Snapshot, ident: str) -> set[str]:
    """The id plus, for a group, its components: a group's notices include those of its children."""
    for g in snap.groups:
        if g.id == ident:
            return {ident, *(c.id for c in g.components)}
    return {ident}
