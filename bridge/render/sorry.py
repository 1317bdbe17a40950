"""The Sorry(TM) status API v1 status and component documents, and the helpers the notice documents share."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from bridge.model import ComponentView, GroupView, Snapshot, Status
from bridge.notices import Notice
from bridge.render.sorry_query import API, ComponentFilter, href, page_of, paged
from bridge.status_rules import group_status

# Sorry knows three states only: partial/down both read "degraded", and so does "no data", because a
# component nothing reports on must never read "operational"; the finer value is in the extra "status" key.
STATE: dict[Status, str] = {
    Status.UP: "operational",
    Status.NODATA: "degraded",
    Status.PARTIAL: "degraded",
    Status.DOWN: "degraded",
    Status.MAINTENANCE: "under_maintenance",
}
STATE_TEXT: dict[str, str] = {
    "operational": "All systems are go!",
    "degraded": "We are experiencing problems",
    "under_maintenance": "Maintenance is underway",
}


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


@dataclass(frozen=True)
class TreeTimes:
    """created_at/updated_at epochs for the component tree, derived once per document."""

    created: float
    updated: dict[str, float]  # component or group id -> updated_at

    @classmethod
    def of(cls, snap: Snapshot) -> TreeTimes:
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


def tree_entries(snap: Snapshot) -> list[Entry]:
    """Every group and component in page order, each group followed by its children."""
    out: list[Entry] = []
    for g in snap.groups:
        out.append((g, None))
        out.extend((g, c) for c in g.components)
    return out


def entry_id(e: Entry) -> str:
    """The entry's Sorry id (our slug)."""
    return e[0].id if e[1] is None else e[1].id


def _parent(e: Entry) -> str | None:
    """Groups are top level; a component's parent is its group."""
    return None if e[1] is None else e[0].id


_NO_SUMMARY: Any = object()  # the key is left out (notice detail), unlike None which renders null


def render_entry(e: Entry, times: TreeTimes, links: bool, summary: Any = _NO_SUMMARY) -> dict[str, Any]:
    """One Sorry component: the seed's keys in its order, then our extras."""
    g, c = e
    if c is None:
        # A group's shown status follows the Oxford rule; monitored applies it to what monitoring says.
        name, desc, status, children = g.name, g.description, g.status, len(g.components)
        monitored = group_status([x.monitored_status for x in g.components])
    else:
        name, desc, status, monitored, children = c.name, c.description, c.status, c.monitored_status, 0
    ident = entry_id(e)
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
    times = TreeTimes.of(snap)
    return [render_entry(e, times, links) for e in tree_entries(snap)]


def _count_components(snap: Snapshot) -> int:
    """Groups plus components."""
    return sum(1 + len(g.components) for g in snap.groups)


def status_doc(snap: Snapshot) -> dict[str, Any]:
    """GET /api/v1/status: the page state and links to the collections."""
    times = TreeTimes.of(snap)
    created = min([times.created, *(n.created_at for n in snap.notices)])
    updated = max([*times.updated.values(), *(n.updated_at for n in snap.notices)], default=snap.generated_at)
    return {
        "page": {
            "name": snap.page_name,
            "state": snap.sorry_state,
            "state_text": STATE_TEXT.get(snap.sorry_state, snap.sorry_state),
            "url": snap.page_url,
            "links": {
                "components": {"href": f"{API}/components", "count": _count_components(snap)},
                "notices": {"href": f"{API}/notices", "count": len(snap.notices)},
            },
            "created_at": iso_ms(created),
            "updated_at": iso_ms(updated),
            # Extras: the page state every other surface shows (state above keeps Sorry's notice-driven
            # meaning), and whether the monitoring data is stale.
            "monitored_state": snap.page.state,
            "monitored_state_text": snap.page.headline,
            "stale": bool(snap.stale),
        }
    }


Summaries = Callable[[list[str]], Mapping[str, Any]]  # ids on the page -> metrics_summary (None renders null)


def _picked(snap: Snapshot, flt: ComponentFilter) -> list[Entry]:
    """The tree entries the filter keeps, in page order."""
    return [
        e
        for e in tree_entries(snap)
        if (flt.parent_id_null is None or (_parent(e) is None) == flt.parent_id_null)
        and (flt.parent_id_eq is None or _parent(e) == flt.parent_id_eq)
    ]


def page_ids(snap: Snapshot, flt: ComponentFilter, page: int) -> list[str]:
    """The ids components_doc renders (and asks summaries for) on this page."""
    return [entry_id(e) for e in page_of(_picked(snap, flt), page)]


def components_doc(snap: Snapshot, flt: ComponentFilter, page: int, summaries: Summaries | None = None) -> dict[str, Any]:
    """GET /api/v1/components: filtered, paginated components, with a metrics_summary each when summaries is given."""
    doc = paged("components", _picked(snap, flt), page, f"{API}/components", flt.pairs())
    # Render only the page being served: big sites have thousands of components.
    times = TreeTimes.of(snap)
    found = summaries([entry_id(e) for e in doc["components"]]) if summaries is not None else None
    doc["components"] = [
        render_entry(e, times, True, _NO_SUMMARY if found is None else found.get(entry_id(e))) for e in doc["components"]
    ]
    return doc


def find_notice(snap: Snapshot, notice_id: int) -> Notice | None:
    """The snapshot's notice with this id, or None."""
    return next((n for n in snap.notices if n.id == notice_id), None)
