"""Admin API: bearer auth, validation (422 naming the field, nothing written), notices, updates, overrides."""

from __future__ import annotations

import json
import logging
import re
import time

import pytest

from bridge.admin_input import InputError, parse_time
from bridge.app import make_app
from bridge.keys import DB, LIVE
from bridge.model import SourceHealth
from bridge.settings import Settings
from tests.conftest import check, status_data, web_config

AUTH = {"Authorization": "Bearer secret"}
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
FRESH = SourceHealth(stale=False, data_created=1_700_000_000.0, last_parse_seconds=0.01, parses_total=1)
TABLES = ("notices", "notice_updates", "notice_components", "overrides")
FUTURE = time.time() + 86400
PLANNED = {
    "type": "planned",
    "subject": "Database upgrade",
    "begins_at": "2030-01-01T10:00:00Z",
    "ends_at": "2030-01-01T12:00:00+01:00",
    "components": ["database"],
}


def make(tmp_path, tokens: tuple[str, ...] = ("secret",)):
    """The real app on a temp SQLite file with all-up monitoring data."""
    app = make_app(Settings(web_config(), watch=False, db_path=tmp_path / "db.sqlite", admin_tokens=tokens))
    app[LIVE].update(status_data(check("web-1", "HTTP"), check("db-1", "PostgreSQL")), FRESH)
    return app


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    """A client for the app with one admin token, "secret"."""
    return await aiohttp_client(make(tmp_path))


def counts(client) -> dict[str, int]:
    """Rows per table, to prove a rejected request wrote nothing."""
    db = client.server.app[DB]
    return {t: db.execute(f"select count(*) from {t}").fetchone()[0] for t in TABLES}


async def call(client, method: str, path: str, body: object = None, status: int = 200, headers=AUTH) -> dict:
    """One admin request, asserting the status; returns the JSON body (or {} for 204)."""
    kw = {} if body is None else {"data": body if isinstance(body, bytes) else json.dumps(body)}
    resp = await client.request(method, "/api/v1/admin" + path, headers=headers, **kw)
    text = await resp.text()
    assert resp.status == status, text
    return json.loads(text) if text else {}


async def new_notice(client, **kw: object) -> dict:
    """Create an unplanned notice (fields overridable) and return it."""
    body = {"type": "unplanned", "subject": "Email delays", "components": ["website"], **kw}
    return (await call(client, "POST", "/notices", body, 201))["notice"]


# -- auth ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers, status",
    [
        ({}, 401),
        ({"Authorization": ""}, 401),
        ({"Authorization": "Basic c2VjcmV0"}, 401),
        ({"Authorization": "Bearer"}, 401),
        ({"Authorization": "Bearer   "}, 401),
        ({"Authorization": "Bearer wrong"}, 403),
        ({"Authorization": "Bearer secretX"}, 403),
        ({"Authorization": "Bearer secret"}, 200),
        ({"Authorization": "bearer secret"}, 200),
        ({"Authorization": "Bearer other-token"}, 200),
    ],
)
async def test_auth(aiohttp_client, tmp_path, headers, status):
    client = await aiohttp_client(make(tmp_path, ("secret", "other-token")))
    for path in ("/notices", "/overrides"):
        resp = await client.get("/api/v1/admin" + path, headers=headers)
        assert resp.status == status
        if status == 401:
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        if status != 200:
            assert (await resp.json())["error"]["status"] == status


async def test_auth_checked_before_anything_else(client):
    before = counts(client)
    for method, path in [("POST", "/notices"), ("DELETE", "/overrides/1"), ("PATCH", "/notices/abc")]:
        resp = await client.request(method, "/api/v1/admin" + path, data=b"{not json", headers={"Authorization": "Bearer nope"})
        assert resp.status == 403
    assert counts(client) == before


async def test_no_tokens_means_disabled(aiohttp_client, tmp_path):
    client = await aiohttp_client(make(tmp_path, ()))
    for headers in ({}, AUTH, {"Authorization": "Bearer "}):
        resp = await client.get("/api/v1/admin/notices", headers=headers)
        assert resp.status == 403
        assert (await resp.json())["error"]["message"] == "admin API disabled: no tokens configured"


async def test_tokens_never_logged(client, caplog):
    caplog.set_level(logging.DEBUG)
    await call(client, "GET", "/notices", headers={"Authorization": "Bearer not-the-secret"}, status=403)
    await new_notice(client)
    assert "secret" not in caplog.text
    assert "admin: rejected token" in caplog.text


# -- validation ---------------------------------------------------------------------------------------------------

U = {"type": "unplanned", "subject": "Down"}
O = {"component": "website", "status": "down", "message": "Moving to a new provider", "reason": "Firewall work"}

NOTICE_CASES = [
    ({}, "type"),
    ({"type": "weird", "subject": "x"}, "type"),
    ({"type": 5, "subject": "x"}, "type"),
    ({"type": "unplanned"}, "subject"),
    ({**U, "subject": ""}, "subject"),
    ({**U, "subject": "   "}, "subject"),
    ({**U, "subject": "x" * 201}, "subject"),
    ({**U, "subject": "two\nlines"}, "subject"),
    ({**U, "subject": 7}, "subject"),
    ({**U, "state": "scheduled"}, "state"),
    ({**U, "state": None}, "state"),
    ({**U, "content": ""}, "content"),
    ({**U, "content": "x" * 10001}, "content"),
    ({**U, "content": ["x"]}, "content"),
    ({**U, "components": "website"}, "components"),
    ({**U, "components": ["website", "nope"]}, "components[1]"),
    ({**U, "components": ["website", "database", 3]}, "components[2]"),
    ({**U, "begins_at": "2030-01-01T00:00Z"}, "begins_at"),
    ({**U, "colour": "red"}, "colour"),
    ({**PLANNED, "begins_at": None}, "begins_at"),
    ({k: v for k, v in PLANNED.items() if k != "ends_at"}, "ends_at"),
    ({**PLANNED, "ends_at": "2030-01-01T09:00:00Z"}, "ends_at"),
    ({**PLANNED, "ends_at": PLANNED["begins_at"]}, "ends_at"),
    ({**PLANNED, "begins_at": "next tuesday"}, "begins_at"),
    ({**PLANNED, "begins_at": True}, "begins_at"),
    ({**PLANNED, "begins_at": -5}, "begins_at"),
    ({**PLANNED, "state": "investigating"}, "state"),
    ([U], "body"),
    ("just a string", "body"),
]

OVERRIDE_CASES = [
    ({}, "component"),
    ({**O, "component": "web"}, "component"),  # a group: overrides replace a component's status
    ({**O, "component": "nope"}, "component"),
    ({**O, "component": ["website"]}, "component"),
    ({**O, "status": "nodata"}, "status"),
    ({**O, "status": 2}, "status"),
    ({k: v for k, v in O.items() if k != "status"}, "status"),
    ({**O, "reason": "  "}, "reason"),
    ({**O, "reason": "x" * 1001}, "reason"),
    ({**O, "reason": "a\x00b"}, "reason"),
    ({**O, "message": ""}, "message"),
    ({**O, "message": "x" * 1001}, "message"),
    ({**O, "message": "two\nlines"}, "message"),
    ({**O, "message": "\x1b[31mred"}, "message"),
    ({**O, "message": "lone \ud800 surrogate"}, "message"),
    ({**O, "message": ["x"]}, "message"),
    ({**O, "starts_at": FUTURE, "ends_at": FUTURE - 60}, "ends_at"),
    ({**O, "ends_at": "2001-01-01T00:00Z"}, "ends_at"),
    ({**O, "starts_at": "yesterday"}, "starts_at"),
    ({**O, "until": FUTURE}, "until"),
]


@pytest.mark.parametrize("body, field", NOTICE_CASES)
async def test_notice_validation(client, body, field):
    before = counts(client)
    err = (await call(client, "POST", "/notices", body, 422))["error"]
    assert (err["status"], err["field"]) == (422, field)
    assert err["message"]
    assert counts(client) == before


@pytest.mark.parametrize("body, field", OVERRIDE_CASES)
async def test_override_validation(client, body, field):
    before = counts(client)
    err = (await call(client, "POST", "/overrides", body, 422))["error"]
    assert (err["status"], err["field"]) == (422, field)
    assert counts(client) == before


@pytest.mark.parametrize(
    "method, suffix, body, field",
    [
        ("POST", "/updates", {"state": "scheduled", "content": "x"}, "state"),
        ("POST", "/updates", {"state": "resolved"}, "content"),
        ("POST", "/updates", {"state": "resolved", "content": ""}, "content"),
        ("POST", "/updates", {"state": "resolved", "content": "x", "at": 1}, "at"),
        ("PATCH", "", {}, "body"),
        ("PATCH", "", {"subject": ""}, "subject"),
        ("PATCH", "", {"subject": "ok", "components": ["website", "nope"]}, "components[1]"),
        ("PATCH", "", {"ends_at": "2030-01-01T00:00Z"}, "ends_at"),  # unplanned: no schedule
        ("PATCH", "", {"type": "planned"}, "type"),
        ("PUT", "/components", {}, "components"),
        ("PUT", "/components", {"components": ["nope"]}, "components[0]"),
        ("PUT", "/components", {"components": None}, "components"),
    ],
)
async def test_change_validation_writes_nothing(client, method, suffix, body, field):
    notice = await new_notice(client)
    before = counts(client)
    err = (await call(client, method, f"/notices/{notice['id']}{suffix}", body, 422))["error"]
    assert err["field"] == field
    assert counts(client) == before
    assert (await call(client, "GET", f"/notices/{notice['id']}"))["notice"] == notice


async def test_patch_schedule_checked_against_stored_times(client):
    notice = (await call(client, "POST", "/notices", PLANNED, 201))["notice"]
    err = (await call(client, "PATCH", f"/notices/{notice['id']}", {"begins_at": "2030-01-01T11:00Z"}, 422))["error"]
    assert err["field"] == "begins_at"
    err = (await call(client, "PATCH", f"/notices/{notice['id']}", {"ends_at": "2030-01-01T09:59Z"}, 422))["error"]
    assert err["field"] == "ends_at"
    moved = (await call(client, "PATCH", f"/notices/{notice['id']}", {"begins_at": "2030-01-01T08:00Z", "ends_at": 1893492000}))
    assert (moved["notice"]["begins_at"], moved["notice"]["ends_at"]) == ("2030-01-01T08:00:00.000Z", "2030-01-01T10:00:00.000Z")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2026-12-01T10:00Z", 1796119200.0),
        ("2026-12-01T10:00", 1796119200.0),
        ("2026-12-01T11:00:00+01:00", 1796119200.0),
        ("2026-12-01T10:00:00.500Z", 1796119200.5),
        (1796119200, 1796119200.0),
        (1796119200.25, 1796119200.25),
        ("1796119200", 1796119200.0),
    ],
)
def test_parse_time(value, expected):
    assert parse_time(value, "t") == expected


@pytest.mark.parametrize("value", ["", "soon", "2026-13-01", None, [], {}, True, float("nan"), float("inf"), -1, 1e20, "x" * 100])
def test_parse_time_rejects(value):
    with pytest.raises(InputError) as exc:
        parse_time(value, "when")
    assert exc.value.field == "when"


# -- notices ------------------------------------------------------------------------------------------------------


async def test_create_get_list_notices(client):
    resp = await client.post("/api/v1/admin/notices", json={**U, "components": ["website", "web", "website"]}, headers=AUTH)
    assert resp.status == 201
    assert resp.headers["Cache-Control"] == "no-store"
    notice = (await resp.json())["notice"]
    assert resp.headers["Location"] == f"/api/v1/admin/notices/{notice['id']}"
    assert (notice["type"], notice["state"], notice["subject"]) == ("unplanned", "investigating", "Down")
    assert notice["components"] == ["web", "website"]
    assert [u["state"] for u in notice["updates"]] == ["investigating"]
    assert notice["updates"][0]["content"] == "We are investigating."
    assert ISO_MS.fullmatch(notice["created_at"]) and ISO_MS.fullmatch(notice["began_at"])
    assert (notice["ended_at"], notice["begins_at"], notice["timeline_state"]) == (None, None, "present")

    planned = (await call(client, "POST", "/notices", {**PLANNED, "content": "Upgrading to 16"}, 201))["notice"]
    assert (planned["state"], planned["timeline_state"]) == ("scheduled", "future")
    assert (planned["begins_at"], planned["ends_at"]) == ("2030-01-01T10:00:00.000Z", "2030-01-01T11:00:00.000Z")
    assert planned["updates"][0]["content"] == "Upgrading to 16"

    assert (await call(client, "GET", f"/notices/{notice['id']}"))["notice"] == notice
    listed = (await call(client, "GET", "/notices"))["notices"]
    assert {n["id"] for n in listed} == {notice["id"], planned["id"]}


async def test_updates_move_state(client):
    notice = await new_notice(client)
    nid = notice["id"]
    r = (await call(client, "POST", f"/notices/{nid}/updates", {"state": "identified", "content": "Found it"}, 201))["notice"]
    assert r["state"] == "identified"
    r = (await call(client, "POST", f"/notices/{nid}/updates", {"content": "Still on it"}, 201))["notice"]
    assert r["state"] == "identified"  # state defaults to the current one
    r = (await call(client, "POST", f"/notices/{nid}/updates", {"state": "resolved", "content": "Fixed"}, 201))["notice"]
    assert r["state"] == "resolved"
    assert ISO_MS.fullmatch(r["ended_at"])
    assert r["timeline_state"] == "past_recent"
    assert [(u["state"], u["content"]) for u in r["updates"]] == [
        ("investigating", "We are investigating."),
        ("identified", "Found it"),
        ("identified", "Still on it"),
        ("resolved", "Fixed"),
    ]


async def test_patch_and_link_components(client):
    nid = (await new_notice(client))["id"]
    r = (await call(client, "PATCH", f"/notices/{nid}", {"subject": "Email delays (EU)", "components": ["database"]}))["notice"]
    assert (r["subject"], r["slug"], r["components"]) == ("Email delays (EU)", "email-delays-eu", ["database"])
    r = (await call(client, "PUT", f"/notices/{nid}/components", {"components": ["website", "data"]}))["notice"]
    assert r["components"] == ["data", "website"]
    r = (await call(client, "PUT", f"/notices/{nid}/components", {"components": []}))["notice"]
    assert r["components"] == []
    assert len(r["updates"]) == 1


async def test_created_notice_reaches_the_snapshot(client):
    await new_notice(client)
    assert [n.subject for n in client.server.app[LIVE].snapshot.notices] == ["Email delays"]


# -- overrides ----------------------------------------------------------------------------------------------------


async def service(client, component: str) -> dict:
    """One service from the public Oxford feed."""
    feed = await (await client.get("/api/services.json")).json()
    return next(s for g in feed["groups"] for s in g["services"] if s["id"] == component)


async def test_override_create_list_delete_and_feed(client):
    assert (await service(client, "website"))[("status")] == "up"
    created = (await call(client, "POST", "/overrides", {**O, "ends_at": FUTURE}, 201))["override"]
    assert (created["component"], created["status"], created["active"]) == ("website", "down", True)
    assert ISO_MS.fullmatch(created["starts_at"]) and ISO_MS.fullmatch(created["ends_at"])
    shown = await service(client, "website")
    assert (shown["status"], shown["status_code"], shown["monitored_status"]) == ("down", 2, "up")
    assert (await service(client, "database"))["status"] == "up"

    later = (await call(client, "POST", "/overrides", {**O, "status": "maintenance", "starts_at": FUTURE, "ends_at": None}, 201))
    assert later["override"]["active"] is False and later["override"]["ends_at"] is None
    listed = (await call(client, "GET", "/overrides"))["overrides"]
    assert [o["id"] for o in listed] == [created["id"], later["override"]["id"]]

    resp = await client.delete(f"/api/v1/admin/overrides/{created['id']}", headers=AUTH)
    assert resp.status == 204
    assert (await service(client, "website"))["status"] == "up"
    await call(client, "DELETE", f"/overrides/{created['id']}", status=404)
    assert len((await call(client, "GET", "/overrides"))["overrides"]) == 1


@pytest.mark.parametrize(
    "texts, shown",
    [
        ({"message": "Moving to a new provider", "reason": "Firewall work"}, "override: Moving to a new provider"),
        ({"message": "Moving to a new provider"}, "override: Moving to a new provider"),
        ({"reason": "Firewall work"}, "set by an operator"),
        ({"message": None, "reason": None}, "set by an operator"),
        ({}, "set by an operator"),
    ],
)
async def test_override_texts_are_optional(client, texts, shown):
    """Message and reason may each be left out (or null): the admin listing has both, the public only the message."""
    created = (await call(client, "POST", "/overrides", {"component": "website", "status": "down", **texts}, 201))["override"]
    assert (created["message"], created["reason"]) == (texts.get("message"), texts.get("reason"))
    assert (await service(client, "website"))["override"] == {"status": "down", "message": texts.get("message"), "ends_at": None}
    page = await (await client.get("/")).text()
    assert f"Shown: Down ({shown}) – monitoring says Up" in page


PATCH_CASES = [
    ({}, "body"),
    ({"component": "database"}, "component"),  # an override stays on its component: delete and add instead
    ({"status": "nodata"}, "status"),
    ({"status": None}, "status"),
    ({"message": ""}, "message"),
    ({"message": "x" * 1001}, "message"),
    ({"message": "bell\x07"}, "message"),
    ({"message": "\udfff"}, "message"),
    ({"reason": "two\nlines"}, "reason"),
    ({"reason": 5}, "reason"),
    ({"ends_at": "2001-01-01T00:00Z"}, "ends_at"),
    ({"starts_at": FUTURE + 7200}, "starts_at"),  # after the stored ends_at
    ({"starts_at": FUTURE, "ends_at": FUTURE - 60}, "ends_at"),
    ({"message": "fine", "ends_at": "soon"}, "ends_at"),  # one bad field: nothing of the patch is written
]


@pytest.mark.parametrize("body, field", PATCH_CASES)
async def test_override_patch_validation_writes_nothing(client, body, field):
    created = (await call(client, "POST", "/overrides", {**O, "ends_at": FUTURE + 3600}, 201))["override"]
    err = (await call(client, "PATCH", f"/overrides/{created['id']}", body, 422))["error"]
    assert (err["status"], err["field"]) == (422, field)
    assert (await call(client, "GET", "/overrides"))["overrides"] == [created]


async def test_override_patch_changes_what_the_public_sees(client):
    created = (await call(client, "POST", "/overrides", O, 201))["override"]
    path = f"/overrides/{created['id']}"
    patched = (await call(client, "PATCH", path, {"message": "Back within the hour", "status": "partial", "ends_at": FUTURE}))["override"]
    assert (patched["message"], patched["reason"], patched["status"]) == ("Back within the hour", "Firewall work", "partial")
    assert patched["starts_at"] == created["starts_at"] and patched["ends_at"] is not None
    shown = await service(client, "website")
    assert shown["override"] == {"status": "partial", "message": "Back within the hour", "ends_at": patched["ends_at"][:19] + "Z"}
    assert "override: Back within the hour, until" in await (await client.get("/")).text()

    cleared = (await call(client, "PATCH", path, {"message": None, "ends_at": None}))["override"]
    assert (cleared["message"], cleared["reason"], cleared["ends_at"]) == (None, "Firewall work", None)
    assert (await service(client, "website"))["override"] == {"status": "partial", "message": None, "ends_at": None}
    assert "Shown: Partial (set by an operator) – monitoring says Up" in await (await client.get("/")).text()


# -- errors -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/notices/999"),
        ("GET", "/notices/abc"),
        ("GET", "/notices/-1"),
        ("GET", "/notices/1.5"),
        ("GET", "/notices/99999999999999999999999"),
        ("PATCH", "/notices/999"),
        ("POST", "/notices/999/updates"),
        ("POST", "/notices/abc/updates"),
        ("PUT", "/notices/999/components"),
        ("DELETE", "/overrides/999"),
        ("PATCH", "/overrides/999"),
        ("PATCH", "/overrides/abc"),
        ("DELETE", "/overrides/abc"),
        ("DELETE", "/overrides/99999999999999999999999"),
    ],
)
async def test_unknown_ids_404(client, method, path):
    body = {"state": "resolved", "content": "x"} if "updates" in path else {"components": []} if "components" in path else {"subject": "x"}
    err = (await call(client, method, path, body, 404))["error"]
    assert err["status"] == 404


@pytest.mark.parametrize("raw", [b"{not json", b"", b"   ", b'{"type": NaN}', b"\xff\xfe", b"[" * 100_000])
async def test_bad_json_400(client, raw):
    before = counts(client)
    resp = await client.post("/api/v1/admin/notices", data=raw if len(raw) < 60_000 else raw[:60_000], headers=AUTH)
    assert resp.status == 400
    assert (await resp.json())["error"]["field"] == "body"
    assert counts(client) == before


async def test_huge_body_413(client):
    before = counts(client)
    big = json.dumps({**U, "content": "x" * 70_000}).encode()
    resp = await client.post("/api/v1/admin/notices", data=big, headers=AUTH)
    assert resp.status == 413
    assert (await resp.json())["error"]["field"] == "body"

    async def chunks():
        for _ in range(70):
            yield b" " * 1024

    # Without a Content-Length (chunked) the cap still holds.
    resp = await client.post("/api/v1/admin/notices", data=chunks(), headers=AUTH)
    assert resp.status == 413
    assert counts(client) == before
