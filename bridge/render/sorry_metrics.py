"""Sorry(TM) component metrics documents (seed 003): metrics_summary and GET /api/v1/components/{id}/metrics."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Any
from urllib.parse import quote

from bridge.model import Snapshot
from bridge.render.sorry_query import API, NoticeFilter, href, linked_ids
from bridge.uptime import Metrics, duration_words, impact_overlaps, percent_words


def entry_name(snap: Snapshot, ident: str) -> str | None:
    """The name of the group or component with this id, None when there is none."""
    for g in snap.groups:
        if g.id == ident:
            return g.name
        for c in g.components:
            if c.id == ident:
                return c.name
    return None


def _metrics_url(snap: Snapshot, ident: str) -> str:
    """The page's (future) metrics view of a component."""
    return f"{snap.page_url.rstrip('/')}/components/{quote(ident, safe='')}/metrics"


def metrics_summary(snap: Snapshot, ident: str, first: date, last: date, m: Metrics) -> dict[str, Any]:
    """A component's metrics_summary in /api/v1/components (the past 30 days); percent null when nothing is known."""
    return {
        "timeframe_start": first.isoformat(),
        "timeframe_end": last.isoformat(),
        "percentage_uptime": {"percent": m.percent, "words": percent_words(m.percent)},
        "url": _metrics_url(snap, ident),
    }


def _duration(seconds: float) -> dict[str, Any]:
    """{seconds, words} in whole seconds, as the seed's metrics."""
    return {"seconds": round(seconds), "words": duration_words(round(seconds))}


def notices_in(snap: Snapshot, ids: Collection[str], start: float, end: float, now: float) -> int:
    """How many notices linked to ids had impact within [start, end]: what the metrics' notices href lists."""
    return sum(1 for n in snap.notices if not set(ids).isdisjoint(n.components) and impact_overlaps(n, start, end, now))


def metrics_doc(
    snap: Snapshot, ident: str, first: date, last: date, m: Metrics, window: tuple[float, float], now: float, data: bool
) -> dict[str, Any]:
    """GET /api/v1/components/{id}/metrics; window is the notices filter's [start, end] (both inclusive)."""
    name = entry_name(snap, ident)
    query = [("past_x_days", "custom"), ("timeframe_end", last.isoformat()), ("timeframe_start", first.isoformat())]
    doc: dict[str, Any] = {
        "component": {"id": ident, "name": name},
        "timeframe_start": first.isoformat(),
        "timeframe_end": last.isoformat(),
        "percentage_uptime": {
            "percent": m.percent,
            "words": percent_words(m.percent),
            # Over the monitored time only: time nobody monitored is neither up nor down.
            "calculation": "100 - ((total_impact_time / (total_time - total_unknown_time)) * 100)",
        },
        # Divided by impact episodes (merged outages and incidents), not by notices: an outage nobody
        # wrote a notice for still counts, and two notices about one outage count once.
        "mean_time_to_recovery": {**_duration(m.mttr), "calculation": "total_impact_time / impact_episodes.count"},
        "mean_time_between_failures": {
            **_duration(m.mtbf),
            "calculation": "(total_time - total_unknown_time - total_impact_time) / impact_episodes.count",
        },
        "url": href(_metrics_url(snap, ident), query),
    }
    if data:
        flt = NoticeFilter(components_id=ident, impact_overlaps=window)
        doc["calculation_data_in_timeframe"] = {
            "total_time": _duration(m.total_time),
            "total_impact_time": _duration(m.impact_time),
            "notices": {
                "href": href(f"{API}/notices", flt.pairs()),
                "count": notices_in(snap, linked_ids(snap, ident), *window, now),
            },
            # Extras: the divisor above, and time with no known status (stale data, before the first record),
            # which the calculations above leave out.
            "impact_episodes": {"count": m.episodes},
            "total_unknown_time": _duration(m.unknown_time),
        }
    return doc
