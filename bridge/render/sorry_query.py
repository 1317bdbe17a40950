"""The request side of the Sorry(TM) status API v1: parsed filters, the links that reproduce them, and paging."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from bridge.model import Snapshot

PER_PAGE = 25
API = "/api/v1"
# The instants a filter link can spell: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
FIRST_SECOND = -62_135_596_800
LAST_SECOND = 253_402_300_799


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


def iso_s(epoch: float) -> str:
    """Epoch seconds as "2023-03-01T00:00:00" (UTC, whole seconds), the Sorry filter's timestamp form."""
    # A valid timestamp can still fall outside datetime once in UTC (0001-01-01T00:00+14:00), or round up past
    # it as a float (9999-12-31T23:59:59.999999). Clamped, the link selects the same notices: none lie out there.
    second = min(max(math.floor(epoch), FIRST_SECOND), LAST_SECOND)
    # isoformat, not strftime: %Y writes year 1 as "1", which no ISO parser takes back.
    return datetime.fromtimestamp(second, tz=timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")


def href(path: str, pairs: Sequence[tuple[str, str]]) -> str:
    """path?k=v&... with brackets and colons left readable, as in the Sorry examples."""
    if not pairs:
        return path
    return path + "?" + "&".join(f"{quote(k, safe='[]')}={quote(v, safe=':')}" for k, v in pairs)


def page_of(items: list[Any], page: int) -> list[Any]:
    """The items on page (1-based)."""
    start = (page - 1) * PER_PAGE
    return items[start : start + PER_PAGE]


def paged(key: str, items: list[Any], page: int, path: str, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """One page of items with Sorry's meta; next_page keeps the filters, null on and past the last page."""
    chunk = page_of(items, page)
    more = page * PER_PAGE < len(items)
    return {
        key: chunk,
        "meta": {
            "count": len(chunk),
            "total_count": len(items),
            "next_page": href(path, [*pairs, ("page", str(page + 1))]) if more else None,
        },
    }


def linked_ids(snap: Snapshot, ident: str) -> set[str]:
    """The id plus, for a group, its components: a group's notices include those of its children."""
    for g in snap.groups:
        if g.id == ident:
            return {ident, *(c.id for c in g.components)}
    return {ident}
