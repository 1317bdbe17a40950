"""Bad input everywhere: every route of app.router gets garbage and attacks; none gets a 500, a traceback or a write.

Routes are enumerated from the app's router, so an endpoint added later is fuzzed without touching this file.
A rejected request answers 4xx in the JSON error shape (NRDP answers in its own shape; HTML pages may answer
a 404 page to browsers), and changes nothing: the SQLite tables hash the same and the passive store holds
the same version. Hypothesis is bounded (modest max_examples, no deadline, no example database on disk).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import os
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.app import make_app
from bridge.keys import DB, LIVE
from bridge.model import SourceHealth, Status
from bridge.server import BridgeRunner
from bridge.settings import Settings
from bridge.storage import create_notice, create_override
from bridge.views_passive import PASSIVE
from tests.conftest import check, status_data, web_config

ADMIN = "fuzz-admin-token-3b9e0c"
PUSH = "fuzz-push-token-77d2aa"
FRESH = SourceHealth(stale=False, data_created=1_700_000_000.0, last_parse_seconds=0.01, parses_total=1)
FUZZ = settings(
    max_examples=int(os.environ.get("RELIABILITY_EXAMPLES", "150")),  # test_fuzz_soak runs 3,000
    deadline=None,
    database=None,  # no .hypothesis/ directory in the repo
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)

NASTY = [
    "planned' OR 1=1",
    "planned' OR '1'='1",
    "'; DROP TABLE notices; --",
    '" OR ""="',
    "1; select * from notices",
    "..%2f..%2fetc%2fpasswd",
    "../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "%00",
    "\x00",
    "\u202egnp.exe",
    "\ud7ff\ue000\uffff",
    "😀" * 40,
    "a" * 2000,  # longer request lines are refused by aiohttp's parser: see test_malformed_http_is_400
    "-1",
    "0",
    "1e309",
    "NaN",
    "Infinity",
    "99999999999999999999999999",
    "0x10",
    " 1",
    "1 ",
    "null",
    "true",
    "[]",
    "{}",
    "<script>alert(1)</script>",
    "${jndi:ldap://x/a}",
    "{{7*7}}",
    "alert(1)//",
    "a.b.",
    "a..b",
    "x(1)",
    "$",
    "\r\nX-Injected: 1",
    "2023-02-30",
    "9999-12-31T23:59:59Z",
    "0001-01-01",
]
QUERY_KEYS = [
    "filter[type_eq]",
    "filter[timeline_state_eq]",
    "filter[components_id]",
    "filter[impact_timeframe_overlaps][]",
    "filter[parent_id_null]",
    "filter[parent_id_eq]",
    "filter[id_eq]",
    "filter",
    "page",
    "callback",
    "component",
    "timeframe_start",
    "timeframe_end",
    "include_calculation_data",
    "cmd",
    "token",
    "json",
    "xml",
]
FIELDS = [
    "type", "state", "subject", "content", "components", "begins_at", "ends_at", "component", "status",
    "starts_at", "reason", "message", "results", "host", "service", "output", "checkresults", "hostname", "servicename",
]  # fmt: skip


# -- the app under test ---------------------------------------------------------------------------------------------


def build_app(tmp_path: Path, **config_fields: Any) -> web.Application:
    """The real app on a temp SQLite file: all-up data, one notice, one override, admin and push tokens."""
    # The limiter has its own tests; here every request must reach its handler (unless a test asks otherwise).
    config = web_config(**{"rate_limit": 0.0, **config_fields})
    settings_ = Settings(config, watch=False, db_path=tmp_path / "db.sqlite", admin_tokens=(ADMIN,), push_tokens=(PUSH,))
    app = make_app(settings_)
    app[LIVE].update(status_data(check("web-1", "HTTP"), check("db-1", "PostgreSQL")), FRESH)
    now = app[LIVE].clock()
    create_notice(app[DB], type="unplanned", subject="Mail delays", state="investigating", content="Looking",
                  now=now, components=["website"])  # fmt: skip
    create_override(app[DB], component_id="database", status=Status.PARTIAL, starts_at=now, ends_at=now + 3600,
                    reason="Work", now=now)  # fmt: skip
    return app


def db_fingerprint(app: web.Application) -> str:
    """A hash over every row of every table: any write shows up."""
    db = app[DB]
    h = hashlib.sha256()
    tables = [r[0] for r in db.execute("select name from sqlite_master where type = 'table' order by name").fetchall()]
    for t in tables:
        h.update(t.encode())
        for row in db.execute(f'select * from "{t}" order by rowid').fetchall():
            h.update(repr(row).encode())
    return h.hexdigest()


def state_of(app: web.Application) -> tuple[str, int, int]:
    """Stored data plus the in-memory passive store (version and size)."""
    store = app[PASSIVE].store
    return db_fingerprint(app), store.version, len(store)


class BridgeTestServer(TestServer):
    """aiohttp's TestServer running the app through the daemon's runner (its answers to malformed requests)."""

    async def _make_runner(self, **kwargs: Any) -> BridgeRunner:
        return BridgeRunner(self.app, **kwargs)


class Harness:
    """The app served on loopback in its own event loop, driven synchronously (Hypothesis is not async)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.client = TestClient(BridgeTestServer(app), loop=self.loop)
        self.loop.run_until_complete(self.client.start_server())
        # Start-up records the override's status in the history, off the loop: let it land before any "before".
        self.loop.run_until_complete(app[LIVE].recorder.flush())

    def request(self, method: str, path: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
        """One request: (status, headers, body)."""

        async def go() -> tuple[int, dict[str, str], bytes]:
            async with self.client.request(method, path, allow_redirects=False, **kw) as resp:
                return resp.status, dict(resp.headers), await resp.read()

        return self.loop.run_until_complete(go())

    def raw(self, data: bytes) -> tuple[int, bytes]:
        """Send bytes as they are (no client-side normalisation of the path): (status, body)."""
        status, _, body = self.raw_answer(data)
        return status, body

    def raw_answer(self, data: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send bytes as they are and read until the server closes: (status, headers, body) of the first answer."""
        return parse_answer(self.raw_bytes(data))

    def raw_bytes(self, data: bytes) -> bytes:
        """Send bytes as they are; everything the server writes until it closes."""

        async def go() -> bytes:
            reader, writer = await asyncio.open_connection(self.client.host, self.client.port)
            try:
                writer.write(data)
                await writer.drain()
                return await asyncio.wait_for(reader.read(), 10)
            finally:
                writer.close()
                await writer.wait_closed()

        return self.loop.run_until_complete(go())

    def close(self) -> None:
        """Stop the server and the loop."""
        self.loop.run_until_complete(self.client.close())
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


def parse_answer(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a raw HTTP/1.x answer read to the connection's end (body up to Content-Length)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    if "Content-Length" in headers:
        body = body[: int(headers["Content-Length"])]
    return int(lines[0].split(" ", 2)[1]), headers, body


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """A running app with some stored data."""
    h = Harness(build_app(tmp_path))
    yield h
    h.close()


@dataclass(frozen=True)
class Route:
    """One registered route: method, path template, parameter names."""

    method: str
    template: str
    params: tuple[str, ...]

    def path(self, values: dict[str, str]) -> str:
        """The template with each {param} replaced by its percent-encoded value."""
        out = self.template
        for name in self.params:
            value = values.get(name, "1")
            out = out.replace("{" + name + "}", value if name == "slashes" else urllib.parse.quote(value, safe=""))
        return out

    @property
    def admin(self) -> bool:
        """Needs the admin token."""
        return self.template.startswith("/api/v1/admin")

    @property
    def push(self) -> bool:
        """A passive push endpoint (bearer or NRDP form token)."""
        return self.template.startswith(("/api/v1/check-results", "/nrdp"))

    @property
    def nrdp(self) -> bool:
        """Answers in NRDP's own shape."""
        return self.template.startswith("/nrdp")


def routes(app: web.Application) -> list[Route]:
    """Every (method, path template) the router knows, HEAD included only where registered explicitly."""
    found: list[Route] = []
    for r in app.router.routes():
        info = r.resource.get_info() if r.resource is not None else {}
        template = info.get("path") or info.get("formatter")
        assert template, f"route without a path: {r!r}"
        params = tuple(re.findall(r"\{(\w+)(?::[^}]*)?\}", template))
        template = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", template)
        found.append(Route(r.method, template, params))
    return sorted(set(found), key=lambda r: (r.template, r.method))


def nrdp_result(body: bytes) -> tuple[int, str]:
    """(status, message) of an NRDP answer, XML or JSON: status -1 is a refusal."""
    if body.startswith(b"<?xml"):
        root = ElementTree.fromstring(body)
        return int(root.findtext("status", "")), root.findtext("message", "")
    result = json.loads(body)
    result = result.get("result") or result["response"]
    return result["status"], result["message"]


def assert_error_shape(route_nrdp: bool, status: int, headers: dict[str, str], body: bytes, html_ok: bool) -> None:
    """A 4xx answer: the JSON error shape (or NRDP's, or an HTML 404 page for a browser), no traceback."""
    assert 400 <= status < 500, (status, body[:300])
    assert b"Traceback" not in body and b'File "' not in body, body[:500]
    ctype = headers.get("Content-Type", "")
    if route_nrdp and ("xml" in ctype or b'"result"' in body):
        return  # NRDP's {"result": {"status": -1, "message": ...}} or its XML
    if html_ok and ctype.startswith("text/html"):
        assert status == 404
        return
    assert ctype.startswith("application/json"), (status, ctype, body[:300])
    err = json.loads(body)["error"]
    assert err["status"] == status and isinstance(err["message"], str) and err["message"], err


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing at ERROR or above (the front middleware logs every unhandled exception there)."""
    bad = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


MALFORMED = [
    b"GET /api/v1/notices/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/services.json HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
    b"GET /api/services.json HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST /api/v1/admin/notices HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    b"GET /api/services.json HTTP/1.1\r\nHost: x\r\nBad Header\x00: 1\r\n\r\n",
    b"GET /api/services.json HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
]


@pytest.mark.parametrize("data", MALFORMED, ids=["long-url", "long-header", "negative-length", "te-and-cl", "nul-header", "http-9.9", "nul-path"])
def test_malformed_http_is_400_without_a_traceback_in_the_answer(harness: Harness, data: bytes) -> None:
    """Requests aiohttp's parser refuses before any route (oversize lines, smuggling attempts) get a 400, no traceback."""
    before = state_of(harness.app)
    status, headers, body = harness.raw_answer(data.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n", 1))
    assert status == 400, body[:200]
    assert b"Traceback" not in body and b'File "' not in body
    # The JSON shape, not aiohttp's plain text that quotes the refused bytes back.
    assert_error_shape(False, status, headers, body, html_ok=False)
    assert b"aaaa" not in body and b"Bad Header" not in body and b"9.9" not in body, body
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Server"] == "status-bridge", headers
    assert state_of(harness.app) == before


# -- strategies -----------------------------------------------------------------------------------------------------

texts = st.one_of(st.sampled_from(NASTY), st.text(max_size=60), st.from_regex(r"[0-9]{1,25}", fullmatch=True))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), inner, max_size=5),
    max_leaves=15,
)
json_bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"results": st.lists(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5), max_size=3)}).map(
        lambda v: json.dumps(v).encode()
    ),
)
bodies = st.one_of(
    st.none(),
    json_bodies,
    st.binary(max_size=300),
    st.sampled_from([b"{", b'{"type": "unplanned"', b"\xff\xfe{}", b"NaN", b'{"a": Infinity}', b"[" * 5000, b" ", b"\x00"]),
)
form_bodies = st.dictionaries(
    st.sampled_from(["cmd", "token", "json", "xml", "XMLDATA", "JSONDATA"]),
    st.one_of(texts, json_bodies.map(lambda b: b.decode()), st.sampled_from(["submitcheck", "hello", "submitcmd", PUSH])),
    max_size=4,
).map(lambda d: urllib.parse.urlencode(d).encode())
auths = st.sampled_from([None, f"Bearer {ADMIN}", f"Bearer {PUSH}", "Bearer wrong", "Basic Zm9vOmJhcg==", "Bearer "])
accepts = st.sampled_from([None, "text/html", "application/json", "*/*", "text/html,application/json;q=0.9"])
ctypes = st.sampled_from([None, "application/json", "application/x-www-form-urlencoded", "text/plain",
                          "multipart/form-data; boundary=zzz", "application/xml"])  # fmt: skip
queries = st.lists(st.tuples(st.sampled_from(QUERY_KEYS) | st.text(max_size=15), texts), max_size=4)


@FUZZ
@given(data=st.data())
def test_fuzz_every_route_never_500_and_rejections_write_nothing(harness: Harness, caplog: pytest.LogCaptureFixture, data: st.DataObject) -> None:
    """Random garbage to every route: < 500 always, 4xx in the error shape, and a rejected request changes nothing."""
    fuzz_one(harness, caplog, data)


@pytest.mark.soak
@settings(FUZZ, max_examples=3000)
@given(data=st.data())
def test_fuzz_soak(harness: Harness, caplog: pytest.LogCaptureFixture, data: st.DataObject) -> None:
    """The same fuzz, 3,000 examples."""
    fuzz_one(harness, caplog, data)


def fuzz_one(harness: Harness, caplog: pytest.LogCaptureFixture, data: st.DataObject) -> None:
    """One random request to one route, checked."""
    all_routes = routes(harness.app)
    route = data.draw(st.sampled_from(all_routes), label="route")
    values = {p: data.draw(st.just("/") | st.just("//") | texts, label=p) if p == "slashes" else data.draw(texts, label=p) for p in route.params}
    if "slashes" in values and not re.fullmatch(r"/*", values["slashes"]):
        values["slashes"] = "/"
    query = data.draw(queries, label="query")
    ctype = data.draw(ctypes, label="content-type")
    body = data.draw(form_bodies if ctype == "application/x-www-form-urlencoded" else bodies, label="body")
    headers = {k: v for k, v in {"Authorization": data.draw(auths, label="auth"), "Accept": data.draw(accepts, label="accept"),
                                 "Content-Type": ctype}.items() if v is not None}  # fmt: skip
    method = route.method if route.method != "*" else data.draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
    before = state_of(harness.app)
    status, resp_headers, resp_body = harness.request(method, route.path(values), params=query, data=body, headers=headers)
    assert status < 500, (method, route.template, status, resp_body[:300])
    assert b"Traceback" not in resp_body
    if status >= 400 and method != "HEAD":  # HEAD: the same headers, no body
        assert_error_shape(route.nrdp, status, resp_headers, resp_body, html_ok=True)
    # NRDP answers every request with HTTP 200: a refusal says status -1 in its body.
    nrdp_refused = route.nrdp and status == 200 and method != "HEAD" and nrdp_result(resp_body)[0] == -1
    if status >= 400 or nrdp_refused or (method in ("GET", "HEAD") and not route.nrdp):
        assert state_of(harness.app) == before, (method, route.template, status)
    no_errors_logged(caplog)


def test_routes_are_enumerated_from_the_router(harness: Harness) -> None:
    """The fuzzer sees every public, admin and push endpoint (a new route is covered without editing this file)."""
    templates = {r.template for r in routes(harness.app)}
    for expected in ("/api/services.json", "/api/v1/notices/{id}", "/api/v1/admin/notices/{id}/updates",
                     "/api/v1/check-results", "/nrdp{slashes}", "/", "/notices/{ref}", "/metrics"):  # fmt: skip
        assert expected in templates, templates
    assert len(templates) >= 25


# -- targeted attacks (a fixed table, every route where it applies) ---------------------------------------------------

ATTACK_QUERIES = [
    ("/api/v1/notices", [("filter[type_eq]", "planned' OR 1=1")], 400),
    ("/api/v1/notices", [("filter[type_eq]", "planned"), ("filter[type_eq]", "unplanned")], 400),
    ("/api/v1/notices", [("filter[timeline_state_eq]", "present' --")], 400),
    ("/api/v1/notices", [("filter[impact_timeframe_overlaps][]", "2023-01-01' OR 1=1")] * 2, 400),
    ("/api/v1/notices", [("filter[type_eq) OR 1=1 --", "x")], 400),
    ("/api/v1/notices", [("page", "0")], 400),
    ("/api/v1/notices", [("page", "1e9999")], 400),
    ("/api/v1/components", [("filter[parent_id_null]", "1=1")], 400),
    ("/api/v1/components", [("page", "-1")], 400),
    ("/api/v1/components/website/metrics", [("timeframe_start", "1970-01-01")], 400),
    ("/api/v1/components/website/metrics", [("timeframe_end", "99999-01-01")], 400),
    ("/api/v1/components/website/metrics", [("include_calculation_data", "yes")], 400),
    ("/api/services.json", [("callback", "alert(1)//")], 400),
    ("/api/services.json", [("callback", "a;alert(document.cookie)")], 400),
    ("/api/services.json", [("callback", "<script>")], 400),
    ("/api/services.json", [("callback", "a" * 129)], 400),
    ("/api/services.json", [("callback", "x\u2028y")], 400),
    ("/api/services.json", [("callback", "")], 400),
    ("/api/announcements.json", [("callback", "a.b(")], 400),
    ("/api/v1/status", [("callback", "eval('x')")], 400),
    ("/api/v2/summary.json", [("callback", "a]b")], 400),
    ("/badge.svg", [("component", "../../etc/passwd")], 404),
    ("/badge.svg", [("component", "a"), ("component", "b")], 400),
]


@pytest.mark.parametrize("path, query, status", ATTACK_QUERIES, ids=[f"{p}?{q[0][0]}" for p, q, _ in ATTACK_QUERIES])
def test_query_injection_is_a_4xx_json_error(harness: Harness, path: str, query: list[tuple[str, str]], status: int) -> None:
    """Filter injection, repeated or unknown filters, absurd pages and JSONP callback injection are 4xx JSON errors."""
    before = state_of(harness.app)
    got, headers, body = harness.request("GET", path, params=query)
    assert got == status, body[:300]
    assert_error_shape(False, got, headers, body, html_ok=False)
    assert b"alert" not in body or got == 400 and headers["Content-Type"].startswith("application/json")
    assert state_of(harness.app) == before


TRAVERSALS = [
    "/notices/..%2f..%2fetc%2fpasswd",
    "/notices/..%2F..%2F..%2Fetc%2Fpasswd",
    "/notices/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/notices/1%00",
    "/notices/1/../../../etc/passwd",
    "/static/../../etc/passwd",
    "/static/..%2f..%2fetc%2fpasswd",
    "/static/",
    "/widget.js/../../../etc/passwd",
    "/api/v1/notices/..%2f..%2fetc%2fpasswd",
    "/api/v1/notices/1%20OR%201=1",
    "/api/v1/components/..%2f..%2fetc%2fpasswd/metrics",
    "/api/v1/admin/notices/..%2f1",
    "/api/v1/admin/overrides/1;DROP%20TABLE%20overrides",
    "/api/../api/v1/admin/notices",
    "//etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/..;/..;/etc/passwd",
    "/nrdp/../../etc/passwd",
    "/.git/config",
    "/bridge/storage.py",
]


@pytest.mark.parametrize("accept", ["application/json", "text/html"])
@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_never_reads_a_file(harness: Harness, path: str, accept: str) -> None:
    """Raw request lines with traversal (encoded or not) are 4xx (JSON, or an HTML 404 page for browsers); no file leaks."""
    before = state_of(harness.app)
    auth = f"Authorization: Bearer {ADMIN}\r\n" if "/admin/" in path else ""
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\n{auth}Connection: close\r\n\r\n".encode()
    status, body = harness.raw(request)
    assert 400 <= status < 500, (status, body[:300])
    assert b"root:" not in body and b"[core]" not in body and b"import " not in body, body[:300]
    assert b"Traceback" not in body
    if accept == "application/json":
        assert json.loads(body)["error"]["status"] == status
    assert state_of(harness.app) == before


def write_routes(app: web.Application) -> list[Route]:
    """Every route that takes a body."""
    return [r for r in routes(app) if r.method in ("POST", "PUT", "PATCH", "*")]


def test_huge_bodies_are_413_and_write_nothing(harness: Harness) -> None:
    """2 MiB bodies (with Content-Length, and chunked without it) to every body-taking route: 4xx, nothing stored."""
    huge = b'{"subject": "' + b"x" * (2 << 20) + b'"}'

    async def chunks() -> Any:
        for _ in range(32):
            yield b"y" * (64 << 10)

    for route in write_routes(harness.app):
        method = "POST" if route.method == "*" else route.method
        path = route.path({"id": "1", "slashes": "/"})
        for auth in (ADMIN, PUSH):
            headers = {"Authorization": f"Bearer {auth}", "Content-Type": "application/json"}
            if route.nrdp:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            before = state_of(harness.app)
            for body in (huge, None):
                data: Any = io.BytesIO(huge) if body is not None else chunks()
                status, headers_out, out = harness.request(method, path, data=data, headers=headers)
                if route.nrdp:  # NRDP's answer to everything is HTTP 200; its body says what happened
                    assert (status, nrdp_result(out)) == (200, (-1, "REQUEST TOO LARGE")), (route, status, out[:200])
                    continue
                assert 400 <= status < 500, (route, status, out[:200])
                if (route.admin and auth == ADMIN) or (route.push and auth == PUSH):
                    assert status == 413, (route, status, out[:200])
                assert_error_shape(route.nrdp, status, headers_out, out, html_ok=False)
            assert state_of(harness.app) == before, route


BAD_BODIES = [
    b"",
    b"{",
    b"null",
    b"[]",
    b'"text"',
    b"12",
    b"\xff\xfe\x00{",
    b'{"type": "unplanned", "subject": "\\ud800"}',
    b'{"type": "unplanned", "subject": "x", "content": "a\\udfffb"}',
    b'{"component": "website", "status": "down", "reason": "\\ud83d"}',
    b'{"component": "website", "status": "down", "message": "a\\u001bb"}',
    b'{"state": "identified", "content": "\\udc00"}',
    b'{"type": "unplanned", "subject": "x", "begins_at": NaN}',
    b'{"type": "unplanned", "subject": "x", "components": "website"}',
    b'{"type": ["unplanned"], "subject": "x"}',
    b'{"type": "unplanned", "subject": "' + b"s" * 300 + b'"}',
    b'{"type": "unplanned", "subject": "a\\u0000b"}',
    b'{"type": "planned", "subject": "x", "begins_at": "2030-01-01", "ends_at": "2029-01-01"}',
    b'{"type": "planned", "subject": "x", "begins_at": 1e400, "ends_at": 1e401}',
    b'{"type": "unplanned", "subject": "x", "components": ["../../etc"]}',
    b'{"component": "website"}',
    b'{"component": "website", "status": "exploded", "reason": "x"}',
    b'{"component": {"$ne": 1}, "status": "down", "reason": "x"}',
    b'{"state": "resolved"}',
    b'{"state": "resolved", "content": 5}',
    b'{"components": [1, 2]}',
    b'{"subject": null}',
    b'{"results": [{"host": null}]}',
    b'{"results": "x"}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
]


@pytest.mark.parametrize("body", BAD_BODIES, ids=[repr(b[:30]) for b in BAD_BODIES])
def test_bad_bodies_to_every_write_route_are_4xx_and_write_nothing(harness: Harness, caplog: pytest.LogCaptureFixture, body: bytes) -> None:
    """Wrong types, bad JSON, control characters, NaN, deep nesting: 4xx with the right token, nothing stored."""
    for route in write_routes(harness.app):
        method = "POST" if route.method == "*" else route.method
        token = ADMIN if route.admin else PUSH
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        data = body
        if route.nrdp:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = urllib.parse.urlencode({"cmd": "submitcheck", "token": PUSH, "json": body.decode("utf-8", "replace")}).encode()
        before = state_of(harness.app)
        status, headers_out, out = harness.request(method, route.path({"id": "1", "slashes": "/"}), data=data, headers=headers)
        if route.nrdp:
            assert status == 200 and nrdp_result(out)[0] == -1, (route, status, out[:200])
        elif status < 400 and route.push and body == b"[]":
            assert json.loads(out)["accepted"] == 0  # an empty batch is a valid no-op, not an error
        else:
            assert_error_shape(route.nrdp, status, headers_out, out, html_ok=False)
        assert state_of(harness.app) == before, (route, status, out[:200])
    no_errors_logged(caplog)


XML_ATTACKS = [
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
    "<checkresults><checkresult type='service'><hostname>&lol2;</hostname></checkresult></checkresults>",
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><checkresults>&xxe;</checkresults>',
    "<checkresults><checkresult type='service'><hostname>web-1",
    "<notxml",
    "<other/>",
]


@pytest.mark.parametrize("xml", XML_ATTACKS)
def test_nrdp_xml_attacks_are_rejected(harness: Harness, xml: str) -> None:
    """Entity expansion, external entities and broken XML to /nrdp/ are refused (BAD XML); nothing is stored."""
    before = state_of(harness.app)
    form = urllib.parse.urlencode({"cmd": "submitcheck", "token": PUSH, "xml": xml}).encode()
    status, headers, body = harness.request("POST", "/nrdp/", data=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (status, nrdp_result(body)) == (200, (-1, "BAD XML")), body
    assert b"root:" not in body and b"lollol" not in body
    assert state_of(harness.app) == before


def test_unknown_paths_answer_json_or_an_html_page(harness: Harness) -> None:
    """An unknown path is a 404 JSON error for API clients; a known HTML route gives browsers an HTML 404 page."""
    status, headers, body = harness.request("GET", "/no/such/thing", headers={"Accept": "text/html"})
    assert status == 404 and headers["Content-Type"].startswith("application/json")
    status, headers, body = harness.request("GET", "/notices/999999", headers={"Accept": "text/html"})
    assert status == 404 and headers["Content-Type"].startswith("text/html") and b"Traceback" not in body
    status, headers, body = harness.request("GET", "/notices/999999", headers={"Accept": "application/json"})
    assert status == 404 and json.loads(body)["error"]["status"] == 404
    status, headers, body = harness.request("DELETE", "/api/services.json")
    assert status == 405 and json.loads(body)["error"]["status"] == 405


def public_gets(app: web.Application) -> list[str]:
    """Every public GET route with its parameters filled with ids that exist."""
    fill = {"id": "website", "ref": "1", "slashes": "/"}
    paths = []
    for r in routes(app):
        if r.method == "GET" and not r.admin and not r.push:
            path = r.path(fill)
            paths.append(path.replace("/api/v1/notices/website", "/api/v1/notices/1"))
    return paths


def test_pushed_odd_text_never_breaks_a_public_route(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """Pushed results with lone surrogates, control characters or odd names: rejected or stored, every page still renders."""
    odd = ["\ud800", "a\udfffb", "\x00", "\x1b[31mred", "\u202e", "😀", "web-1\ud800"]
    items = [{"host": "web-1", "service": "HTTP", "state": 2, "output": f"CRITICAL {o}\nlong {o}|perf={o}"} for o in odd]
    items += [{"host": o, "service": o, "state": 1, "output": o} for o in odd]
    items += [{"host": "web-1", "service": "HTTP", "state": 0, "output": o, "timestamp": o} for o in odd]
    status, _, body = harness.request("POST", "/api/v1/check-results", data=json.dumps({"results": items}),
                                      headers={"Authorization": f"Bearer {PUSH}", "Content-Type": "application/json"})  # fmt: skip
    assert status in (200, 422), body
    nrdp_json = json.dumps({"checkresults": [{"checkresult": {"type": "service"}, "hostname": i["host"],
                                              "servicename": i["service"], "state": str(i["state"]), "output": i["output"]}
                                             for i in items]})  # fmt: skip
    form = urllib.parse.urlencode({"cmd": "submitcheck", "token": PUSH, "json": nrdp_json}).encode("utf-8", "surrogatepass")
    status, _, body = harness.request("POST", "/nrdp/", data=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status in (200, 422), body
    harness.loop.run_until_complete(harness.app[PASSIVE].publish())  # what the publisher task does after min_gap
    for path in public_gets(harness.app):
        status, headers, body = harness.request("GET", path)
        assert status < 500, (path, body[:300])
        assert status in (200, 404) or path.endswith("metrics"), (path, status, body[:300])
    no_errors_logged(caplog)
