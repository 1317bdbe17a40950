"""One scenario per page state (and the ways into "unknown"), fed to a real app built from web_config().

web_config() has group web (website: web-1 HTTP*) and group data (database: db-1 PostgreSQL). The
HTTP table (tests/test_page_state.py) and the Chromium checks (tests/test_page_browser.py) share these.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from bridge.keys import DB, LIVE, REFRESH
from bridge.merge import SourceView
from bridge.model import SourceHealth
from bridge.storage import create_notice
from tests.conftest import check, status_data


def _fresh(now: float) -> SourceHealth:
    return SourceHealth(stale=False, data_created=now - 5)


def _both(app: web.Application, web_state: int, db_state: int, stale: bool = False, **db_kw: object) -> None:
    """Publish web-1 HTTP and db-1 PostgreSQL in the given Nagios states from one status.dat source."""
    now = time.time()
    data = status_data(check("web-1", "HTTP", web_state, last_state_change=int(now) - 600),
                       check("db-1", "PostgreSQL", db_state, last_state_change=int(now) - 600, **db_kw),
                       created=now - 5)
    health = SourceHealth(stale=True, reason="data older than 180 s", data_created=now - 5) if stale else _fresh(now)
    app[LIVE].update(data, health)


def _unchecked(app: web.Application) -> None:
    """Both checks known to Nagios but PENDING (has_been_checked=0)."""
    now = time.time()
    data = status_data(check("web-1", "HTTP", 0, has_been_checked=False),
                       check("db-1", "PostgreSQL", 0, has_been_checked=False), created=now - 5)
    app[LIVE].update(data, _fresh(now))


def _partly_stale(app: web.Application) -> None:
    """status.dat fresh for web-1; db-1 only from pushes that stopped: one of two components is stale."""
    now = time.time()
    live = app[LIVE]
    live.update_source(SourceView("statusdat", status_data(check("web-1", "HTTP", 0), created=now - 5), _fresh(now)))
    pushed = status_data(check("db-1", "PostgreSQL", 0), created=now - 3600)
    stale = SourceHealth(stale=True, reason="no passive result in the last 600 s", data_created=now - 3600)
    live.update_source(SourceView("passive", pushed, stale, frozenset(pushed.services), annotated=False))


async def _incident(app: web.Application) -> None:
    """Everything up, but an operator declared an incident that is being investigated."""
    _both(app, 0, 0)
    create_notice(app[DB], type="unplanned", subject="Email delays", state="investigating",
                  content="Looking into it", now=time.time(), components=["website"])
    await app[REFRESH]()


async def _planned(app: web.Application) -> None:
    """Everything up, a planned maintenance on the database underway."""
    _both(app, 0, 0)
    now = time.time()
    create_notice(app[DB], type="planned", subject="Upgrade", state="underway", content="Started", now=now,
                  begins_at=now - 60, ends_at=now + 3600, components=["database"])
    await app[REFRESH]()


@dataclass(frozen=True)
class Scenario:
    """How to get a page into a state, and what the page state must then be."""

    feed: Callable[[web.Application], Awaitable[None] | None]  # async where it writes the DB and republishes
    state: str
    headline: str
    indicator: str  # Statuspage v2 status.indicator

    async def apply(self, app: web.Application) -> None:
        """Get app into the state (on app's loop)."""
        done = self.feed(app)
        if done is not None:
            await done


SCENARIOS: dict[str, Scenario] = {
    "no data yet": Scenario(lambda app: None, "unknown", "Status unknown: no monitoring data yet", "minor"),
    "stale": Scenario(lambda app: _both(app, 0, 0, stale=True), "unknown",
                      "Status unknown: monitoring data is stale", "minor"),
    "all pending": Scenario(_unchecked, "unknown", "Status unknown: nothing has been checked yet", "minor"),
    "every group down": Scenario(lambda app: _both(app, 2, 2), "major", "Major problems reported", "critical"),
    "one component down": Scenario(lambda app: _both(app, 2, 0), "minor", "Some problems reported", "major"),
    "one component degraded": Scenario(lambda app: _both(app, 1, 0), "minor", "Some problems reported", "minor"),
    "open incident": Scenario(_incident, "minor", "Some problems reported", "minor"),
    "nagios downtime": Scenario(lambda app: _both(app, 0, 2, downtime_depth=1), "maintenance",
                                "Scheduled maintenance in progress", "maintenance"),
    "planned maintenance": Scenario(_planned, "maintenance", "Scheduled maintenance in progress", "maintenance"),
    "all up": Scenario(lambda app: _both(app, 0, 0), "operational", "Systems running smoothly", "none"),
    "part stale": Scenario(_partly_stale, "operational", "Systems running smoothly", "none"),
}
