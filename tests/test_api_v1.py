"""The Sorry-compatible /api/v1: shapes, state mapping, filters, pagination, errors and caching headers."""

from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime, timezone
from typing import Any

import pytest

from bridge.app import make_app
from bridge.config import Component, Config, Group
from bridge.history import EFFECTIVE, Record, append_records, read_history
from bridge.keys import DB, LIVE, REFRESH
from bridge.model import ComponentView, GroupView, Snapshot, SourceHealth, Status
from bridge.notices import TIMELINE_STATES
from bridge.render.bars import snapshot_bars, window_start
from bridge.render.sorry import component_objects, components_doc, iso_ms, status_doc
from bridge.render.sorry_query import ComponentFilter
from bridge.settings import Settings
from bridge.storage import add_update, create_notice
from tests.conftest import check, snapshot_of, status_data, web_config

DAY = 86400.0
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
FRESH = SourceHealth(stale=False, data_created=1_700_000_000.0)


async def start(aiohttp_client: Any, tmp_path: Any, config: Config | None = None) -> tuple[Any, Any]:
    """A real server over a fresh SQLite file; returns (client, app)."""
    app = make_app(Settings(config or web_config(), watch=False, db_path=tmp_path / "db.sqlite"))
    return await aiohttp_client(app), app


def wide_config(children: int, group: bool = True) -> Config:
    """One group "g" with `children` components (or no groups at all)."""
    comps = tuple(Component(id=f"c{i:03d}", name=f"C {i}", group_id="g") for i in range(children))
    return web_config(groups=(Group(id="g", name="G", components=comps),) if group else ())


def seed(db: Any, kind: str, now: float) -> int:
    """One notice of a known type/timeline (all times days away from now); returns its id."""
    type_, when = kind.split("-", 1)
    if type_ == "planned":
        starts = {"future": 2, "present": -1, "past_recent": -3, "past_distant": -30}[when]
        n = create_notice(db, type="planned", subject=f"Maintenance {when}", state="scheduled", content="Planned.",
                          now=now + (starts - 2) * DAY, begins_at=now + starts * DAY, ends_at=now + (starts + 1.5) * DAY)
        if when != "future":
            add_update(db, n.id, state="underway", content="Underway.", now=now + starts * DAY)
        if when.startswith("past"):
            add_update(db, n.id, state="complete", content="Complete.", now=now + (starts + 1) * DAY)
        return n.id
    state = {"recovering": "recovering", "identified": "identified"}.get(when, "investigating")
    began = {"future": 2, "past_recent": -3, "past_distant": -30}.get(when, -1)
    n = create_notice(db, type="unplanned", subject=f"Incident {when}", state=state, content="Looking.",
                      now=now - 40 * DAY, began_at=now + began * DAY)
    if when.startswith("past"):
        add_update(db, n.id, state="resolved", content="Fixed.", now=now + (began + 1) * DAY)
    return n.id


async def get_json(client: Any, url: str, status: int = 200) -> Any:
    """GET url, assert the status, parse strictly (NaN/Infinity are not JSON)."""
    resp = await client.get(url)
    assert resp.status == status, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/json")
    return json.loads(await resp.text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


def paged(url: str, page: int) -> str:
    """url with page=N appended after its filters."""
    return url + ("&" if "?" in url else "?") + f"page={page}"


async def walk(client: Any, url: str, key: str, total: int) -> list[Any]:
    """Follow next_page from url, checking count, total_count and the exact next_page; returns the ids in order."""
    ids: list[Any] = []
    first = url
    pages = max(1, math.ceil(total / 25))
    for number in range(1, pages + 1):
        body = await get_json(client, url)
        assert body["meta"]["count"] == len(body[key]) == min(25, total - 25 * (number - 1))
        assert body["meta"]["total_count"] == total
        ids += [item["id"] for item in body[key]]
        url = body["meta"]["next_page"]
        assert url == (paged(first, number + 1) if number < pages else None)
    return ids


# --- pure renderer --------------------------------------------------------------------------------


def snap(*groups: GroupView, generated: float = 1_700_000_000.0) -> Snapshot:
    """A snapshot of the given groups."""
    return snapshot_of(groups, generated=generated, created=generated)


def test_state_mapping_and_extras() -> None:
    statuses = list(Status)
    comps = tuple(ComponentView(s.value, s.name, "g", "", s, Status.DOWN if s is Status.MAINTENANCE else s, 1)
                  for s in statuses)
    objs = component_objects(snap(GroupView("g", "G", "desc", Status.PARTIAL, comps)))
    assert objs[0] == {
        "id": "g", "state": "degraded", "name": "G", "description": "desc", "parent_id": None,
        "links": {"children": {"href": "/api/v1/components?filter[parent_id_eq]=g", "count": 5}},
        "created_at": "2023-11-14T22:13:20.000Z", "updated_at": "2023-11-14T22:13:20.000Z",
        "status": "partial", "monitored_status": "partial",
    }
    by_id = {o["id"]: o for o in objs[1:]}
    assert {k: v["state"] for k, v in by_id.items()} == {
        "up": "operational", "nodata": "degraded", "partial": "degraded", "down": "degraded",
        "maintenance": "under_maintenance",
    }
    assert by_id["maintenance"]["monitored_status"] == "down" and by_id["maintenance"]["status"] == "maintenance"
    assert all(o["parent_id"] == "g" and o["links"]["children"]["count"] == 0 for o in objs[1:])


def test_iso_ms() -> None:
    assert iso_ms(1_672_531_200.0) == "2023-01-01T00:00:00.000Z"
    assert iso_ms(1_672_531_200.9999) == "2023-01-01T00:00:00.999Z"
    assert iso_ms(1_672_531_200.25) == "2023-01-01T00:00:00.250Z"
    assert [iso_ms(v) for v in (None, math.nan, math.inf, 1e20)] == [None] * 4


def test_times_follow_since() -> None:
    a = ComponentView("a", "A", "g", "", Status.UP, Status.UP, 1, since=1_600_000_000.0)
    b = ComponentView("b", "B", "g", "", Status.UP, Status.UP, 1, since=1_650_000_000.0)
    objs = component_objects(snap(GroupView("g", "G", "", Status.UP, (a, b))))
    assert {o["id"]: (o["created_at"], o["updated_at"]) for o in objs} == {
        "g": ("2020-09-13T12:26:40.000Z", "2022-04-15T05:20:00.000Z"),
        "a": ("2020-09-13T12:26:40.000Z", "2020-09-13T12:26:40.000Z"),
        "b": ("2020-09-13T12:26:40.000Z", "2022-04-15T05:20:00.000Z"),
    }


def test_status_and_components_docs_without_groups() -> None:
    page = status_doc(snap())["page"]
    assert page["links"] == {"components": {"href": "/api/v1/components", "count": 0},
                             "notices": {"href": "/api/v1/notices", "count": 0}}
    assert components_doc(snap(), ComponentFilter(), 1) == {
        "components": [], "meta": {"count": 0, "total_count": 0, "next_page": None}}


# --- HTTP ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("total", [0, 25, 26, 51])
@pytest.mark.parametrize("children_only", [False, True])
async def test_components_pagination(aiohttp_client, tmp_path, total: int, children_only: bool) -> None:
    if children_only:
        config, url = wide_config(total), "/api/v1/components?filter[parent_id_eq]=g"
        expected = [f"c{i:03d}" for i in range(total)]
    else:
        config, url = wide_config(total - 1, group=total > 0), "/api/v1/components"
        expected = ["g", *(f"c{i:03d}" for i in range(total - 1))] if total else []
    client, _ = await start(aiohttp_client, tmp_path, config)
    assert await walk(client, url, "components", total) == expected
    past = await get_json(client, paged(url, 9))
    assert past == {"components": [], "meta": {"count": 0, "total_count": total, "next_page": None}}


@pytest.mark.parametrize("total", [0, 25, 26, 51])
@pytest.mark.parametrize("filtered", [False, True])
async def test_notices_pagination(aiohttp_client, tmp_path, total: int, filtered: bool) -> None:
    client, app = await start(aiohttp_client, tmp_path)
    now = time.time()
    ids = [create_notice(app[DB], type="unplanned", subject=f"N {i}", state="investigating", content="x",
                         now=now - 10 * DAY, began_at=now - 10 * DAY + i * 60).id for i in range(total)]
    if filtered:  # planned ones must not show up nor count
        for _ in range(3):
            seed(app[DB], "planned-future", now)
    await app[REFRESH]()
    url = "/api/v1/notices?filter[type_eq]=unplanned" if filtered else "/api/v1/notices"
    assert await walk(client, url, "notices", total) == ids[::-1]  # newest first
    past = await get_json(client, paged(url, 9))
    assert past == {"notices": [], "meta": {"count": 0, "total_count": total, "next_page": None}}


KINDS = [f"{t}-{tl}" for t in ("planned", "unplanned") for tl in TIMELINE_STATES]


async def test_notice_filters_combine(aiohttp_client, tmp_path) -> None:
    client, app = await start(aiohttp_client, tmp_path)
    now = time.time()
    table = {seed(app[DB], kind, now): tuple(kind.split("-", 1)) for kind in KINDS}
    await app[REFRESH]()
    for type_ in (None, "planned", "unplanned"):
        for tl in (None, *TIMELINE_STATES):
            query = "&".join(f"filter[{k}]={v}" for k, v in (("type_eq", type_), ("timeline_state_eq", tl)) if v)
            body = await get_json(client, "/api/v1/notices" + ("?" + query if query else ""))
            want = {i for i, (t, s) in table.items() if type_ in (None, t) and tl in (None, s)}
            assert {n["id"] for n in body["notices"]} == want, query
            for n in body["notices"]:
                assert (n["type"], n["timeline_state"]) == table[n["id"]]
                assert ("begins_at" in n) == (n["type"] == "planned")
                assert n["links"]["self"] == f"/api/v1/notices/{n['id']}"


@pytest.mark.parametrize("kinds, state, text", [
    ((), "operational", "All systems are go!"),
    (("planned-present",), "under_maintenance", "Maintenance is underway"),
    (("planned-present", "unplanned-present"), "degraded", "We are experiencing problems"),
    (("unplanned-identified", "planned-future"), "degraded", "We are experiencing problems"),
    (("unplanned-recovering", "unplanned-past_recent"), "operational", "All systems are go!"),
])
async def test_page_state(aiohttp_client, tmp_path, kinds: tuple[str, ...], state: str, text: str) -> None:
    client, app = await start(aiohttp_client, tmp_path)
    for kind in kinds:
        seed(app[DB], kind, time.time())
    await app[REFRESH]()
    page = (await get_json(client, "/api/v1/status"))["page"]
    assert (page["state"], page["state_text"]) == (state, text)
    assert page["name"] == "Test page" and page["url"] == "https://status.example.org"
    assert page["links"]["components"] == {"href": "/api/v1/components", "count": 4}
    assert page["links"]["notices"] == {"href": "/api/v1/notices", "count": len(kinds)}
    assert ISO_MS.fullmatch(page["created_at"]) and ISO_MS.fullmatch(page["updated_at"])
    assert page["created_at"] <= page["updated_at"]


async def test_parent_filters_and_live_states(aiohttp_client, tmp_path) -> None:
    client, app = await start(aiohttp_client, tmp_path)
    app[LIVE].update(status_data(check("web-1", "HTTP", 2), check("db-1", "PostgreSQL")), FRESH)

    async def ids(query: str) -> list[str]:
        return [c["id"] for c in (await get_json(client, "/api/v1/components" + query))["components"]]

    assert await ids("") == ["web", "website", "data", "database"]
    assert await ids("?filter[parent_id_null]=true") == ["web", "data"]
    assert await ids("?filter[parent_id_null]=false") == ["website", "database"]
    assert await ids("?filter[parent_id_eq]=data") == ["database"]
    assert await ids("?filter[parent_id_eq]=data&filter[parent_id_null]=false") == ["database"]
    assert await ids("?filter[parent_id_eq]=data&filter[parent_id_null]=true") == []
    assert await ids("?filter[parent_id_eq]=nosuch") == []
    body = await get_json(client, "/api/v1/components")
    website = body["components"][1]
    assert (website["state"], website["status"], website["parent_id"]) == ("degraded", "down", "web")
    assert body["components"][2]["state"] == "operational"


async def test_notice_detail(aiohttp_client, tmp_path) -> None:
    client, app = await start(aiohttp_client, tmp_path)
    now = time.time()
    n = create_notice(app[DB], type="unplanned", subject="Database slow!", state="investigating", content="Looking.",
                      now=now - 3 * DAY, components=["gone", "database", "website"])
    add_update(app[DB], n.id, state="identified", content="Found it.", now=now - 2.5 * DAY)
    add_update(app[DB], n.id, state="resolved", content="Fixed.", now=now - 2 * DAY)
    await app[REFRESH]()
    notice = (await get_json(client, f"/api/v1/notices/{n.id}"))["notice"]
    assert notice["url"] == f"https://status.example.org/notices/{n.id}-database-slow"
    assert (notice["timeline_state"], notice["state"]) == ("past_recent", "resolved")
    assert [c["id"] for c in notice["components"]] == ["website", "database"]  # page order; "gone" dropped
    assert all("links" not in c and c["parent_id"] for c in notice["components"])
    assert [(u["state"], u["content"]) for u in notice["updates"]] == [
        ("investigating", "Looking."), ("identified", "Found it."), ("resolved", "Fixed.")]
    assert notice["latest_update"] == notice["updates"][-1]
    assert "begins_at" not in notice and ISO_MS.fullmatch(notice["ended_at"])
    listed = (await get_json(client, "/api/v1/notices"))["notices"][0]
    assert "components" not in listed and "updates" not in listed and listed["latest_update"]["content"] == "Fixed."


@pytest.mark.parametrize("ref", ["999", "abc", "1.5", "-1", "0x1", "9" * 30])
async def test_unknown_notice_is_404(aiohttp_client, tmp_path, ref: str) -> None:
    client, _ = await start(aiohttp_client, tmp_path)
    body = await get_json(client, f"/api/v1/notices/{ref}", 404)
    assert body["error"]["status"] == 404 and body["error"]["field"] == "id"


@pytest.mark.parametrize("url, field", [
    ("/api/v1/notices?filter[type_eq]=bogus", "filter[type_eq]"),
    ("/api/v1/notices?filter[timeline_state_eq]=past", "filter[timeline_state_eq]"),
    ("/api/v1/notices?filter[type_eq]=planned&filter[type_eq]=unplanned", "filter[type_eq]"),
    ("/api/v1/notices?filter[parent_id_null]=true", "filter[parent_id_null]"),
    ("/api/v1/notices?filter[type]=planned", "filter[type]"),
    ("/api/v1/components?filter[parent_id_null]=yes", "filter[parent_id_null]"),
    ("/api/v1/components?filter[parent_id_eq]=", "filter[parent_id_eq]"),
    ("/api/v1/components?filter[type_eq]=planned", "filter[type_eq]"),
    ("/api/v1/components?page=0", "page"),
    ("/api/v1/components?page=-1", "page"),
    ("/api/v1/notices?page=abc", "page"),
    ("/api/v1/notices?page=", "page"),
    ("/api/v1/notices?page=1&page=2", "page"),
    ("/api/v1/notices?page=" + "9" * 12, "page"),
    ("/api/v1/status?callback=alert(1)", "callback"),
])
async def test_bad_parameters_are_400(aiohttp_client, tmp_path, url: str, field: str) -> None:
    client, _ = await start(aiohttp_client, tmp_path)
    resp = await client.get(url)
    assert resp.status == 400
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    body = await resp.json()
    assert body["error"]["status"] == 400 and body["error"]["field"] == field and body["error"]["message"]


@pytest.mark.parametrize("path", ["/api/v1/status", "/api/v1/components?filter[parent_id_null]=true",
                                  "/api/v1/notices", "/api/v1/notices/1"])
async def test_public_headers_etag_and_jsonp(aiohttp_client, tmp_path, path: str) -> None:
    client, app = await start(aiohttp_client, tmp_path, web_config(cache_seconds=42))
    seed(app[DB], "unplanned-present", time.time())
    await app[REFRESH]()
    resp = await client.get(path)
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.headers["Cache-Control"] == "public, max-age=42"
    etag = resp.headers["ETag"]
    again = await client.get(path, headers={"If-None-Match": etag})
    assert again.status == 304 and again.headers["ETag"] == etag
    assert again.headers["Access-Control-Allow-Origin"] == "*"
    # jQuery adds a "_" cache buster to JSONP calls: not a filter, so it is ignored.
    js = await client.get(path + ("&" if "?" in path else "?") + "callback=cb.x&_=1700000000")
    assert js.headers["Content-Type"] == "application/javascript; charset=utf-8"
    text = await js.text()
    assert text.startswith("/**/cb.x(") and text.endswith(");")
    assert json.loads(text[len("/**/cb.x("):-2]) == await resp.json()


# --- component metrics (seed 003), metrics_summary and impact_time --------------------------------


def utc(day: int, hour: int = 0, month: int = 3) -> float:
    """Epoch seconds of 2023-<month>-<day> <hour>:00 UTC."""
    return datetime(2023, month, day, hour, tzinfo=timezone.utc).timestamp()


NOW = utc(31, 12)  # 2023-03-31 12:00 UTC


async def start_at(aiohttp_client: Any, tmp_path: Any, now: float = NOW) -> tuple[Any, Any]:
    """A real server over a fresh SQLite file with the clock stopped at now."""
    app = make_app(Settings(web_config(), watch=False, db_path=tmp_path / "db.sqlite"), clock=lambda: now)
    return await aiohttp_client(app), app


def outages(db: Any) -> int:
    """Website history with two outages in March 2023, and its notices; returns the id of the one that counts.

    Impact by hand: down 10th 00-12h plus the notice 10th 06-14h = [10th 00h, 14h) = 14 h; down 20th 00-06h = 6 h.
    Together 72,000 s (20 hours) in two episodes.
    """
    append_records(db, [Record("website", EFFECTIVE, s, at) for at, s in [
        (utc(1, 0, 2), "up"), (utc(10), "down"), (utc(10, 12), "up"), (utc(20), "down"), (utc(20, 6), "up")]])
    counted = create_notice(db, type="unplanned", subject="Errors", state="investigating", content="x",
                            now=utc(10, 6), began_at=utc(10, 6), components=["website"]).id
    add_update(db, counted, state="resolved", content="ok", now=utc(10, 14))
    false_alarm = create_notice(db, type="unplanned", subject="Blip", state="investigating", content="x",
                                now=utc(15), began_at=utc(15), components=["website"]).id
    add_update(db, false_alarm, state="false_alarm", content="no", now=utc(15, 5))
    february = create_notice(db, type="unplanned", subject="Old", state="investigating", content="x",
                             now=utc(2, 0, 2), began_at=utc(2, 0, 2), components=["website"]).id
    add_update(db, february, state="resolved", content="ok", now=utc(2, 3, 2))
    upgrade = create_notice(db, type="planned", subject="Upgrade", state="scheduled", content="x", now=utc(1),
                            begins_at=utc(25), ends_at=utc(25, 2), components=["website"]).id
    add_update(db, upgrade, state="underway", content="x", now=utc(25))
    add_update(db, upgrade, state="complete", content="x", now=utc(25, 2))
    create_notice(db, type="unplanned", subject="DB", state="investigating", content="x", now=utc(5),
                  began_at=utc(5), components=["database"])
    return counted


async def test_metrics_exact_shape(aiohttp_client, tmp_path) -> None:
    client, app = await start_at(aiohttp_client, tmp_path)
    counted = outages(app[DB])
    await app[REFRESH]()
    q = "timeframe_start=2023-03-01&timeframe_end=2023-03-30&include_calculation_data=true"
    body = await get_json(client, f"/api/v1/components/website/metrics?{q}")
    notices = ("/api/v1/notices?filter[components_id]=website&filter[impact_timeframe_overlaps][]=2023-03-01T00:00:00"
               "&filter[impact_timeframe_overlaps][]=2023-03-30T23:59:59")
    assert body == {
        "component": {"id": "website", "name": "Website"},
        "timeframe_start": "2023-03-01",
        "timeframe_end": "2023-03-30",
        "percentage_uptime": {"percent": 100 - 72000 / 2592000 * 100, "words": "97.22%",
                              "calculation": "100 - ((total_impact_time / (total_time - total_unknown_time)) * 100)"},
        "mean_time_to_recovery": {"seconds": 36000, "words": "10 Hours",
                                  "calculation": "total_impact_time / impact_episodes.count"},
        "mean_time_between_failures": {"seconds": 1260000, "words": "14 Days, 14 Hours",
                                       "calculation": "(total_time - total_unknown_time - total_impact_time)"
                                                      " / impact_episodes.count"},
        "url": "https://status.example.org/components/website/metrics"
               "?past_x_days=custom&timeframe_end=2023-03-30&timeframe_start=2023-03-01",
        "calculation_data_in_timeframe": {
            "total_time": {"seconds": 2592000, "words": "30 Days"},
            "total_impact_time": {"seconds": 72000, "words": "20 Hours"},
            "notices": {"href": notices, "count": 1},
            "impact_episodes": {"count": 2},
            "total_unknown_time": {"seconds": 0, "words": "0 Seconds"},
        },
    }
    listed = await get_json(client, notices)  # the href lists exactly the notices counted
    assert [n["id"] for n in listed["notices"]] == [counted] and listed["meta"]["total_count"] == 1
    group = await get_json(client, f"/api/v1/components/web/metrics?{q}")
    assert group["component"] == {"id": "web", "name": "Web"}
    assert group["percentage_uptime"] == body["percentage_uptime"]  # its only child
    data = await get_json(client, "/api/v1/components/data/metrics?timeframe_start=2023-03-01&include_calculation_data=true")
    assert data["calculation_data_in_timeframe"]["notices"]["count"] == 1  # the database's notice, via the group
    assert data["mean_time_to_recovery"]["seconds"] == NOW - utc(5)  # still open: impact up to now


async def test_metrics_defaults_and_ongoing_outage(aiohttp_client, tmp_path) -> None:
    client, app = await start_at(aiohttp_client, tmp_path)
    outages(app[DB])
    append_records(app[DB], [Record("website", EFFECTIVE, "down", utc(31, 6))])  # down since 06:00, now 12:00
    await app[REFRESH]()
    body = await get_json(client, "/api/v1/components/website/metrics")
    assert (body["timeframe_start"], body["timeframe_end"]) == ("2023-03-01", "2023-03-31")
    assert "calculation_data_in_timeframe" not in body
    total, impact = 30 * DAY + 12 * 3600, 72000 + 6 * 3600
    assert body["percentage_uptime"]["percent"] == pytest.approx(100 - impact / total * 100)
    assert body["mean_time_to_recovery"]["seconds"] == impact / 3
    off = await get_json(client, "/api/v1/components/website/metrics?include_calculation_data=false")
    assert off == body
    future = await get_json(client, "/api/v1/components/website/metrics?timeframe_start=2023-03-31"
                            "&timeframe_end=2024-12-31&include_calculation_data=true")
    assert future["calculation_data_in_timeframe"]["total_time"]["seconds"] == 12 * 3600  # clipped to now
    assert future["timeframe_end"] == "2024-12-31"


async def test_metrics_summary_on_components(aiohttp_client, tmp_path) -> None:
    client, app = await start_at(aiohttp_client, tmp_path)
    outages(app[DB])
    await app[REFRESH]()
    comps = {c["id"]: c for c in (await get_json(client, "/api/v1/components"))["components"]}
    total = 30 * DAY + 12 * 3600
    assert comps["website"]["metrics_summary"] == {
        "timeframe_start": "2023-03-01", "timeframe_end": "2023-03-31",
        "percentage_uptime": {"percent": 100 - 72000 / total * 100, "words": "97.26%"},  # 97.2677: truncated
        "url": "https://status.example.org/components/website/metrics",
    }
    assert comps["web"]["metrics_summary"]["percentage_uptime"]["words"] == "97.26%"
    # The database was never monitored, but its open notice is impact: known enough to report.
    assert comps["data"]["metrics_summary"]["percentage_uptime"]["percent"] < 100
    assert list(comps["website"])[:7] == ["id", "state", "name", "description", "parent_id", "metrics_summary", "links"]


async def test_metrics_summary_null_without_any_knowledge(aiohttp_client, tmp_path) -> None:
    client, _ = await start_at(aiohttp_client, tmp_path)
    comps = (await get_json(client, "/api/v1/components"))["components"]
    assert [c["metrics_summary"] for c in comps] == [None] * 4


async def test_metrics_follow_the_live_history(aiohttp_client, tmp_path) -> None:
    client, app = await start_at(aiohttp_client, tmp_path)
    app[LIVE].update(status_data(check("web-1", "HTTP", 2, last_state_change=int(NOW - 3600)),
                                 check("db-1", "PostgreSQL", last_state_change=int(utc(1, 0, 2))),
                                 check("web-1", None, last_state_change=int(utc(1, 0, 2))), created=NOW - 5),
                     SourceHealth(stale=False, data_created=NOW - 5))
    await app[LIVE].recorder.flush()  # the history is written off the loop
    body = await get_json(client, "/api/v1/components/website/metrics?timeframe_start=2023-03-31"
                          "&include_calculation_data=true")
    data = body["calculation_data_in_timeframe"]
    assert data["total_impact_time"] == {"seconds": 3600, "words": "1 Hour"}  # down for the last hour, up to now
    assert data["total_unknown_time"]["seconds"] == 12 * 3600 - 3600  # nothing recorded before the outage
    db = await get_json(client, "/api/v1/components/database/metrics?timeframe_start=2023-03-31")
    assert db["percentage_uptime"]["words"] == "100.00%"


async def test_partial_history_uptime_counts_only_the_monitored_time(aiohttp_client, tmp_path) -> None:
    client, app = await start_at(aiohttp_client, tmp_path)
    # Monitored from the 21st only (10.5 days up to now), down on the 25th 00-06h; nothing known before.
    append_records(app[DB], [Record("website", EFFECTIVE, s, at) for at, s in [
        (utc(21), "up"), (utc(25), "down"), (utc(25, 6), "up")]])
    await app[REFRESH]()
    monitored, impact = 10.5 * DAY, 6 * 3600
    body = await get_json(client, "/api/v1/components/website/metrics?include_calculation_data=true")
    assert body["percentage_uptime"]["percent"] == pytest.approx(100 - impact / monitored * 100)  # 97.619, not 99.2
    assert body["percentage_uptime"]["words"] == "97.61%"
    assert body["mean_time_between_failures"]["seconds"] == monitored - impact  # one episode
    data = body["calculation_data_in_timeframe"]
    assert (data["total_time"]["seconds"], data["total_unknown_time"]["seconds"]) == (30.5 * DAY, 20 * DAY)
    # The page's 90-day bars say the same (their window reaches further back, into more unknown time).
    rows = read_history(app[DB], "website", EFFECTIVE, window_start(NOW), NOW + 1)
    bars = snapshot_bars(app[LIVE].snapshot, "website", rows, NOW)
    assert bars.percent == body["percentage_uptime"]["percent"]
    assert "97.61% uptime (10 days 12 h of data)" in await (await client.get("/")).text()
    comps = {c["id"]: c for c in (await get_json(client, "/api/v1/components"))["components"]}
    assert comps["website"]["metrics_summary"]["percentage_uptime"] == {"percent": bars.percent, "words": "97.61%"}
    assert comps["database"]["metrics_summary"] is None  # never monitored: no number at all


async def test_metrics_without_any_knowledge_have_no_percent(aiohttp_client, tmp_path) -> None:
    client, _ = await start_at(aiohttp_client, tmp_path)
    body = await get_json(client, "/api/v1/components/website/metrics?include_calculation_data=true")
    assert body["percentage_uptime"]["percent"] is None and body["percentage_uptime"]["words"] == "No data"
    assert (body["mean_time_to_recovery"]["seconds"], body["mean_time_between_failures"]["seconds"]) == (0, 0)
    data = body["calculation_data_in_timeframe"]
    assert data["total_unknown_time"] == data["total_time"]


@pytest.mark.parametrize("query, field", [
    ("timeframe_start=2022-03-30", "timeframe_start"),  # more than 12 months before 2023-03-31
    ("timeframe_start=2023-03-10&timeframe_end=2023-03-09", "timeframe_start"),
    ("timeframe_start=2023-04-01", "timeframe_start"),
    ("timeframe_start=2023-3-1", "timeframe_start"),
    ("timeframe_start=2023-02-30", "timeframe_start"),
    ("timeframe_start=yesterday", "timeframe_start"),
    ("timeframe_end=2023-13-01", "timeframe_end"),
    ("timeframe_end=2023-03-01&timeframe_end=2023-03-02", "timeframe_end"),
    ("include_calculation_data=yes", "include_calculation_data"),
])
async def test_metrics_bad_parameters_are_400(aiohttp_client, tmp_path, query: str, field: str) -> None:
    client, _ = await start_at(aiohttp_client, tmp_path)
    body = await get_json(client, f"/api/v1/components/website/metrics?{query}", 400)
    assert body["error"]["status"] == 400 and body["error"]["field"] == field and body["error"]["message"]


async def test_metrics_limits_and_unknown_component(aiohttp_client, tmp_path) -> None:
    client, _ = await start_at(aiohttp_client, tmp_path)
    ok = await get_json(client, "/api/v1/components/website/metrics?timeframe_start=2022-03-31")  # exactly 12 months
    assert ok["timeframe_start"] == "2022-03-31"
    resp = await client.get("/api/v1/components/website/metrics?callback=cb")  # the shared feed path: JSONP, ETag
    assert resp.headers["Access-Control-Allow-Origin"] == "*" and (await resp.text()).startswith("/**/cb(")
    again = await client.get("/api/v1/components/website/metrics?callback=cb",
                             headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304
    body = await get_json(client, "/api/v1/components/nosuch/metrics", 404)
    assert body["error"] == {"status": 404, "message": "no component with id 'nosuch'", "field": "id"}


async def test_impact_time_on_notices(aiohttp_client, tmp_path) -> None:
    client, app = await start_at(aiohttp_client, tmp_path)
    ongoing = create_notice(app[DB], type="unplanned", subject="Now", state="investigating", content="x",
                            now=NOW - 120, began_at=NOW - 120).id
    blip = create_notice(app[DB], type="unplanned", subject="Blip", state="investigating", content="x",
                         now=NOW - 900, began_at=NOW - 900).id
    add_update(app[DB], blip, state="false_alarm", content="no", now=NOW - 600)
    planned = seed(app[DB], "planned-future", NOW)
    await app[REFRESH]()
    listed = {n["id"]: n for n in (await get_json(client, "/api/v1/notices"))["notices"]}
    assert listed[ongoing]["impact_time"] == {"seconds": 120, "words": "2 minutes"}  # the seed's example
    keys = list(listed[ongoing])
    assert keys[keys.index("updated_at") + 1 : keys.index("updated_at") + 3] == ["impact_time", "links"]  # seed order
    assert listed[blip]["impact_time"] == {"seconds": 0, "words": "0 seconds"}  # a false alarm had no impact
    assert "impact_time" not in listed[planned]
    detail = (await get_json(client, f"/api/v1/notices/{ongoing}"))["notice"]
    assert detail["impact_time"] == {"seconds": 120, "words": "2 minutes"}


@pytest.mark.parametrize("query", [
    "filter[impact_timeframe_overlaps][]=2023-03-01T00:00:00",
    "filter[impact_timeframe_overlaps][]=2023-03-01&filter[impact_timeframe_overlaps][]=soon",
])
async def test_impact_overlap_filter_needs_two_timestamps(aiohttp_client, tmp_path, query: str) -> None:
    client, _ = await start_at(aiohttp_client, tmp_path)
    body = await get_json(client, f"/api/v1/notices?{query}", 400)
    assert body["error"]["field"] == "filter[impact_timeframe_overlaps][]"
