"""The Oxford-compatible services and announcements feeds (JSON-native dicts, keys in a stable order)."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from bridge.model import ComponentView, GroupView, Snapshot, Status
from bridge.notices import Notice, Override, active_overrides, timeline_state

# Oxford knows only codes 0-2. Maintenance is reported (1) but is not an outage. "No data" is 1 too:
# 0 reads "Up" to every widget, and we cannot vouch for a component nothing reports on; 2 would claim
# an outage. status_name says which it is.
STATUS_CODE: dict[Status, int] = {
    Status.UP: 0,
    Status.PARTIAL: 1,
    Status.DOWN: 2,
    Status.MAINTENANCE: 1,
    Status.NODATA: 1,
}
# The page state (bridge.page_state) as the overall code: only "operational" is 0, only "major" is 2.
PAGE_CODE: dict[str, int] = {"operational": 0, "maintenance": 1, "minor": 1, "major": 2, "unknown": 1}
STATUS_NAME: dict[Status, str] = {
    Status.UP: "Up",
    Status.PARTIAL: "Partial",
    Status.DOWN: "Down",
    Status.MAINTENANCE: "Maintenance",
    Status.NODATA: "No data",
}


def iso_utc(epoch: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC with a Z, to the second; None when absent or not a real time."""
    if epoch is None or not math.isfinite(epoch):
        return None
    try:
        moment = datetime.fromtimestamp(int(epoch), tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        # A corrupt `created` must not take the feed down.
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _override(o: Override | None) -> dict[str, Any] | None:
    """The override in force on a service, or None; only its public message, never the administrators' reason."""
    if o is None:
        return None
    return {"status": Status(o.status).value, "message": o.message, "ends_at": iso_utc(o.ends_at)}


def _service(c: ComponentView, override: Override | None = None) -> dict[str, Any]:
    """One component as an Oxford service; extra keys come after the original ones."""
    return {
        "id": c.id,
        "name": c.name,
        "status_code": STATUS_CODE[c.status],
        "status_name": STATUS_NAME[c.status],
        "status": c.status.value,
        "monitored_status": c.monitored_status.value,
        "stale": c.stale,
        "description": c.description,
        "override": _override(override),
    }


def _group(g: GroupView, overrides: dict[str, Override]) -> dict[str, Any]:
    """One group with its services."""
    return {
        "id": g.id,
        "name": g.name,
        "status_code": STATUS_CODE[g.status],
        "status_name": STATUS_NAME[g.status],
        "status": g.status.value,
        "description": g.description,
        "services": [_service(c, overrides.get(c.id)) for c in g.components],
    }


def services_feed(snap: Snapshot) -> dict[str, Any]:
    """GET /api/services.json: the page, its groups and their services."""
    page = snap.page
    return {
        "overall_status_code": PAGE_CODE[page.state],
        "overall_status_name": page.headline,
        # The monitoring data's time, not ours: a stuck Nagios must show an old timestamp.
        "last_updated": iso_utc(snap.data_created),
        "stale": bool(snap.stale),
        "stale_reason": snap.stale_reason,
        # Extras after the seed's keys: the page state by name, and whether some components are stale.
        "page_state": page.state,
        "partly_stale": page.partly_stale,
        "page": {"name": snap.page_name, "url": snap.page_url},
        # Same rule and instant as the shown status, so "override" always explains "status".
        "groups": [_group(g, active_overrides(snap.overrides, snap.generated_at)) for g in snap.groups],
    }


def _start(n: Notice) -> float:
    """When a notice began, or is planned to begin (creation time as a last resort, for ordering)."""
    if n.began_at is not None:
        return n.began_at
    return n.begins_at if n.begins_at is not None else n.created_at


def _announcement(n: Notice) -> dict[str, Any]:
    """One notice as an Oxford announcement."""
    latest = n.latest_update
    return {
        "start_time": iso_utc(_start(n)),
        "end_time": iso_utc(n.ended_at if n.ended_at is not None else n.ends_at),
        "message": f"{n.subject}: {latest.content}" if latest is not None and latest.content else n.subject,
        "last_modified": iso_utc(n.updated_at),
    }


def announcements_feed(snap: Snapshot) -> list[dict[str, Any]]:
    """GET /api/announcements.json: current and upcoming notices, earliest start first."""
    shown = [n for n in snap.notices if timeline_state(n, snap.generated_at) in ("present", "future")]
    return [_announcement(n) for n in sorted(shown, key=lambda n: (_start(n), n.id))]
