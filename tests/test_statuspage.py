"""The Statuspage v2-compatible API: shapes, status/indicator/impact mapping, notice filters, headers, JSONP."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from typing import Any

import pytest

from bridge.app import make_app
from bridge.config import Config
from bridge.keys import DB, LIVE, REFRESH
from bridge.model import ComponentView, GroupView, Snapshot, SourceHealth, Status
from bridge.notices import Notice
from bridge.render import statuspage, statuspage_components
from bridge.settings import Settings
from bridge.status_rules import group_status
from bridge.storage import add_update, create_notice
from bridge.views_page import PAGE_CACHE
from tests.conftest import check, snapshot_of, status_data, web_config

DAY = 86400.0
FRESH = SourceHealth(stale=False, data_created=1_700_000_000.0)
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
UP, PARTIAL, DOWN, MAINT, NODATA = Status.UP, Status.PARTIAL, Status.DOWN, Status.MAINTENANCE, Status.NODATA
PATHS = [
    "/api/v2/summary.json", "/api/v2/status.json", "/api/v2/components.json", "/api/v2/incidents.json",
    "/api/v2/incidents/unresolved.json", "/api/v2/scheduled-maintenances.json",
    "/api/v2/scheduled-maintenances/upcoming.json", "/api/v2/scheduled-maintenances/active.json",
]
PAGE_KEYS = ["id", "name", "url", "time_zone", "updated_at", "status_bridge_stale"]
COMPONENT_KEYS = ["id", "name", "status", "created_at", "updated_at", "position", "description", "showcase",
                  "start_date", "group_id", "page_id", "group", "only_show_if_degraded"]
INCIDENT_KEYS = ["id", "name", "status", "created_at", "updated_at", "monitoring_at", "resolved_at", "impact",
                 "shortlink", "started_at", "page_id", "incident_updates", "components", "reminder_intervals"]
# As real pages send them (githubstatus.com, 2024), then ours.
UPDATE_KEYS = ["id", "status", "body", "incident_id", "created_at", "updated_at", "display_at", "affected_components",
               "deliver_notifications", "custom_tweet", "tweet_id", "status_bridge_state"]


def snapshot(groups: Sequence[Sequence[Status]], notices: Sequence[Notice] = (), stale: bool = False) -> Snapshot:
    """A snapshot whose group g<i> holds components g<i>c<j> with the given shown statuses (real group/page rules)."""
    views = []
    for gi, statuses in enumerate(groups):
        comps = tuple(ComponentView(f"g{gi}c{ci}", f"C{ci}", f"g{gi}", "", s, s, 1, since=1_700_000_000.0 + ci)
                      for ci, s in enumerate(statuses))
        views.append(GroupView(f"g{gi}", f"G{gi}", "", group_status(list(statuses)), comps))
    return snapshot_of(tuple(views), tuple(notices), stale=stale)


def notice(state: str, type_: str = "unplanned", components: tuple[str, ...] = (), id_: int = 1) -> Notice:
    """A bare notice (no updates) in the given state."""
    return Notice(id_, type_, state, "Subject", "subject", 1_699_000_000.0, None, None, None,
                  1_699_000_000.0, 1_699_000_000.0, components)


# --- pure mapping tables ----------------------------------------------------------------------------


@pytest.mark.parametrize("status, expected", [
    (UP, "operational"), (PARTIAL, "degraded_performance"), (DOWN, "major_outage"),
    (MAINT, "under_maintenance"), (NODATA, "degraded_performance"),  # never "operational" without data
])
def test_component_status_mapping(status: Status, expected: str) -> None:
    objs = statuspage_components.component_objects(snapshot([[status]]))
    child = objs[1]
    assert list(child)[: len(COMPONENT_KEYS)] == COMPONENT_KEYS
    assert (child["status"], child["status_bridge_status"], child["group"], child["group_id"]) == (
        expected, status.value, False, "g0")


@pytest.mark.parametrize("children, expected", [
    ([UP, UP], "operational"),
    ([DOWN, DOWN], "major_outage"),
    ([UP, DOWN], "partial_outage"),  # some children down: a partial outage of the group
    ([PARTIAL, DOWN], "partial_outage"),
    ([UP, PARTIAL], "degraded_performance"),
    ([UP, MAINT], "under_maintenance"),
    ([MAINT, MAINT], "under_maintenance"),
    ([NODATA, NODATA], "degraded_performance"),
    ([UP, NODATA], "operational"),
    ([NODATA, DOWN], "major_outage"),
])
def test_group_status_mapping(children: list[Status], expected: str) -> None:
    group = statuspage_components.component_objects(snapshot([children]))[0]
    assert group["group"] is True and group["group_id"] is None
    assert group["components"] == ["g0c0", "g0c1"]
    assert group["status"] == expected
    assert group["status_bridge_status"] == group_status(children).value


@pytest.mark.parametrize("groups, notices, expected", [
    ([[UP], [UP]], (), "none"),
    ([[NODATA], [NODATA]], (), "minor"),  # nothing known: page unknown, never "none"
    ([[UP], [MAINT]], (), "maintenance"),
    ([[UP], [PARTIAL]], (), "minor"),
    ([[UP, DOWN], [UP]], (), "major"),
    ([[DOWN], [UP]], (), "major"),
    ([[DOWN, DOWN], [DOWN]], (), "critical"),  # every group down: "Major problems reported"
    ([[DOWN], [NODATA]], (), "critical"),
    ([[MAINT], [DOWN]], (), "major"),
    ([[UP], [UP]], (notice("investigating"),), "minor"),  # an open incident is at least minor
    ([[UP], [UP]], (notice("identified", components=("g1c0",)),), "minor"),
    ([[UP], [DOWN]], (notice("identified", components=("g1c0",)),), "major"),
    ([[UP], [UP]], (notice("recovering"),), "none"),  # recovering no longer degrades (as the Sorry page state)
    ([[UP], [UP]], (notice("resolved"), notice("false_alarm")), "none"),
    ([[UP], [UP]], (notice("underway", "planned"),), "maintenance"),
    ([[UP], [UP]], (notice("scheduled", "planned"), notice("complete", "planned")), "none"),
    ([[UP], [PARTIAL]], (notice("underway", "planned"),), "minor"),
])
def test_indicator_table(groups: list[list[Status]], notices: tuple[Notice, ...], expected: str) -> None:
    snap = snapshot(groups, notices)
    assert statuspage_components.indicator(snap) == expected
    text = snap.page.headline if snap.page.state == "unknown" else statuspage_components.INDICATOR_TEXT[expected]
    assert statuspage.status_doc(snap)["status"] == {"indicator": expected, "description": text}


@pytest.mark.parametrize("groups, n, expected", [
    ([[UP], [UP]], notice("investigating"), "minor"),
    ([[UP], [PARTIAL]], notice("investigating", components=("g1c0",)), "minor"),
    ([[UP], [DOWN]], notice("identified", components=("g1c0",)), "major"),
    ([[UP], [DOWN]], notice("recovering", components=("g1",)), "major"),  # a linked group counts too
    ([[DOWN], [DOWN]], notice("investigating", components=("g1c0",)), "critical"),
    ([[UP], [DOWN]], notice("resolved", components=("g1c0",)), "minor"),  # today's state says nothing of the past
    ([[UP], [UP]], notice("false_alarm"), "none"),
    ([[UP], [UP]], notice("scheduled", "planned"), "maintenance"),
])
def test_impact_table(groups: list[list[Status]], n: Notice, expected: str) -> None:
    assert statuspage_components.impact(snapshot(groups, [n]), n) == expected


def test_page_object_and_stable_id() -> None:
    snap = snapshot([[UP]], stale=True)
    page = statuspage.status_doc(snap)["page"]
    assert list(page) == PAGE_KEYS
    assert re.fullmatch(r"[a-z2-7]{12}", page["id"])
    assert page["id"] == statuspage_components.page_id(snapshot([[DOWN]]))
    assert (page["name"], page["url"], page["time_zone"]) == ("Example", "https://status.example.org/", "Etc/UTC")
    assert page["updated_at"] == "2023-11-14T22:13:20.000Z" and page["status_bridge_stale"] is True


def test_positions_count_within_each_level() -> None:
    objs = statuspage_components.component_objects(snapshot([[UP, UP], [UP]]))
    assert [(o["id"], o["position"]) for o in objs] == [
        ("g0", 1), ("g0c0", 1), ("g0c1", 2), ("g1", 2), ("g1c0", 1)]


# --- HTTP ----------------------------------------------------------------------------------------------


async def start(aiohttp_client: Any, tmp_path: Any, config: Config | None = None) -> tuple[Any, Any]:
    """A real server over a fresh SQLite file; returns (client, app)."""
    app = make_app(Settings(config or web_config(), watch=False, db_path=tmp_path / "db.sqlite"))
    return await aiohttp_client(app), app


async def get_json(client: Any, url: str, status: int = 200) -> Any:
    """GET url, assert the status, parse strictly."""
    resp = await client.get(url)
    assert resp.status == status, await resp.text()
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    return json.loads(await resp.text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


def seed_all(db: Any, now: float) -> dict[str, int]:
    """One notice per interesting state; returns name -> id. Planned ones reach their state via the scheduler."""
    ids: dict[str, int] = {}
    ids["investigating"] = create_notice(db, type="unplanned", subject="Website down", state="investigating",
                                         content="Looking.", now=now - 600, components=["website", "gone"]).id
    n = create_notice(db, type="unplanned", subject="Slow DB", state="identified", content="Found.", now=now - 900)
    add_update(db, n.id, state="recovering", content="Fix deployed.", now=now - 300)
    ids["recovering"] = n.id
    n = create_notice(db, type="unplanned", subject="Blip", state="investigating", content="Hm.", now=now - 5 * DAY)
    add_update(db, n.id, state="resolved", content="Gone.", now=now - 4 * DAY)
    ids["resolved"] = n.id
    n = create_notice(db, type="unplanned", subject="Alarm", state="investigating", content="Hm.", now=now - 6 * DAY)
    add_update(db, n.id, state="false_alarm", content="Nothing wrong.", now=now - 6 * DAY + 60)
    ids["false_alarm"] = n.id
    for name, start in (("scheduled", DAY), ("underway", -600.0), ("complete", -2 * DAY)):
        ids[name] = create_notice(db, type="planned", subject=f"Maintenance {name}", state="scheduled",
                                  content="Planned.", now=now - 3 * DAY, begins_at=now + start,
                                  ends_at=now + start + 3600, components=["database"]).id
    return ids


async def test_notice_filters_and_state_mapping(aiohttp_client, tmp_path) -> None:
    client, app = await start(aiohttp_client, tmp_path)
    ids = seed_all(app[DB], time.time())
    await app[REFRESH]()  # applies the due planned transitions: underway, complete

    async def listed(path: str, key: str) -> dict[int, dict[str, Any]]:
        body = await get_json(client, path)
        assert list(body) == ["page", key] and list(body["page"]) == PAGE_KEYS
        return {int(i["id"]): i for i in body[key]}

    incidents = await listed("/api/v2/incidents.json", "incidents")
    assert set(incidents) == {ids[k] for k in ("investigating", "recovering", "resolved", "false_alarm")}
    assert {i["status_bridge_state"]: (i["status"], i["impact"]) for i in incidents.values()} == {
        "investigating": ("investigating", "minor"),  # no monitoring data yet: nothing linked is down
        "recovering": ("monitoring", "minor"),
        "resolved": ("resolved", "minor"),
        "false_alarm": ("resolved", "none"),
    }
    unresolved = await listed("/api/v2/incidents/unresolved.json", "incidents")
    assert set(unresolved) == {ids["investigating"], ids["recovering"]}
    maint = await listed("/api/v2/scheduled-maintenances.json", "scheduled_maintenances")
    assert {m["status_bridge_state"]: (m["status"], m["impact"]) for m in maint.values()} == {
        "scheduled": ("scheduled", "maintenance"), "underway": ("in_progress", "maintenance"),
        "complete": ("completed", "maintenance")}
    assert set(await listed("/api/v2/scheduled-maintenances/upcoming.json", "scheduled_maintenances")) == {
        ids["scheduled"]}
    assert set(await listed("/api/v2/scheduled-maintenances/active.json", "scheduled_maintenances")) == {
        ids["underway"]}
    summary = await get_json(client, "/api/v2/summary.json")
    assert list(summary) == ["page", "components", "incidents", "scheduled_maintenances", "status"]
    assert {int(i["id"]) for i in summary["incidents"]} == set(unresolved)
    assert {int(m["id"]) for m in summary["scheduled_maintenances"]} == {ids["scheduled"], ids["underway"]}
    # Linked to the underway maintenance, the database shows as under maintenance.
    by_id = {c["id"]: c for c in summary["components"]}
    assert by_id["database"]["status"] == "under_maintenance" and by_id["data"]["status"] == "under_maintenance"
    # The open incident (minor) outweighs the maintenance.
    assert summary["status"] == {"indicator": "minor", "description": "Partially Degraded Service"}


async def test_incident_shape(aiohttp_client, tmp_path) -> None:
    client, app = await start(aiohttp_client, tmp_path)
    app[LIVE].update(status_data(check("web-1", "HTTP", 2), check("db-1", "PostgreSQL")), FRESH)
    ids = seed_all(app[DB], time.time())
    await app[REFRESH]()
    body = await get_json(client, "/api/v2/incidents.json")
    pid = body["page"]["id"]
    inc = {int(i["id"]): i for i in body["incidents"]}
    first = inc[ids["investigating"]]
    assert list(first) == [*INCIDENT_KEYS, "status_bridge_state"]
    assert first["impact"] == "major" and first["page_id"] == pid
    assert first["shortlink"] == f"https://status.example.org/notices/{ids['investigating']}-website-down"
    assert [c["id"] for c in first["components"]] == ["website"]  # "gone" is not configured: dropped
    assert first["components"][0]["status"] == "major_outage"
    assert first["resolved_at"] is None and first["monitoring_at"] is None and ISO.fullmatch(first["started_at"])
    rec = inc[ids["recovering"]]
    assert [u["status"] for u in rec["incident_updates"]] == ["monitoring", "identified"]  # newest first
    update = rec["incident_updates"][0]
    assert list(update) == UPDATE_KEYS
    assert (update["body"], update["incident_id"]) == ("Fix deployed.", str(ids["recovering"]))
    assert rec["monitoring_at"] == update["created_at"]
    done = inc[ids["false_alarm"]]
    assert ISO.fullmatch(done["resolved_at"]) and done["incident_updates"][0]["status_bridge_state"] == "false_alarm"
    maint = (await get_json(client, "/api/v2/scheduled-maintenances/upcoming.json"))["scheduled_maintenances"][0]
    assert list(maint) == [*INCIDENT_KEYS, "scheduled_for", "scheduled_until", "status_bridge_state"]
    assert ISO.fullmatch(maint["scheduled_for"]) and maint["scheduled_for"] < maint["scheduled_until"]
    assert maint["monitoring_at"] is None and [c["id"] for c in maint["components"]] == ["database"]


async def test_live_states_and_rollup(aiohttp_client, tmp_path) -> None:
    client, app = await start(aiohttp_client, tmp_path)
    live = app[LIVE]

    async def view() -> tuple[dict[str, str], str]:
        body = await get_json(client, "/api/v2/summary.json")
        return {c["id"]: c["status"] for c in body["components"]}, body["status"]["indicator"]

    # No data yet: the page is unknown (minor, never none) and no component claims to be operational.
    assert await view() == ({"web": "degraded_performance", "website": "degraded_performance",
                             "data": "degraded_performance", "database": "degraded_performance"}, "minor")
    live.update(status_data(check("web-1", "HTTP", 1), check("db-1", "PostgreSQL")), FRESH)
    assert await view() == ({"web": "degraded_performance", "website": "degraded_performance",
                             "data": "operational", "database": "operational"}, "minor")
    live.update(status_data(check("web-1", "HTTP", 2), check("db-1", "PostgreSQL")), FRESH)
    assert await view() == ({"web": "major_outage", "website": "major_outage", "data": "operational",
                             "database": "operational"}, "major")
    live.update(status_data(check("web-1", "HTTP", 2), check("db-1", "PostgreSQL", 2)), FRESH)
    assert (await view())[1] == "critical"
    status = await get_json(client, "/api/v2/status.json")
    assert status["status"] == {"indicator": "critical", "description": "Major System Outage"}


async def test_lists_keep_the_50_most_recent(aiohttp_client, tmp_path) -> None:
    client, app = await start(aiohttp_client, tmp_path)
    now = time.time()
    ids = [create_notice(app[DB], type="unplanned", subject=f"N{i}", state="resolved", content="x",
                         now=now - DAY + i, began_at=now - DAY + i).id for i in range(55)]
    await app[REFRESH]()
    listed = [int(i["id"]) for i in (await get_json(client, "/api/v2/incidents.json"))["incidents"]]
    assert listed == ids[::-1][:50]
    assert (await get_json(client, "/api/v2/incidents/unresolved.json"))["incidents"] == []


@pytest.mark.parametrize("path", PATHS)
async def test_public_headers_etag_and_jsonp(aiohttp_client, tmp_path, path: str) -> None:
    client, app = await start(aiohttp_client, tmp_path, web_config(cache_seconds=42))
    seed_all(app[DB], time.time())
    await app[REFRESH]()
    resp = await client.get(path)
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.headers["Cache-Control"] == "public, max-age=42"
    etag = resp.headers["ETag"]
    again = await client.get(path, headers={"If-None-Match": etag})
    assert again.status == 304 and again.headers["ETag"] == etag
    js = await client.get(path + "?callback=StatusPage.cb&_=1700000000")
    assert js.headers["Content-Type"] == "application/javascript; charset=utf-8"
    assert js.headers["X-Content-Type-Options"] == "nosniff" and js.headers["ETag"] != etag
    text = await js.text()
    assert text.startswith("/**/StatusPage.cb(") and text.endswith(");")
    assert json.loads(text[len("/**/StatusPage.cb("):-2]) == await resp.json()
    bad = await client.get(path + "?callback=alert(1)")
    assert bad.status == 400 and (await bad.json())["error"]["field"] == "callback"


async def test_encoded_once_per_generation(aiohttp_client, tmp_path) -> None:
    client, app = await start(aiohttp_client, tmp_path)
    first = await client.get("/api/v2/summary.json")
    same = await client.get("/api/v2/summary.json")
    assert first.headers["ETag"] == same.headers["ETag"]
    cache = app[PAGE_CACHE]
    doc = cache.docs["/api/v2/summary.json"]
    await client.get("/api/v2/summary.json")
    assert cache.docs["/api/v2/summary.json"] is doc  # served from the cache, not re-encoded
    # A new generation must never be answered from the old one's cache.
    app[LIVE].update(status_data(check("web-1", "HTTP", 2), check("db-1", "PostgreSQL")), FRESH)
    changed = await client.get("/api/v2/summary.json")
    assert changed.headers["ETag"] != first.headers["ETag"]
    assert (await changed.json())["status"]["indicator"] == "major"
