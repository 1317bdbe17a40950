"""Statuspage v2 page object, component objects and the page rollup (indicator, incident impact)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from bridge.model import ComponentView, GroupView, Snapshot, Status
from bridge.notices import DEGRADING_STATES, ENDED_STATES, Notice
from bridge.render.sorry import iso_ms

TIME_ZONE = "Etc/UTC"  # every timestamp we emit is UTC

# Statuspage has no "no data", and a consumer reading only "status" must never take a component nothing
# reports on for operational: its mildest other value, degraded_performance, claims no outage. The fine
# value is kept in the extra "status_bridge_status" key ("nodata").
COMPONENT_STATUS: dict[Status, str] = {
    Status.UP: "operational",
    Status.NODATA: "degraded_performance",
    Status.PARTIAL: "degraded_performance",
    Status.DOWN: "major_outage",
    Status.MAINTENANCE: "under_maintenance",
}
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


def shown_statuses(snap: Snapshot) -> dict[str, Status]:
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


# An open incident is "major" when a linked component (or group) is down ("critical" when the whole
# page is), else "minor"; an ended one "minor", a false alarm "none"; maintenance is "maintenance".
def impact(snap: Snapshot, n: Notice, shown: dict[str, Status] | None = None) -> str:
    """We store no impact: derived from the linked components while open, fixed once ended."""
    if n.type == "planned":
        return "maintenance"
    if n.state == "false_alarm":
        return "none"
    if n.state in ENDED_STATES:
        # Today's component states say nothing about a past incident; a reported problem was at least minor.
        return "minor"
    shown = shown_statuses(snap) if shown is None else shown
    if any(shown.get(cid) is Status.DOWN for cid in n.components):
        return "critical" if snap.page.state == "major" else "major"
    return "minor"


# The page state (bridge.page_state) as the indicator; "minor" is split as Statuspage rolls it up.
# "unknown" is "minor" (a standard value that is not "none"), with the reason in the description.
PAGE_INDICATOR = {"unknown": "minor", "major": "critical", "maintenance": "maintenance", "operational": "none"}


def indicator(snap: Snapshot) -> str:
    """The page state as a Statuspage indicator; problems are "major" when a component is down or an incident says so."""
    level = PAGE_INDICATOR.get(snap.page.state)
    if level is not None:
        return level
    if any(c.status is Status.DOWN for g in snap.groups for c in g.components):
        return "major"
    shown = shown_statuses(snap)
    # Same rule as the page state: an incident in "recovering" no longer degrades the page.
    levels = [impact(snap, n, shown) for n in snap.notices if n.type == "unplanned" and n.state in DEGRADING_STATES]
    return max(["minor", *levels], key=INDICATORS.index)


def page_object(snap: Snapshot) -> dict[str, Any]:
    """The page object every document starts with."""
    times = [c.since for g in snap.groups for c in g.components if c.since is not None]
    times += [n.updated_at for n in snap.notices]
    return {
        "id": page_id(snap),
        "name": snap.page_name,
        # Without [page] url the bridge cannot know its public address: the page's root-relative path.
        "url": snap.page_url or "/",
        "time_zone": TIME_ZONE,
        "updated_at": iso_ms(max(times, default=snap.generated_at)),
        "status_bridge_stale": bool(snap.stale),
    }


def status_object(snap: Snapshot) -> dict[str, str]:
    """{"indicator", "description"}."""
    level = indicator(snap)
    text = snap.page.headline if snap.page.state == "unknown" else INDICATOR_TEXT[level]
    return {"indicator": level, "description": text}


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
