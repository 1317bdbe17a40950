"""Statuspage v2-compatible read API documents, and the incident and scheduled-maintenance objects in them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bridge.model import Snapshot, Status
from bridge.notices import ENDED_STATES, Notice, NoticeUpdate, is_underway
from bridge.render.sorry import iso_ms
from bridge.render.statuspage_components import (
    component_objects,
    impact,
    page_id,
    page_object,
    shown_statuses,
    status_object,
)

# Incidents are our unplanned notices, scheduled maintenances our planned ones; their impact is
# derived (statuspage_components.impact). Fine values Statuspage cannot express stay visible in
# "status_bridge_*" keys.
LIMIT = 50  # Statuspage lists "the 50 most recent" incidents / maintenances
INCIDENT_STATUS = {
    "investigating": "investigating",
    "identified": "identified",
    "recovering": "monitoring",
    "resolved": "resolved",
    "false_alarm": "resolved",  # Statuspage has no false alarm; status_bridge_state keeps it
}
MAINTENANCE_STATUS = {"scheduled": "scheduled", "underway": "in_progress", "complete": "completed"}


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
    shown = shown_statuses(snap)
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
    return {"page": page_object(snap), "status": status_object(snap)}


def components_doc(snap: Snapshot) -> dict[str, Any]:
    """GET /api/v2/components.json."""
    return {"page": page_object(snap), "components": component_objects(snap)}


def incidents_doc(snap: Snapshot, only_unresolved: bool = False) -> dict[str, Any]:
    """GET /api/v2/incidents.json (50 most recent) or incidents/unresolved.json."""
    picked = unresolved(snap) if only_unresolved else [n for n in snap.notices if n.type == "unplanned"][:LIMIT]
    return {"page": page_object(snap), "incidents": _incidents(snap, picked)}


def maintenances_doc(snap: Snapshot, which: str = "all") -> dict[str, Any]:
    """GET /api/v2/scheduled-maintenances.json (50 most recent), .../upcoming.json or .../active.json."""
    if which == "upcoming":
        picked = upcoming(snap)
    elif which == "active":
        picked = active(snap)
    else:
        picked = [n for n in snap.notices if n.type == "planned"][:LIMIT]
    return {"page": page_object(snap), "scheduled_maintenances": _incidents(snap, picked)}


def summary_doc(snap: Snapshot) -> dict[str, Any]:
    """GET /api/v2/summary.json: everything, with unresolved incidents and upcoming or active maintenance."""
    maintenance = [n for n in snap.notices if n.type == "planned" and n.state in ("scheduled", "underway")]
    comps = component_objects(snap)
    return {
        "page": page_object(snap),
        "components": comps,
        "incidents": _incidents(snap, unresolved(snap), comps),
        "scheduled_maintenances": _incidents(snap, maintenance, comps),
        "status": status_object(snap),
    }
