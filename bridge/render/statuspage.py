"""Statuspage v2-compatible read API documents (summary, status, components, incidents, maintenances)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Any

from bridge.model import ComponentView, GroupView, Snapshot, Status
from bridge.notices import (
    DEGRADING_STATES,
    ENDED_STATES,
    Notice,
    NoticeUpdate,
    is_underway,
)
from bridge.render.sorry import iso_ms

# Incidents are our unplanned notices, scheduled maintenances our planned ones. We store no impact:
# an open incident is "major" when a linked component (or group) is down ("critical" when the whole
# page is), else "minor"; an ended one "minor", a false alarm "none"; maintenance is "maintenance".
# Fine values Statuspage cannot express stay visible in "status_bridge_*" keys.
LIMIT = 50  # Statuspage lists "the 50 most recent" incidents / maintenances
TIME_ZONE = "Etc/UTC"  # every timestamp we emit is UTC

# Statuspage has no "no data": like the Oxford and Sorry feeds, missing data is no claim of a problem.
# The fine value is kept in the extra "status_bridge_status" key.
COMPONENT_STATUS: dict[Status, str] = {
    Status.UP: "operational",
    Status.NODATA: "operational",
    Status.PARTIAL: "degraded_performance",
    Status.DOWN: "major_outage",
    Status.MAINTENANCE: "under_maintenance",
}
INCIDENT_STATUS = {
    "investigating": "investigating",
    "identified": "identified",
    "recovering": "monitoring",
    "resolved": "resolved",
    "false_alarm": "resolved",  # Statuspage has no false alarm; status_bridge_state keeps it
}
MAINTENANCE_STATUS = {"scheduled": "scheduled", "underway": "in_progress", "complete": "completed"}
# Ordered from best to worst; Statuspage itself reports "maintenance" when only maintenance is going on.
INDICATORS = ("none", "maintenance", "minor", "major", "critical")
INDICATOR_TEXT = {
    "none": "All Systems Operational",
    "maintenance": "Service Under Maintenance",
    "minor": "Partially Degraded Service",
    "major": "Partial System Outage",
    "critical": "Major System Outage",
}


def page_id(snap: Snapshot) -> str:
    """A stable 12-character Statuspage-style page id derived from the page URL (or name)."""
    digest = hashlib.blake2b((snap.page_url or snap.page_name).encode(), digest_size=10).digest()
    return base64.b32encode(digest).decode().lower()[:12]


def _shown(snap: Snapshot) -> dict[str, Status]:
    """Component and group id -> shown status."""
    out: dict[str, Status] = {}
    for g in snap.groups:
        out[g.id] = g.status
        out.update((c.id, c.status) for c in g.components)
    return out


def group_component_status(g: GroupView) -> str:
    """A group's Statuspage status; a mixed group takes its worst child's, some children down being a partial outage."""
    if g.status is not Status.PARTIAL:
        return COMPONENT_STATUS[g.status]
    children = {c.status for c in g.components}
    # All children down is DOWN (major_outage) above; some down is only a partial outage of the group.
    for status, name in ((Status.DOWN, "partial_outage"), (Status.PARTIAL, "degraded_performance"),
                         (Status.MAINTENANCE, "under_maintenance")):
        if status in children:
            return name
    return "operational"


def impact(snap: Snapshot, n: Notice, shown: dict[str, Status] | None = None) -> str:
    """We store no impact: derived from the linked components while open, fixed once ended."""
    if n.type == "planned":
        return "maintenance"
    if n.state == "false_alarm":
        return "none"
    if n.state in ENDED_STATES:
        # Today's component states say nothing about a past incident; a reported problem was at least minor.
        return "minor"
    shown = _shown(snap) if shown is None else shown
    if any(shown.get(cid) is Status.DOWN for cid in n.components):
        return "critical" if snap.status is Status.DOWN else "major"
    return "minor"


def indicator(snap: Snapshot) -> str:
    """The page rollup: worst of the shown component states and the impact of current incidents."""
    statuses = {c.status for g in snap.groups for c in g.components}
    if snap.status is Status.DOWN:  # every group down: our "Major problems reported"
        level = "critical"
    elif Status.DOWN in statuses:
        level = "major"
    elif Status.PARTIAL in statuses:
        level = "minor"
    elif Status.MAINTENANCE in statuses:
        level = "maintenance"
    else:
        level = "none"
    shown = _shown(snap)
    levels = [level]
    for n in snap.notices:
        # Same rule as the Sorry page state: an incident in "recovering" no longer degrades the page.
        if n.type == "unplanned" and n.state in DEGRADING_STATES:
            levels.append(impact(snap, n, shown))
        elif is_underway(n):
            levels.append("maintenance")
    return max(levels, key=INDICATORS.index)


def _page(snap: Snapshot) -> dict[str, Any]:
    """The page object every document starts with."""
    times = [c.since for g in snap.groups for c in g.components if c.since is not None]
    times += [n.updated_at for n in snap.notices]
    return {
        "id": page_id(snap),
        "name": snap.page_name,
        "url": snap.page_url,
        "time_zone": TIME_ZONE,
        "updated_at": iso_ms(max(times, default=snap.generated_at)),
        "status_bridge_stale": bool(snap.stale),
    }


def _status(snap: Snapshot) -> dict[str, str]:
    """{"indicator", "description"}."""
    level = indicator(snap)
    return {"indicator": level, "description": INDICATOR_TEXT[level]}


def _component(snap: Snapshot, c: ComponentView, position: int, created: float, pid: str) -> dict[str, Any]:
    """One component, Statuspage's keys in its order, then ours."""
    updated = c.since if c.since is not None else snap.generated_at
    return {
        "id": c.id,
        "name": c.name,
        "status": COMPONENT_STATUS[c.status],
        "created_at": iso_ms(created),
        "updated_at": iso_ms(updated),
        "position": position,
        "description": c.description or None,
        "showcase": False,
        "start_date": None,
        "group_id": c.group_id,
        "page_id": pid,
        "group": False,
        "only_show_if_degraded": False,
        "status_bridge_status": c.status.value,
        "status_bridge_monitored_status": c.monitored_status.value,
    }


def _group(snap: Snapshot, g: GroupView, position: int, created: float, pid: str) -> dict[str, Any]:
    """One group as a Statuspage group component listing its children's ids."""
    updated = max((c.since for c in g.components if c.since is not None), default=snap.generated_at)
    return {
        "id": g.id,
        "name": g.name,
        "status": group_component_status(g),
        "created_at": iso_ms(created),
        "updated_at": iso_ms(updated),
        "position": position,
        "description": g.description or None,
        "showcase": False,
        "start_date": None,
        "group_id": None,
        "page_id": pid,
        "group": True,
        "only_show_if_degraded": False,
        "components": [c.id for c in g.components],
        "status_bridge_status": g.status.value,
    }


def component_objects(snap: Snapshot) -> list[dict[str, Any]]:
    """Every group then its children, in page order; positions count from 1 within each level."""
    pid = page_id(snap)
    # We do not know when a component was configured: the earliest change we saw is the best bound.
    created = min([c.since for g in snap.groups for c in g.components if c.since is not None],
                  default=snap.generated_at)
    out: list[dict[str, Any]] = []
    for gi, g in enumerate(snap.groups, 1):
        out.append(_group(snap, g, gi, created, pid))
        out.extend(_component(snap, c, ci, created, pid) for ci, c in enumerate(g.components, 1))
    return out


def _update(n: Notice, u: NoticeUpdate) -> dict[str, Any]:
    """One incident update."""
    table = MAINTENANCE_STATUS if n.type == "planned" else INCIDENT_STATUS
    return {
        "id": str(u.id),
        "status": table.get(u.state, u.state),
        "body": u.content,
        "incident_id": str(n.id),
        "created_at": iso_ms(u.created_at),
        "updated_at": iso_ms(u.updated_at),
        "display_at": iso_ms(u.created_at),
        "affected_components": None,
        "deliver_notifications": False,
        "status_bridge_state": u.state,
    }


def _incident(snap: Snapshot, n: Notice, comps: dict[str, dict[str, Any]], shown: dict[str, Status]) -> dict[str, Any]:
    """An incident or scheduled maintenance with its updates (newest first, as Statuspage lists them)."""
    planned = n.type == "planned"
    table = MAINTENANCE_STATUS if planned else INCIDENT_STATUS
    monitoring = [u.created_at for u in n.updates if u.state == "recovering"]
    start = n.began_at if n.began_at is not None else n.begins_at
    linked = set(n.components)
    obj: dict[str, Any] = {
        "id": str(n.id),
        "name": n.subject,
        "status": table.get(n.state, n.state),
        "created_at": iso_ms(n.created_at),
        "updated_at": iso_ms(n.updated_at),
        "monitoring_at": iso_ms(monitoring[-1]) if monitoring and not planned else None,
        "resolved_at": iso_ms(n.ended_at) if n.state in ENDED_STATES else None,
        "impact": impact(snap, n, shown),
        "shortlink": notice_url(snap, n),
        "started_at": iso_ms(start if start is not None else n.created_at),
        "page_id": page_id(snap),
        "incident_updates": [_update(n, u) for u in reversed(n.updates)],
        # Links to components since removed from the config are dropped rather than invented.
        "components": [c for cid, c in comps.items() if cid in linked],
    }
    if planned:
        obj["scheduled_for"] = iso_ms(n.begins_at)
        obj["scheduled_until"] = iso_ms(n.ends_at)
    obj["status_bridge_state"] = n.state
    return obj


def notice_url(snap: Snapshot, n: Notice) -> str:
    """Where a notice is shown on the page."""
    return f"{snap.page_url.rstrip('/')}/notices/{n.id}"


def _incidents(
    snap: Snapshot, notices: Iterable[Notice], comps: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Render notices (in the snapshot's order, newest first); comps: the rendered components, if at hand."""
    by_id = {o["id"]: o for o in (component_objects(snap) if comps is None else comps)}
    shown = _shown(snap)
    return [_incident(snap, n, by_id, shown) for n in notices]


def unresolved(snap: Snapshot) -> list[Notice]:
    """Incidents not yet resolved (monitoring ones included, as on Statuspage)."""
    return [n for n in snap.notices if n.type == "unplanned" and n.state not in ENDED_STATES]


def upcoming(snap: Snapshot) -> list[Notice]:
    """Maintenance still in the scheduled state."""
    return [n for n in snap.notices if n.type == "planned" and n.state == "scheduled"]


def active(snap: Snapshot) -> list[Notice]:
    """Maintenance in progress."""
    return [n for n in snap.notices if is_underway(n)]


def status_doc(snap: Snapshot) -> dict[str, Any]:
    """GET /api/v2/status.json."""
    return {"page": _page(snap), "status": _status(snap)}


def components_doc(snap: Snapshot) -> dict[str, Any]:
    """GET /api/v2/components.json."""
    return {"page": _page(snap), "components": component_objects(snap)}


def incidents_doc(snap: Snapshot, only_unresolved: bool = False) -> dict[str, Any]:
    """GET /api/v2/incidents.json (50 most recent) or incidents/unresolved.json."""
    picked = unresolved(snap) if only_unresolved else [n for n in snap.notices if n.type == "unplanned"][:LIMIT]
    return {"page": _page(snap), "incidents": _incidents(snap, picked)}


def maintenances_doc(snap: Snapshot, which: str = "all") -> dict[str, Any]:
    """GET /api/v2/scheduled-maintenances.json (50 most recent), .../upcoming.json or .../active.json."""
    if which == "upcoming":
        picked = upcoming(snap)
    elif which == "active":
        picked = active(snap)
    else:
        picked = [n for n in snap.notices if n.type == "planned"][:LIMIT]
    return {"page": _page(snap), "scheduled_maintenances": _incidents(snap, picked)}


def summary_doc(snap: Snapshot) -> dict[str, Any]:
    """GET /api/v2/summary.json: everything, with unresolved incidents and upcoming or active maintenance."""
    maintenance = [n for n in snap.notices if n.type == "planned" and n.state in ("scheduled", "underway")]
    comps = component_objects(snap)
    return {
        "page": _page(snap),
        "components": comps,
        "incidents": _incidents(snap, unresolved(snap), comps),
        "scheduled_maintenances": _incidents(snap, maintenance, comps),
        "status": _status(snap),
    }
