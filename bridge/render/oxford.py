"""The Oxford-compatible services and announcements feeds (JSON-native dicts, keys in a stable order)."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from bridge.model import ComponentView, GroupView, Snapshot, Status

# Oxford knows only codes 0-2: maintenance is a problem reported (1) but not an outage, and
# "no data" is not a problem reported at all, so a widget never turns red on missing data.
STATUS_CODE: dict[Status, int] = {
    Status.UP: 0,
    Status.PARTIAL: 1,
    Status.DOWN: 2,
    Status.MAINTENANCE: 1,
    Status.NODATA: 0,
}
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


def _service(c: ComponentView) -> dict[str, Any]:
    """One component as an Oxford service; extra keys come after the original ones."""
    return {
        "id": c.id,
        "name": c.name,
        "status_code": STATUS_CODE[c.status],
        "status_name": STATUS_NAME[c.status],
        "status": c.status.value,
        "monitored_status": c.monitored_status.value,
        "description": c.description,
    }


def _group(g: GroupView) -> dict[str, Any]:
    """One group with its services."""
    return {
        "id": g.id,
        "name": g.name,
        "status_code": STATUS_CODE[g.status],
        "status_name": STATUS_NAME[g.status],
        "status": g.status.value,
        "description": g.description,
        "services": [_service(c) for c in g.components],
    }


def services_feed(snap: Snapshot) -> dict[str, Any]:
    """GET /api/services.json: the page, its groups and their services."""
    return {
        "overall_status_code": STATUS_CODE[snap.status],
        "overall_status_name": snap.banner,
        # The monitoring data's time, not ours: a stuck Nagios must show an old timestamp.
        "last_updated": iso_utc(snap.data_created),
        "stale": bool(snap.stale),
        "stale_reason": snap.stale_reason,
        "page": {"name": snap.page_name, "url": snap.page_url},
        "groups": [_group(g) for g in snap.groups],
    }


def announcements_feed(snap: Snapshot) -> list[dict[str, Any]]:
    """GET /api/announcements.json: [{start_time, end_time, message, last_modified}] (no notices yet)."""
    return []
