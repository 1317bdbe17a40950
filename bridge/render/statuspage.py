"""Statuspage v2-compatible read API documents, and the incident and scheduled-maintenance objects in them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from bridge.model import Snapshot, Status
from bridge.notices import ENDED_STATES, Notice, NoticeUpdate, is_underway, notice_url
from bridge.render.sorry import iso_ms
from bridge.render.statuspage_components import (
    COMPONENT_STATUS,
    component_objects,
    impact,
    page_id,
    page_object,
    shown_statuses,
    status_object,
)

if TYPE_CHECKING:  # the types only: reading the history is bridge.affected's (an edge), rendering stays pure
    from bridge.affected import Change, Changes

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


def _affected(changes: tuple[Change, ...] | None, names: Mapping[str, str]) -> list[dict[str, str]] | None:
    """An update's affected_components; null (as Statuspage sends for an update that set none) when none is known."""
    found = [{"code": c.component_id, "name": names[c.component_id], "old_status": COMPONENT_STATUS[c.old],
              "new_status": COMPONENT_STATUS[c.new]} for c in changes or () if c.component_id in names]
    return found or None


def _update(n: Notice, u: NoticeUpdate, changes: Changes | None, names: Mapping[str, str]) -> dict[str, Any]:
    """One incident update, Statuspage's keys in its order, then ours."""
    table = MAINTENANCE_STATUS if n.type == "planned" else INCIDENT_STATUS
    return {
        "id": str(u.id),
        "status": table.get(u.state, u.state),
        "body": u.content,
        "incident_id": str(n.id),
        "created_at": iso_ms(u.created_at),
        "updated_at": iso_ms(u.updated_at),
        "display_at": iso_ms(u.created_at),
        "affected_components": _affected(None if changes is None else changes.get(u.id), names),
        "deliver_notifications": False,
        "custom_tweet": None,
        "tweet_id": None,
        "status_bridge_state": u.state,
    }


def _incident(snap: Snapshot, n: Notice, comps: dict[str, dict[str, Any]], shown: dict[str, Status],
              changes: Changes | None, names: Mapping[str, str]) -> dict[str, Any]:
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
        "shortlink": notice_url(snap.page_url, n),
        "started_at": iso_ms(start if start is not None else n.created_at),
        "page_id": page_id(snap),
        "incident_updates": [_update(n, u, changes, names) for u in reversed(n.updates)],
        # Links to components since removed from the config are dropped rather than invented.
        "components": [c for cid, c in comps.items() if cid in linked],
        "reminder_intervals": None,
    }
    if planned:
        obj["scheduled_for"] = iso_ms(n.begins_at)
        obj["scheduled_until"] = iso_ms(n.ends_at)
    obj["status_bridge_state"] = n.state
    return obj


def _incidents(snap: Snapshot, notices: Iterable[Notice], changes: Changes | None,
               comps: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Render notices (in the snapshot's order, newest first); comps: the rendered components, if at hand."""
    by_id = {o["id"]: o for o in (component_objects(snap) if comps is None else comps)}
    shown = shown_statuses(snap)
    names = {o["id"]: o["name"] for o in by_id.values() if not o["group"]}
    return [_incident(snap, n, by_id, shown, changes, names) for n in notices]


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


def recent(snap: Snapshot, type_: str) -> list[Notice]:
    """The 50 most recent incidents ("unplanned") or maintenances ("planned")."""
    return [n for n in snap.notices if n.type == type_][:LIMIT]


def summarised(snap: Snapshot) -> list[Notice]:
    """Maintenance the summary lists: upcoming or in progress."""
    return [n for n in snap.notices if n.type == "planned" and n.state in ("scheduled", "underway")]


def listed(snap: Snapshot) -> list[Notice]:
    """Every notice some document here lists: the updates whose component statuses are read from the history."""
    picked = [*recent(snap, "unplanned"), *unresolved(snap), *recent(snap, "planned"), *summarised(snap)]
    return list({n.id: n for n in picked}.values())


def incidents_doc(snap: Snapshot, changes: Changes | None = None, only_unresolved: bool = False) -> dict[str, Any]:
    """GET /api/v2/incidents.json (50 most recent) or incidents/unresolved.json."""
    picked = unresolved(snap) if only_unresolved else recent(snap, "unplanned")
    return {"page": page_object(snap), "incidents": _incidents(snap, picked, changes)}


def maintenances_doc(snap: Snapshot, changes: Changes | None = None, which: str = "all") -> dict[str, Any]:
    """GET /api/v2/scheduled-maintenances.json (50 most recent), .../upcoming.json or .../active.json."""
    if which == "upcoming":
        picked = upcoming(snap)
    elif which == "active":
        picked = active(snap)
    else:
        picked = recent(snap, "planned")
    return {"page": page_object(snap), "scheduled_maintenances": _incidents(snap, picked, changes)}


def summary_doc(snap: Snapshot, changes: Changes | None = None) -> dict[str, Any]:
    """GET /api/v2/summary.json: everything, with unresolved incidents and upcoming or active maintenance."""
    comps = component_objects(snap)
    return {
        "page": page_object(snap),
        "components": comps,
        "incidents": _incidents(snap, unresolved(snap), changes, comps),
        "scheduled_maintenances": _incidents(snap, summarised(snap), changes, comps),
        "status": status_object(snap),
    }
