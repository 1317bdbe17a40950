"""Statuspage v2 incident updates: affected_components from the recorded history, in-progress maintenance, links."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from bridge.app import make_app
from bridge.cli import main
from bridge.config import Config
from bridge.config_load import load_config
from bridge.history import EFFECTIVE, MONITORED, Record, append_records
from bridge.keys import DB, LIVE, REFRESH
from bridge.settings import Settings
from bridge.storage import add_update, create_notice
from tests.bridgeproc import site_toml
from tests.conftest import check, status_data, web_config
from tests.test_statuspage import FRESH, UPDATE_KEYS, get_json

T = 1_700_000_000.0
AUTH = {"Authorization": "Bearer secret"}
A = "{http://www.w3.org/2005/Atom}"
OP, DEGRADED, MAJOR, MAINT = "operational", "degraded_performance", "major_outage", "under_maintenance"
NAMES = {"website": "Website", "database": "Database"}
Rows = dict[str, list[tuple[float, str]]]


async def start(aiohttp_client: Any, tmp_path: Path, config: Config | None = None) -> tuple[Any, Any]:
    """The real app (admin token "secret") over a fresh SQLite file."""
    settings = Settings(config or web_config(), watch=False, db_path=tmp_path / "db.sqlite", admin_tokens=("secret",))
    app = make_app(settings)
    return await aiohttp_client(app), app


def affected(code: str, old: str, new: str) -> dict[str, str]:
    """One affected_components entry as Statuspage spells it."""
    return {"code": code, "name": NAMES[code], "old_status": old, "new_status": new}


# Each row: linked ids, the shown (effective) history per component as (seconds after T, status), the update
# times (seconds after T), and each update's affected_components, oldest update first. old = the status at the
# previous update (before the first: just before it), new = the status at the update; None = nothing known.
AFFECTED = [
    pytest.param(["website"], {"website": [(-1000, "up"), (0, "down")]}, [0],
                 [[affected("website", OP, MAJOR)]], id="changed-at-the-update"),
    pytest.param(["website"], {"website": [(-1000, "down")]}, [0],
                 [[affected("website", MAJOR, MAJOR)]], id="down-before-the-incident"),
    pytest.param(["website"], {"website": [(-1000, "up"), (50, "partial"), (150, "down"), (250, "up")]},
                 [0, 100, 200, 300],
                 [[affected("website", OP, OP)], [affected("website", OP, DEGRADED)],
                  [affected("website", DEGRADED, MAJOR)], [affected("website", MAJOR, OP)]], id="chained"),
    pytest.param(["website"], {"website": [(50, "up")]}, [0, 100, 200],
                 [None, None, [affected("website", OP, OP)]], id="before-history-began"),
    pytest.param(["website"], {"website": [(-100, "unknown"), (50, "nodata"), (150, "down")]}, [0, 100, 200, 300],
                 [None, None, None, [affected("website", MAJOR, MAJOR)]], id="stale-and-never-checked-claim-nothing"),
    pytest.param(["data", "gone"], {"database": [(-1000, "up"), (0, "maintenance"), (60, "up")]}, [0, 60],
                 [[affected("database", OP, MAINT)], [affected("database", MAINT, OP)]],
                 id="group-stands-for-its-components-removed-dropped"),
    pytest.param(["database", "website"], {"website": [(-1000, "up")]}, [0],
                 [[affected("website", OP, OP)]], id="only-known-components-listed-in-page-order"),
    pytest.param([], {"website": [(-1000, "down")]}, [0], [None], id="no-components"),
]


@pytest.mark.parametrize("links, history, times, expected", AFFECTED)
async def test_affected_components_from_the_history(aiohttp_client, tmp_path, links: list[str], history: Rows,
                                                    times: list[float], expected: list[Any]) -> None:
    client, app = await start(aiohttp_client, tmp_path)
    db = app[DB]
    for cid, rows in history.items():
        # The monitored status says otherwise: only the shown (effective) one is what the page claimed.
        append_records(db, [Record(cid, MONITORED, "partial", T - 5000)])
        append_records(db, [Record(cid, EFFECTIVE, status, T + at) for at, status in rows])
    n = create_notice(db, type="unplanned", subject="Trouble", state="investigating", content="u0",
                      now=T + times[0], components=links)
    for k, at in enumerate(times[1:], 1):
        add_update(db, n.id, state="identified", content=f"u{k}", now=T + at)
    await app[REFRESH]()
    for path, key in (("/api/v2/incidents.json", "incidents"), ("/api/v2/summary.json", "incidents")):
        (inc,) = (await get_json(client, path))[key]
        updates = inc["incident_updates"]  # newest first
        assert [u["body"] for u in updates] == [f"u{k}" for k in reversed(range(len(times)))]
        assert [u["affected_components"] for u in updates] == expected[::-1]
        assert all(list(u) == UPDATE_KEYS and u["custom_tweet"] is None and u["tweet_id"] is None for u in updates)
        assert inc["reminder_intervals"] is None


async def test_a_change_the_history_writer_still_holds_is_known(aiohttp_client, tmp_path) -> None:
    client, app = await start(aiohttp_client, tmp_path)
    app[LIVE].update(status_data(check("web-1", "HTTP"), check("db-1", "PostgreSQL")), FRESH)
    await app[LIVE].recorder.flush()
    now = time.time()
    n = create_notice(app[DB], type="planned", subject="Disk swap", state="underway", content="Started.", now=now,
                      begins_at=now - 60, ends_at=now + 3600, components=["database"])
    # Another process (the CLI, a second daemon) holds the write lock: the writer cannot store the change yet.
    locker = sqlite3.connect(tmp_path / "db.sqlite")
    locker.execute("BEGIN IMMEDIATE")
    try:
        await app[REFRESH]()  # publishes the maintenance; its start is queued behind the lock
        assert app[DB].execute("select count(*) from history where status = 'maintenance'").fetchone()[0] == 0
        (m,) = (await get_json(client, "/api/v2/scheduled-maintenances/active.json"))["scheduled_maintenances"]
    finally:
        locker.rollback()
        locker.close()
    assert m["id"] == str(n.id)
    assert m["incident_updates"][0]["affected_components"] == [affected("database", OP, MAINT)]
    await app[LIVE].recorder.flush()


async def test_unreadable_history_claims_nothing(aiohttp_client, tmp_path, caplog) -> None:
    client, app = await start(aiohttp_client, tmp_path)
    db = app[DB]
    append_records(db, [Record("website", EFFECTIVE, "down", T - 1000)])
    create_notice(db, type="unplanned", subject="Trouble", state="investigating", content="x", now=T,
                  components=["website"])
    await app[REFRESH]()
    db.execute("alter table history rename to history_gone")  # every read of the history fails from now on
    (inc,) = (await get_json(client, "/api/v2/incidents.json"))["incidents"]
    assert inc["incident_updates"][0]["affected_components"] is None
    assert "reading the status history for the Statuspage documents failed" in caplog.text


async def post_maintenance(client: Any, body: dict[str, Any], status: int) -> dict[str, Any]:
    """POST a notice to the admin API, asserting the status."""
    resp = await client.post("/api/v1/admin/notices", json=body, headers=AUTH)
    text = await resp.text()
    assert resp.status == status, text
    return json.loads(text)


async def timelines(client: Any, nid: int) -> dict[str, list[Any]]:
    """The notice's updates as the Statuspage and Sorry documents ((state, time)) and Atom (labels) show them, oldest first."""
    v2 = (await get_json(client, "/api/v2/scheduled-maintenances.json"))["scheduled_maintenances"]
    (m,) = [m for m in v2 if m["id"] == str(nid)]
    v1 = (await get_json(client, f"/api/v1/notices/{nid}"))["notice"]
    feed = ET.fromstring(await (await client.get("/notices.atom")).read())
    (entry,) = [e for e in feed.iter(f"{A}entry") if e.findtext(f"{A}id", "").endswith(f":notices/{nid}")]
    content = entry.findtext(f"{A}content") or ""
    return {
        "v2": [(u["status"], u["created_at"]) for u in reversed(m["incident_updates"])],
        "v1": [(u["state"], u["created_at"]) for u in v1["updates"]],
        "atom": re.findall(r"<strong>(\w+)</strong>", content)[::-1],
    }


async def test_in_progress_maintenance_through_the_admin_api(aiohttp_client, tmp_path) -> None:
    client, app = await start(aiohttp_client, tmp_path)
    app[LIVE].update(status_data(check("web-1", "HTTP"), check("db-1", "PostgreSQL")), FRESH)
    await app[LIVE].recorder.flush()  # the database's "up" is in the history before the maintenance starts
    now = time.time()
    body = {"type": "planned", "subject": "Disk swap", "components": ["database"],
            "begins_at": now - 600, "ends_at": now + 3600}
    notice = (await post_maintenance(client, body, 201))["notice"]
    assert notice["state"] == "underway" and notice["timeline_state"] == "present"
    (update,) = notice["updates"]
    assert (update["state"], update["content"]) == ("underway", "This maintenance is underway.")
    # Underway since it was announced, not since the (earlier) planned start: nothing is backdated.
    assert notice["began_at"] == notice["created_at"] == update["created_at"] > notice["begins_at"]
    await app[REFRESH]()  # a scheduler pass adds nothing: the start is not due again
    (m,) = (await get_json(client, "/api/v2/scheduled-maintenances/active.json"))["scheduled_maintenances"]
    assert (m["status"], m["started_at"], m["scheduled_for"]) == ("in_progress", notice["began_at"], notice["begins_at"])
    (u,) = m["incident_updates"]
    assert (u["status"], u["created_at"]) == ("in_progress", update["created_at"])
    assert u["affected_components"] == [affected("database", OP, MAINT)]
    assert (await get_json(client, "/api/v2/scheduled-maintenances/upcoming.json"))["scheduled_maintenances"] == []
    assert await timelines(client, notice["id"]) == {
        "v2": [("in_progress", update["created_at"])], "v1": [("underway", update["created_at"])],
        "atom": ["Underway"]}


async def test_in_progress_maintenance_through_the_cli(aiohttp_client, tmp_path, capsys) -> None:
    site = tmp_path / "site.toml"
    site.write_text(site_toml(8080, "CLI page"))  # no [page] url: the links are root-relative paths
    client, app = await start(aiohttp_client, tmp_path, load_config(site))
    db = str(tmp_path / "db.sqlite")
    code = main(["notice", "create", "--db", db, "--config", str(site), "--type", "planned", "--subject", "Disk swap",
                 "--component", "database", "--begins-at", str(int(time.time()) - 600),
                 "--ends-at", str(int(time.time()) + 3600), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    notice = json.loads(out)["notice"]
    assert (notice["state"], [u["state"] for u in notice["updates"]]) == ("underway", ["underway"])
    await app[REFRESH]()
    body = await get_json(client, "/api/v2/scheduled-maintenances/active.json")
    (m,) = body["scheduled_maintenances"]
    assert [u["status"] for u in m["incident_updates"]] == ["in_progress"]
    assert (body["page"]["url"], m["shortlink"]) == ("/", f"/notices/{notice['id']}-disk-swap")
    assert await timelines(client, notice["id"]) == {
        "v2": [("in_progress", notice["began_at"])], "v1": [("underway", notice["began_at"])],
        "atom": ["Underway"]}


# (begins_at, ends_at relative to now, state given or None) -> the state stored, or the field a 422 names.
WINDOWS = [
    pytest.param(3600, 7200, None, "scheduled", id="future-stays-scheduled"),
    pytest.param(-600, 3600, None, "underway", id="started-is-underway"),
    pytest.param(-600, 3600, "underway", "underway", id="started-underway-given"),
    pytest.param(-600, 3600, "scheduled", "state", id="started-but-scheduled-given"),
    pytest.param(-7200, -3600, None, "ends_at", id="wholly-past"),
    pytest.param(-7200, -3600, "complete", "ends_at", id="wholly-past-complete"),
]


@pytest.mark.parametrize("begins, ends, state, expected", WINDOWS)
async def test_maintenance_window_against_the_clock(aiohttp_client, tmp_path, capsys, begins: float, ends: float,
                                                   state: str | None, expected: str) -> None:
    client, app = await start(aiohttp_client, tmp_path)
    now = time.time()
    body = {"type": "planned", "subject": "Work", "begins_at": now + begins, "ends_at": now + ends}
    body |= {"state": state} if state else {}
    got = await post_maintenance(client, body, 422 if expected in ("state", "ends_at") else 201)
    cli_args = ["notice", "create", "--db", str(tmp_path / "cli.sqlite"), "--type", "planned", "--subject", "Work",
                "--begins-at", str(now + begins), "--ends-at", str(now + ends), "--json", *(["--state", state] if state else [])]
    code = main(cli_args)
    out, err = capsys.readouterr()
    if expected in ("state", "ends_at"):
        assert got["error"]["field"] == expected and "past" in got["error"]["message"]
        assert (code, out) == (2, "") and err.startswith(f"error: {expected}: ") and "past" in err
        assert app[DB].execute("select count(*) from notices").fetchone()[0] == 0
    else:
        assert code == 0, err
        for notice in (got["notice"], json.loads(out)["notice"]):
            assert [u["state"] for u in notice["updates"]] == [expected] and notice["state"] == expected


@pytest.mark.parametrize("patch, field", [
    ({"begins_at": -60}, "begins_at"),  # start it with an "underway" update instead
    ({"ends_at": -60, "begins_at": -120}, "ends_at"),
])
async def test_patching_a_scheduled_maintenance_into_the_past_is_refused(aiohttp_client, tmp_path, patch, field):
    client, app = await start(aiohttp_client, tmp_path)
    now = time.time()
    body = {"type": "planned", "subject": "Work", "begins_at": now + 3600, "ends_at": now + 7200}
    nid = (await post_maintenance(client, body, 201))["notice"]["id"]
    resp = await client.patch(f"/api/v1/admin/notices/{nid}", json={k: now + v for k, v in patch.items()}, headers=AUTH)
    assert resp.status == 422 and (await resp.json())["error"]["field"] == field
    await app[REFRESH]()
    (m,) = (await get_json(client, "/api/v2/scheduled-maintenances/upcoming.json"))["scheduled_maintenances"]
    assert [u["status"] for u in m["incident_updates"]] == ["scheduled"]


@pytest.mark.parametrize("page_url, page, base", [
    ("https://status.example.org", "https://status.example.org", "https://status.example.org"),
    ("https://status.example.org/", "https://status.example.org/", "https://status.example.org"),
    ("https://example.org/it/status/", "https://example.org/it/status/", "https://example.org/it/status"),
    ("", "/", ""),
])
async def test_links_are_the_notice_page_address(aiohttp_client, tmp_path, page_url: str, page: str, base: str):
    client, app = await start(aiohttp_client, tmp_path, web_config(page_url=page_url))
    now = time.time()
    inc = create_notice(app[DB], type="unplanned", subject="Website down", state="investigating", content="x", now=now)
    maint = create_notice(app[DB], type="planned", subject="DB upgrade", state="scheduled", content="x", now=now,
                          begins_at=now + 3600, ends_at=now + 7200)
    await app[REFRESH]()
    html = await (await client.get("/")).text()
    for n, slug in ((inc, "website-down"), (maint, "db-upgrade")):
        path = f"/notices/{n.id}-{slug}"
        assert f'href="{path}"' in html  # the HTML page links the same notice page
        assert (await client.get(path)).status == 200
        assert (await get_json(client, f"/api/v1/notices/{n.id}"))["notice"]["url"] == base + path
    summary = await get_json(client, "/api/v2/summary.json")
    assert summary["page"]["url"] == page
    assert [i["shortlink"] for i in summary["incidents"]] == [f"{base}/notices/{inc.id}-website-down"]
    assert [m["shortlink"] for m in summary["scheduled_maintenances"]] == [f"{base}/notices/{maint.id}-db-upgrade"]
    feed = ET.fromstring(await (await client.get("/notices.atom")).read())
    links = sorted(e.find(f"{A}link").get("href") for e in feed.iter(f"{A}entry"))
    assert links == sorted(f"{base}/notices/{n.id}-{s}" for n, s in ((inc, "website-down"), (maint, "db-upgrade")))
