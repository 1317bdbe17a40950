"""HTTP contract tests: Oxford feed shape and headers, JSONP, ETag/304, errors, health, metrics."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.app import make_app
from bridge.http import JSONP_CALLBACK, ApiError, jsonp_callback
from bridge.keys import LIVE
from bridge.model import SourceHealth
from bridge.settings import Settings
from tests.conftest import check, status_data, web_config

FRESH = SourceHealth(stale=False, data_created=1_700_000_000.0, last_parse_seconds=0.01, parses_total=3)


def all_up():
    """Every mapped check OK."""
    return status_data(check("web-1", "HTTP"), check("web-1", "HTTPS"), check("db-1", "PostgreSQL"))


@pytest.fixture
async def client(aiohttp_client):
    """A real aiohttp server on 127.0.0.1 with all-up data published."""
    app = make_app(Settings(web_config(cache_seconds=60), watch=False))
    app[LIVE].update(all_up(), FRESH)
    c = await aiohttp_client(app)
    c.live = app[LIVE]
    return c


async def test_services_feed_shape_and_headers(client):
    resp = await client.get("/api/services.json")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert resp.headers["Cache-Control"] == "public, max-age=60"
    assert re.fullmatch(r'"[0-9a-f]{24}"', resp.headers["ETag"])
    body = await resp.json()
    assert body["overall_status_code"] == 0
    assert body["overall_status_name"] == "Systems running smoothly"
    assert body["stale"] is False
    assert body["last_updated"] == "2023-11-14T22:13:20Z"
    assert [g["id"] for g in body["groups"]] == ["web", "data"]
    web = body["groups"][0]
    assert (web["status_code"], web["status_name"]) == (0, "Up")
    assert web["services"][0]["id"] == "website"
    assert (web["services"][0]["status_code"], web["services"][0]["status_name"]) == (0, "Up")


@pytest.mark.parametrize("path", ["/api/services.json", "/api/services.json?callback=cb", "/api/v1/components",
                                  "/api/v1/status", "/api/v2/summary.json"])
async def test_feed_header_names_go_out_as_conventionally_spelled(client, path):
    # Case does not matter to HTTP, but people grep and copy these: "ETag", not aiohttp's "Etag".
    resp = await client.get(path)
    names = {name for name, _ in resp.raw_headers}
    assert {b"Content-Type", b"ETag", b"Cache-Control", b"Access-Control-Allow-Origin", b"X-Content-Type-Options"} <= names
    assert len(resp.headers.getall("X-Content-Type-Options")) == 1  # JSONP's own and the one every answer gets: one


@pytest.mark.parametrize(
    "web_state, db_state, overall, name, web_code",
    [
        (0, 0, 0, "Systems running smoothly", 0),
        (2, 0, 1, "Some problems reported", 2),
        (1, 0, 1, "Some problems reported", 1),
        (2, 2, 2, "Major problems reported", 2),
    ],
)
async def test_feed_follows_monitoring(client, web_state, db_state, overall, name, web_code):
    data = status_data(check("web-1", "HTTP", web_state), check("web-1", "HTTPS"), check("db-1", "PostgreSQL", db_state))
    client.live.update(data, FRESH)
    body = await (await client.get("/api/services.json")).json()
    assert (body["overall_status_code"], body["overall_status_name"]) == (overall, name)
    assert body["groups"][0]["services"][0]["status_code"] == web_code


async def test_etag_304_and_change(client):
    first = await client.get("/api/services.json")
    etag = first.headers["ETag"]
    for header in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        again = await client.get("/api/services.json", headers={"If-None-Match": header})
        assert again.status == 304, header
        assert again.headers["ETag"] == etag
        assert await again.read() == b""
    miss = await client.get("/api/services.json", headers={"If-None-Match": '"other"'})
    assert miss.status == 200
    client.live.update(status_data(check("web-1", "HTTP", 2), check("db-1", "PostgreSQL")), FRESH)
    changed = await client.get("/api/services.json", headers={"If-None-Match": etag})
    assert changed.status == 200
    assert changed.headers["ETag"] != etag


async def test_head_has_headers_without_body(client):
    resp = await client.head("/api/services.json")
    assert resp.status == 200
    assert "ETag" in resp.headers
    assert await resp.read() == b""


@pytest.mark.parametrize("callback", ["cb", "$", "_", "jQuery3710_1700000000", "a.b.c", "$.x_1", "a" * 128])
async def test_jsonp_valid(client, callback):
    plain = await (await client.get("/api/services.json")).read()
    resp = await client.get("/api/services.json", params={"callback": callback})
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/javascript; charset=utf-8"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert await resp.read() == b"/**/" + callback.encode() + b"(" + plain + b");"
    etag = resp.headers["ETag"]
    assert (await client.get("/api/services.json", params={"callback": callback}, headers={"If-None-Match": etag})).status == 304


async def test_jsonp_etag_differs_per_callback(client):
    a = await client.get("/api/services.json", params={"callback": "a"})
    b = await client.get("/api/services.json", params={"callback": "b"})
    plain = await client.get("/api/services.json")
    assert len({a.headers["ETag"], b.headers["ETag"], plain.headers["ETag"]}) == 3


@pytest.mark.parametrize(
    "callback",
    ["", "1abc", "a b", "alert(1)", "a..b", "a.", ".a", "a-b", "<script>", "a;b", "é", "a\u200bb", "a" * 129, "a.1"],
)
async def test_jsonp_bad_callback_400(client, callback):
    resp = await client.get("/api/services.json", params={"callback": callback})
    assert resp.status == 400
    assert resp.headers["Content-Type"].startswith("application/json")
    body = await resp.json()
    assert body["error"]["status"] == 400
    assert body["error"]["field"] == "callback"
    assert "callback" in body["error"]["message"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=140))
def test_jsonp_callback_validation_property(cb):
    req = make_mocked_request("GET", "/api/services.json?" + __import__("urllib.parse").parse.urlencode({"callback": cb}))
    valid = len(cb) <= 128 and JSONP_CALLBACK.fullmatch(cb) is not None
    try:
        assert jsonp_callback(req) == cb
        assert valid
    except ApiError as e:
        assert not valid
        assert (e.status_code, e.field) == (400, "callback")


async def test_announcements_empty_list(client):
    resp = await client.get("/api/announcements.json")
    assert resp.status == 200
    assert await resp.json() == []
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    jsonp = await client.get("/api/announcements.json", params={"callback": "cb"})
    assert await jsonp.read() == b"/**/cb([]);"


async def test_unknown_path_is_json_404(client):
    resp = await client.get("/api/nope.json")
    assert resp.status == 404
    assert (await resp.json())["error"]["status"] == 404


async def test_method_not_allowed_is_json(client):
    resp = await client.post("/api/services.json", data=b"x")
    assert resp.status == 405
    assert (await resp.json())["error"]["status"] == 405


async def test_stale_keeps_last_statuses(client):
    client.live.update(status_data(check("web-1", "HTTP", 2), check("db-1", "PostgreSQL")), FRESH)
    before = await (await client.get("/api/services.json")).json()
    stale = SourceHealth(stale=True, reason="status.dat missing: Nagios stopped?", data_created=1_700_000_000.0)
    client.live.update(client.live.data, stale)
    after = await (await client.get("/api/services.json")).json()
    assert after["stale"] is True
    codes = lambda body: [(s["id"], s["status_code"], s["status"]) for g in body["groups"] for s in g["services"]]  # noqa: E731
    assert codes(after) == codes(before)
    assert all(s["stale"] for g in after["groups"] for s in g["services"])
    assert not any(s["stale"] for g in before["groups"] for s in g["services"])
    health = await (await client.get("/healthz")).json()
    assert health["status"] == "stale"
    assert "missing" in health["reason"]


async def test_no_data_is_not_down(aiohttp_client):
    app = make_app(Settings(web_config(), watch=False))
    client = await aiohttp_client(app)
    body = await (await client.get("/api/services.json")).json()
    assert body["stale"] is True
    # Neither "running smoothly" (0) nor an outage (2): unknown, and it says so.
    assert (body["overall_status_code"], body["page_state"]) == (1, "unknown")
    assert body["overall_status_name"] == "Status unknown: no monitoring data yet"
    assert all(s["status_code"] == 1 and s["status_name"] == "No data" for g in body["groups"] for s in g["services"])


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text output."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        mname, _, rest = sample.partition("{")
        got = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if mname == name and all(got.get(k) == v for k, v in labels.items()):
            return float(value)
    raise AssertionError(f"{name}{labels} not in metrics")


async def test_metrics(client):
    client.live.update(status_data(check("web-1", "HTTP", 2), check("db-1", "PostgreSQL", 1)), FRESH)
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    assert metric(text, "status_bridge_component_status", component="website", group="web") == 2
    assert metric(text, "status_bridge_component_status", component="database", group="data") == 1
    assert metric(text, "status_bridge_component_state", component="website", group="web", status_bridge_component_state="down") == 1
    assert metric(text, "status_bridge_group_status", group="web") == 2
    assert metric(text, "status_bridge_page_status") == 1
    assert metric(text, "status_bridge_stale") == 0
    assert metric(text, "status_bridge_parse_duration_seconds") == pytest.approx(0.01)
    assert metric(text, "status_bridge_parses_total") == 3
    assert metric(text, "status_bridge_statusdat_age_seconds") > 0
    assert metric(text, "status_bridge_checks", kind="service") == 2


async def test_two_apps_have_private_registries(aiohttp_client):
    a = await aiohttp_client(make_app(Settings(web_config(), watch=False)))
    b = await aiohttp_client(make_app(Settings(web_config(), watch=False)))
    assert (await a.get("/metrics")).status == 200
    assert (await b.get("/metrics")).status == 200


async def test_index_is_the_html_page_linking_the_feeds(client):
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    text = await resp.text()
    assert 'href="/api/services.json"' in text
    assert "Systems running smoothly" in text


@pytest.mark.parametrize("method, path, status, allow", [
    ("GET", "/no/such/page", 404, None),
    ("POST", "/api/services.json", 405, {"GET", "HEAD"}),
    ("DELETE", "/api/v1/admin/notices", 405, {"GET", "HEAD", "POST"}),
])
async def test_unrouted_requests_get_the_json_error_shape(aiohttp_client: Any, method: str, path: str,
                                                          status: int, allow: set[str] | None) -> None:
    client = await aiohttp_client(make_app(Settings(web_config(), watch=False, admin_tokens=("t",))))
    resp = await client.request(method, path)
    assert resp.status == status
    assert (await resp.json())["error"]["status"] == status
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    got = resp.headers.get("Allow")
    assert (None if got is None else {m.strip() for m in got.split(",")}) == allow
