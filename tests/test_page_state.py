"""The one page state: the pure rule as a table, then one row per state with one column per public surface."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from bridge.app import make_app
from bridge.model import ComponentView, GroupView, SourceHealth, Status
from bridge.notices import Notice
from bridge.page_state import HEADLINE, STATES, UNKNOWN_HEADLINE, page_state
from bridge.render import badge
from bridge.settings import Settings
from bridge.status_rules import group_status
from tests.conftest import web_config
from tests.page_states import SCENARIOS

UP, PARTIAL, DOWN, MAINT, NODATA = Status.UP, Status.PARTIAL, Status.DOWN, Status.MAINTENANCE, Status.NODATA
FRESH = SourceHealth(stale=False, data_created=1_700_000_000.0)
STALE = SourceHealth(stale=True, reason="status.dat missing", data_created=1_700_000_000.0)
NONE_YET = SourceHealth(stale=True, reason="no monitoring data yet")


def comp(status: Status, stale: bool = False, monitored: Status | None = None) -> ComponentView:
    """A component view with a shown status (monitored defaults to the same)."""
    return ComponentView("c", "C", "g", "", status, monitored or status, 1, stale=stale)


def groups_of(*groups: list[ComponentView]) -> tuple[GroupView, ...]:
    """Groups by the real group rule."""
    return tuple(GroupView(f"g{i}", "G", "", group_status([c.status for c in cs]), tuple(cs))
                 for i, cs in enumerate(groups))


def notice(type_: str, state: str) -> Notice:
    """A bare notice."""
    return Notice(1, type_, state, "S", "s", 1.0, None, None, None, 1.0, 1.0)


# --- the rule, pure: first match wins -----------------------------------------------------------------

@pytest.mark.parametrize("groups, health, notices, state, headline", [
    # unknown: nothing current is known
    ((), FRESH, (), "unknown", UNKNOWN_HEADLINE["empty"]),
    (([comp(NODATA)], [comp(NODATA)]), NONE_YET, (), "unknown", UNKNOWN_HEADLINE["no_data"]),
    (([comp(NODATA)], [comp(NODATA)]), FRESH, (), "unknown", UNKNOWN_HEADLINE["unchecked"]),
    (([comp(UP, stale=True)], [comp(DOWN, stale=True)]), STALE, (), "unknown", UNKNOWN_HEADLINE["stale"]),
    (([comp(UP, stale=True)], [comp(NODATA)]), FRESH, (), "unknown", UNKNOWN_HEADLINE["stale"]),
    # an open incident does not make stale data known
    (([comp(UP, stale=True)],), STALE, (notice("unplanned", "investigating"),), "unknown", UNKNOWN_HEADLINE["stale"]),
    # a person's override or maintenance over stale data is known
    (([comp(DOWN, stale=True, monitored=UP)],), STALE, (), "major", HEADLINE["major"]),
    # major: every group (with a known status) down
    (([comp(DOWN)], [comp(DOWN), comp(DOWN)]), FRESH, (), "major", HEADLINE["major"]),
    (([comp(DOWN)], [comp(NODATA)]), FRESH, (), "major", HEADLINE["major"]),
    # minor: any component partial or down, or an incident being worked on
    (([comp(DOWN)], [comp(UP)]), FRESH, (), "minor", HEADLINE["minor"]),
    (([comp(PARTIAL)], [comp(MAINT)]), FRESH, (), "minor", HEADLINE["minor"]),
    (([comp(UP)],), FRESH, (notice("unplanned", "identified"),), "minor", HEADLINE["minor"]),
    (([comp(DOWN, stale=True)], [comp(UP)]), FRESH, (), "minor", HEADLINE["minor"]),  # last known counts
    # maintenance: nothing wrong, something under maintenance
    (([comp(UP), comp(MAINT)], [comp(UP)]), FRESH, (), "maintenance", HEADLINE["maintenance"]),
    (([comp(UP)],), FRESH, (notice("planned", "underway"),), "maintenance", HEADLINE["maintenance"]),
    # operational: everything known up; never-checked components alone do not spoil it
    (([comp(UP)], [comp(UP), comp(NODATA)]), FRESH, (), "operational", HEADLINE["operational"]),
    (([comp(UP)],), FRESH, (notice("unplanned", "recovering"), notice("planned", "scheduled")), "operational",
     HEADLINE["operational"]),
])
def test_page_state_rule(groups: tuple[list[ComponentView], ...], health: SourceHealth, notices: tuple[Notice, ...],
                         state: str, headline: str) -> None:
    page = page_state(groups_of(*groups), health, notices)
    assert (page.state, page.headline) == (state, headline)
    assert page.state in STATES


def test_unknown_says_why_and_what_was_last_known() -> None:
    page = page_state(groups_of([comp(DOWN, stale=True)], [comp(UP, stale=True)]), STALE)
    assert (page.cause, page.reason, page.last_known) == ("stale", "status.dat missing", HEADLINE["minor"])
    assert not page.partly_stale


def test_partly_stale_is_counted() -> None:
    page = page_state(groups_of([comp(UP)], [comp(UP, stale=True)]), FRESH)
    assert (page.state, page.partly_stale, page.stale_components, page.components) == ("operational", True, 1, 2)


# --- every surface, over HTTP -----------------------------------------------------------------------

# Per page state: (Oxford overall code, HTML banner class, badge message or None for the v2 rollup, metric value)
SURFACES: dict[str, tuple[int, str, str | None, int]] = {
    "unknown": (1, "s-nodata", "unknown", 4),
    "major": (2, "s-down", None, 2),
    "minor": (1, "s-partial", None, 1),
    "maintenance": (1, "s-maintenance", None, 3),
    "operational": (0, "s-up", None, 0),
}
BADGE_BY_INDICATOR = {name: pair for name, pair in badge.PAGE_MESSAGE.items()}


def test_every_state_has_a_row_and_a_scenario() -> None:
    assert set(SURFACES) == set(STATES) == {s.state for s in SCENARIOS.values()}


async def get_json(client: Any, path: str) -> Any:
    """GET a JSON document (200 expected)."""
    resp = await client.get(path)
    assert resp.status == 200, path
    return await resp.json()


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_every_surface_renders_the_page_state(aiohttp_client: Any, tmp_path: Any, name: str) -> None:
    scenario = SCENARIOS[name]
    app = make_app(Settings(web_config(), watch=False, db_path=tmp_path / "db.sqlite"))
    client = await aiohttp_client(app)
    await scenario.apply(app)
    code, banner_class, badge_message, metric_value = SURFACES[scenario.state]

    # HTML: the banner's words, colour class and state, and the title
    text = await (await client.get("/")).text()
    assert f'class="banner {banner_class}" data-state="{scenario.state}"' in text
    assert f"<strong>{scenario.headline}</strong>" in text
    assert f"<title>Test page: {scenario.headline}</title>" in text
    assert ("Part of the monitoring data is stale." in text) == (name == "part stale")

    # Oxford feed (what widget.js renders)
    oxford = await get_json(client, "/api/services.json")
    assert (oxford["overall_status_code"], oxford["overall_status_name"], oxford["page_state"]) == (
        code, scenario.headline, scenario.state)
    assert oxford["partly_stale"] == (name == "part stale")

    # Statuspage v2
    status = (await get_json(client, "/api/v2/status.json"))["status"]
    assert status["indicator"] == scenario.indicator
    if scenario.state == "unknown":
        assert status["description"] == scenario.headline
    summary = await get_json(client, "/api/v2/summary.json")
    assert summary["status"] == status
    for c in summary["components"]:  # a component with no data never reads operational
        assert not (c["status"] == "operational" and c["status_bridge_status"] == "nodata")

    # Sorry v1: page.state keeps the notice-driven meaning; the page state sits beside it
    page = (await get_json(client, "/api/v1/status"))["page"]
    assert (page["monitored_state"], page["monitored_state_text"]) == (scenario.state, scenario.headline)

    # Badge
    svg = ET.fromstring(await (await client.get("/badge.svg")).read())
    message, colour = (badge_message, badge.GREY) if badge_message else BADGE_BY_INDICATOR[scenario.indicator]
    assert svg.get("aria-label") == f"status: {message}"
    assert svg.findall("{http://www.w3.org/2000/svg}rect")[0].get("fill") == colour

    # /metrics and /healthz
    metrics = await (await client.get("/metrics")).text()
    samples = re.findall(r'^status_bridge_page_status\{state="(\w+)"\} (\S+)$', metrics, re.M)
    assert samples == [(scenario.state, f"{float(metric_value)}")]
    health = await get_json(client, "/healthz")
    assert (health["page_state"], health["page_headline"]) == (scenario.state, scenario.headline)
    if name == "part stale":  # one source stopped: /healthz names it while the page is not unknown
        assert (health["sources"]["statusdat"]["stale"], health["sources"]["passive"]["stale"]) == (False, True)
