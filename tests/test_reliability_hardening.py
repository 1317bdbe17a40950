"""Attacks on the public surface (issue 15, items 7, 9, 10): odd bytes and far dates never make a 500, nothing from
a refused request is echoed, every answer carries nosniff and a versionless Server header, the page cannot be
framed unless configured, pushed names are clean, and the daemon warns about weak set-ups and keeps its files private.

Every test runs the real app on a loopback socket (tests.test_reliability_badinput's Harness) or the real daemon.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bridge import server
from bridge.config import ConfigError
from bridge.config_load import parse_config
from bridge.front import FRONT
from bridge.render import sorry_notices, sorry_query
from bridge.views_passive import PASSIVE
from tests.bridgeproc import BridgeProcess, site_toml
from tests.conftest import MINI_STATUSDAT, free_port
from tests.test_reliability_badinput import (
    ADMIN,
    PUSH,
    Harness,
    assert_error_shape,
    build_app,
    parse_answer,
    state_of,
)

SECRET = "hardening-secret-token-5e1f0a9c"  # the admin token of the daemon tests: it must never come back


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """The real app (one notice, one override, admin and push tokens) on a loopback socket."""
    h = Harness(build_app(tmp_path))
    yield h
    h.close()


def served(tmp_path: Path, **config_fields: object) -> Harness:
    """build_app's app (one notice, one override, the fuzz tokens) with config fields of the test's own."""
    return Harness(build_app(tmp_path, **config_fields))


def raw_request(path: str, *lines: bytes, method: bytes = b"GET") -> bytes:
    """A request line plus header lines, closed after the answer."""
    return b"\r\n".join([method + b" " + path.encode() + b" HTTP/1.1", b"Host: x", *lines, b"Connection: close", b"", b""])


def send_raw(port: int, data: bytes) -> bytes:
    """Bytes straight to the daemon's socket; its whole answer, read until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer


# -- item 7: no 500 for any input --------------------------------------------------------------------------------------


def test_bearer_token_with_non_utf8_bytes_is_refused_and_charged(tmp_path: Path) -> None:
    """`Authorization: Bearer \\xff` was a 500 with a traceback and never charged: now 403 JSON, then 429 like any
    rejected token."""
    h = served(tmp_path, rate_limit=0.001, burst=3, trusted_proxies=())
    try:
        auth = b"Authorization: Bearer \xff\xfe" + SECRET.encode()
        attempts = [("/api/v1/admin/notices", b"GET"), ("/api/v1/check-results", b"POST"), ("/api/v1/admin/notices", b"GET")]
        for path, method in attempts:
            status, headers, body = h.raw_answer(raw_request(path, auth, b"Content-Length: 0", method=method))
            assert status == 403, (path, status, body)
            assert_error_shape(False, status, headers, body, html_ok=False)
            assert json.loads(body)["error"]["field"] == "Authorization"
        status, headers, body = h.raw_answer(raw_request("/api/v1/admin/notices", auth))
        assert status == 429 and "Retry-After" in headers, (status, body)
    finally:
        h.close()


def test_the_real_token_still_works_beside_non_utf8_ones(harness: Harness) -> None:
    """The fix compares bytes: the right token is accepted, a UTF-8 near miss is refused."""
    assert harness.request("GET", "/api/v1/admin/notices", headers={"Authorization": f"Bearer {ADMIN}"})[0] == 200
    assert harness.request("GET", "/api/v1/admin/notices", headers={"Authorization": f"Bearer {ADMIN}é"})[0] == 403


OVERLAPS = "filter[impact_timeframe_overlaps][]"
FAR_WINDOWS = [
    ("2026-01-01", "9999-12-31T23:59:59.999999"),  # rounds up to year 10000 as a float
    ("0001-01-01T00:00:00+14:00", "2030-01-01"),  # year 0 in UTC
    ("9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59-14:00"),  # year 10000 in UTC
    ("0001-01-01", "9999-12-31T23:59:59Z"),
]


@pytest.mark.parametrize("start, end", FAR_WINDOWS)
def test_notice_filter_at_the_ends_of_time_answers(harness: Harness, start: str, end: str) -> None:
    """Valid timestamps at the edges of datetime's range were a 500 (`year 10000 is out of range`): now 200 JSON."""
    status, headers, body = harness.request("GET", "/api/v1/notices", params=[(OVERLAPS, start), (OVERLAPS, end)])
    assert status == 200, body[:300]
    assert isinstance(json.loads(body)["notices"], list)


def test_filter_links_at_the_ends_of_time_parse_back() -> None:
    """The next_page link spells the window in a form the filter accepts again (year 1 is 0001, not 1)."""
    first = datetime(1, 1, 1, tzinfo=timezone.utc).timestamp()
    last = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp()
    window = (first - 50_400.0, last + 0.9999999)  # 0001-01-01T00:00+14:00, and a float past the last second
    values = [v for k, v in sorry_query.NoticeFilter(impact_overlaps=window).pairs() if k == OVERLAPS]
    assert values == ["0001-01-01T00:00:00", "9999-12-31T23:59:59"]
    assert [datetime.fromisoformat(v).year for v in values] == [1, 9999]


def test_metrics_timeframe_end_at_year_one_is_a_400_naming_it(harness: Harness) -> None:
    """timeframe_end=0001-01-01 alone was a 500 (the default start, 30 days earlier, is before year 1)."""
    status, headers, body = harness.request("GET", "/api/v1/components/website/metrics", params={"timeframe_end": "0001-01-01"})
    assert status == 400, body
    assert_error_shape(False, status, headers, body, html_ok=False)
    assert json.loads(body)["error"]["field"] == "timeframe_end"


def test_a_body_that_cannot_be_decoded_is_a_400_naming_the_body(harness: Harness) -> None:
    """`Content-Encoding: gzip` over junk, to every route that reads a body (with its real token): was a 500 with a
    traceback (aiohttp raises while the handler reads); now 400 JSON naming the body, nothing written."""
    for path, token in (("/api/v1/check-results", PUSH), ("/api/v1/admin/notices", ADMIN), ("/api/v1/admin/overrides", ADMIN),
                        (f"/nrdp/?token={PUSH}&cmd=submitcheck", PUSH)):  # fmt: skip
        before = state_of(harness.app)
        ctype = b"application/x-www-form-urlencoded" if path.startswith("/nrdp") else b"application/json"
        request = raw_request(path, b"Authorization: Bearer " + token.encode(), b"Content-Type: " + ctype,
                              b"Content-Encoding: gzip", b"Content-Length: 5", method=b"POST") + b"junk!"  # fmt: skip
        status, headers, body = harness.raw_answer(request)
        assert status == 400, (path, status, body)
        assert_error_shape(False, status, headers, body, html_ok=False)
        assert json.loads(body)["error"]["field"] == "body"
        assert state_of(harness.app) == before


# -- item 9: a refused request is answered in JSON and echoes nothing ------------------------------------------------

TOKEN = SECRET.encode()
MALFORMED_WITH_TOKEN = {
    "control byte in the token header": raw_request("/api/v1/admin/notices", b"Authorization: Bearer " + TOKEN + b"\x01"),
    "token in a bad header name": raw_request("/", b"X-" + TOKEN + b"\x00: 1"),
    "token in a bad query": raw_request("/api/services.json?token=" + SECRET + "\x7f"),
    "token in an oversize header": raw_request("/", b"Authorization: Bearer " + TOKEN + b"x" * 9000),
    "token as the method": raw_request("/", method=TOKEN + b"\x01"),
    "token in a bad Content-Length": raw_request("/api/v1/admin/notices", b"Content-Length: " + TOKEN, method=b"POST"),
}


def test_malformed_requests_carrying_a_token_get_json_that_quotes_none_of_it(tmp_path: Path) -> None:
    """The real daemon at debug with the access log: aiohttp's own 400 page quoted the refused header line (token and
    all) back; now our JSON error shape, with nosniff and no versions, and the token reaches neither answer nor log."""
    statusdat = tmp_path / "status.dat"
    statusdat.write_bytes(MINI_STATUSDAT % int(time.time()))
    port = free_port()
    (tmp_path / "site.toml").write_text(site_toml(port, "Hardening", statusdat))
    log = tmp_path / "daemon.log"
    args = ("--db", str(tmp_path / "db"), "--access-log", "--log-level", "debug")
    env = {"STATUS_BRIDGE_ADMIN_TOKENS": SECRET}
    with BridgeProcess(tmp_path / "site.toml", port, args, output=log, env=env):
        for label, data in MALFORMED_WITH_TOKEN.items():
            answer = send_raw(port, data)
            assert TOKEN not in answer, (label, answer[:600])
            status, headers, body = parse_answer(answer)
            assert status == 400, (label, answer[:600])
            assert_error_shape(False, status, headers, body, html_ok=False)
            assert headers["X-Content-Type-Options"] == "nosniff" and headers["Server"] == "status-bridge", (label, headers)
        # A body aiohttp cannot decode, on a route that never reads it: drained after a 200; was an ERROR traceback.
        gzip_junk = raw_request("/api/services.json", b"Content-Encoding: gzip", b"Content-Length: 5") + b"junk!"
        assert send_raw(port, gzip_junk).startswith(b"HTTP/1.1 200 OK\r\n")
    text = log.read_text(errors="replace")
    assert "undecodable body dropped (RequestPayloadError)" in text, text[-2000:]
    assert "refused with 400" in text, text[-2000:]  # the parser's refusals were logged (at debug) ...
    assert SECRET not in text, [line for line in text.splitlines() if SECRET in line][:5]  # ... without the token
    assert "Traceback" not in text


def test_an_unknown_expectation_is_not_quoted_back(harness: Harness) -> None:
    """aiohttp answered `Expect: <anything>` with a plain-text 417 quoting the value, outside the gate; now the
    expectation is ignored (RFC 9110 allows it) and the request is served like any other."""
    status, headers, body = harness.raw_answer(raw_request("/api/services.json", b"Expect: " + TOKEN))
    assert status == 200 and TOKEN not in body, (status, body[:300])
    status, headers, body = harness.raw_answer(raw_request("/api/v1/admin/notices", b"Expect: " + TOKEN, b"Content-Length: 2",
                                                           method=b"POST") + b"{}")  # fmt: skip
    assert status == 401 and TOKEN not in body, (status, body[:300])
    assert_error_shape(False, status, headers, body, html_ok=False)
    # 100-continue still gets its interim answer before the real one (curl sends it for bodies over 1 KiB).
    results = json.dumps({"results": [{"host": "web-1", "service": "HTTP", "state": 0}]}).encode()
    request = raw_request("/api/v1/check-results", b"Authorization: Bearer " + PUSH.encode(), b"Expect: 100-continue",
                          b"Content-Type: application/json", b"Content-Length: %d" % len(results), method=b"POST")  # fmt: skip
    answer = harness.raw_bytes(request + results)
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"), answer[:200]


def test_on_another_aiohttp_the_runner_keeps_aiohttps_own_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """The version guard: where the protocol hook may not fit, the daemon still serves (aiohttp's plain 400) and says so."""
    monkeypatch.setattr(server, "SUPPORTED", False)
    h = Harness(build_app(tmp_path))
    try:
        status, headers, body = h.raw_answer(raw_request("/", b"Bad\x00Header: 1"))
        assert status == 400 and headers["Content-Type"].startswith("text/plain"), (status, headers)
        assert h.request("GET", "/api/services.json")[0] == 200
    finally:
        h.close()
    assert "malformed requests get aiohttp's own plain-text 400" in caplog.text


# -- item 10: headers on every answer -------------------------------------------------------------------------------


def test_every_kind_of_answer_carries_nosniff_and_a_versionless_server(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """200, 304, HEAD, 400 quoting the URL, 401, 404 (JSON and HTML), 405, 500, 429, the catch-all and the parser's
    400: each says nosniff (error JSON quotes `<script>` from the URL) and names no software version."""
    h = harness
    answers: dict[str, tuple[int, dict[str, str]]] = {}

    def get(label: str, method: str, path: str, **kw: object) -> None:
        status, headers, _ = h.request(method, path, **kw)  # type: ignore[arg-type]
        answers[label] = (status, {k.lower(): v for k, v in headers.items()})

    get("feed", "GET", "/api/services.json")
    etag = answers["feed"][1]["etag"]
    get("304", "GET", "/api/services.json", headers={"If-None-Match": etag})
    get("HEAD", "HEAD", "/api/services.json")
    for path in ("/", "/notices.atom", "/badge.svg", "/widget.js", "/metrics", "/healthz", "/api/v2/summary.json"):
        get(path, "GET", path)
    get("400 quoting the URL", "GET", "/api/v1/notices?filter[<script>alert(1)</script>]=1")
    get("401", "GET", "/api/v1/admin/notices")
    get("404 JSON", "GET", "/<script>alert(1)</script>")
    get("404 HTML", "GET", "/notices/999999", headers={"Accept": "text/html"})
    get("405", "DELETE", "/api/services.json")
    get("POST to nowhere", "POST", "/no/such/thing", data=b"x")
    monkeypatch.setattr(sorry_notices, "notices_doc", lambda *a: 1 / 0)
    get("500", "GET", "/api/v1/notices")
    status, headers, _ = h.raw_answer(raw_request("/", b"Bad\x00Header: 1"))
    answers["parser 400"] = (status, {k.lower(): v for k, v in headers.items()})
    h.app[FRONT].limiter.configure(0.001, 1)  # one request, then 429
    get("before 429", "GET", "/api/v1/status")
    get("429", "GET", "/api/v1/status")
    expected = {"feed": 200, "304": 304, "HEAD": 200, "400 quoting the URL": 400, "401": 401, "404 JSON": 404,
                "404 HTML": 404, "405": 405, "POST to nowhere": 404, "500": 500, "parser 400": 400, "429": 429}  # fmt: skip
    assert {k: answers[k][0] for k in expected} == expected
    for label, (status, headers) in answers.items():
        assert headers.get("x-content-type-options") == "nosniff", (label, status, headers)
        assert headers.get("server") == "status-bridge", (label, status, headers)


def frame_headers(h: Harness) -> list[dict[str, str]]:
    """The headers of the HTML answers: the page, a notice page and the HTML 404 page."""
    ref = json.loads(h.request("GET", "/api/v1/notices")[2])["notices"][0]["id"]
    paths = ["/", f"/notices/{ref}", "/notices/999999"]
    answers = [h.request("GET", p, headers={"Accept": "text/html"}) for p in paths]
    assert [a[0] for a in answers] == [200, 200, 404]
    return [a[1] for a in answers]


def test_html_pages_cannot_be_framed_by_default(harness: Harness) -> None:
    """Clickjacking: the page's CSP says frame-ancestors 'none', and X-Frame-Options: DENY for older browsers."""
    for headers in frame_headers(harness):
        assert headers["Content-Security-Policy"].endswith("; frame-ancestors 'none'"), headers
        assert headers["X-Frame-Options"] == "DENY"


def test_configured_sites_may_frame_the_page(tmp_path: Path) -> None:
    """[page] frame_ancestors lists the sites that may embed the page (an intranet portal); XFO cannot say that."""
    h = served(tmp_path, frame_ancestors=("https://intranet.example.org", "'self'"))
    try:
        for headers in frame_headers(h):
            assert headers["Content-Security-Policy"].endswith("; frame-ancestors https://intranet.example.org 'self'")
            assert "X-Frame-Options" not in headers
    finally:
        h.close()


GOOD_SOURCES = ["https://intranet.example.org", "'self'", "https:", "*.example.org", "https://portal.example.org:8443/status/",
                "http://10.0.0.5:*"]  # fmt: skip
BAD_SOURCES = {
    '"https://x.example.org; script-src *"': "not a CSP source",  # a second directive smuggled in
    '"https://x.example.org\\r\\nSet-Cookie: a=b"': "not a CSP source",  # a header split
    '"https://a.example.org https://b.example.org"': "not a CSP source",  # two sources in one entry
    "\"'none'\"": "'none' is the default",
    '"https://x.example.org/a,b"': "not a CSP source",
    '"intranét.example.org"': "not a CSP source",
    '""': "not a CSP source",
    "42": "must be a string",
}


def test_frame_ancestors_config_is_validated(tmp_path: Path) -> None:
    """Each entry must be one CSP source: anything that could end the directive or the header is refused, naming
    file, key and problem; good entries load as written."""
    path = tmp_path / "site.toml"
    config = parse_config(f"[page]\nframe_ancestors = {json.dumps(GOOD_SOURCES)}\n", path)
    assert config.frame_ancestors == tuple(GOOD_SOURCES)
    assert parse_config("", path).frame_ancestors == ()
    for value, reason in BAD_SOURCES.items():
        with pytest.raises(ConfigError) as err:
            parse_config(f"[page]\nframe_ancestors = [\"'self'\", {value}]\n", path)
        [problem] = err.value.problems
        assert problem.startswith(f"{path}: page.frame_ancestors[1]: ") and reason in problem, (value, problem)
    with pytest.raises(ConfigError, match=r"page\.frame_ancestors: must be an array"):
        parse_config('[page]\nframe_ancestors = "https://intranet.example.org"\n', path)


# -- item 10: pushed names --------------------------------------------------------------------------------------------

ODD_NAMES = [("web-1", "HTTP\ud800"), ("web-1\udfff", "HTTP"), ("web-1", "HTTP\x1b[31m"), ("web-1", "HTTPS\udc80")]


def test_pushed_names_with_lone_surrogates_or_controls_are_refused_item_by_item(harness: Harness) -> None:
    """Native JSON: each odd name is an invalid item naming its field; the good item in the same batch is kept."""
    items = [{"host": "web-1", "service": "HTTP", "state": 2, "output": "CRITICAL"}]
    items += [{"host": host, "service": service, "state": 1, "output": "x"} for host, service in ODD_NAMES]
    status, _, body = harness.request("POST", "/api/v1/check-results", data=json.dumps({"results": items}),
                                      headers={"Authorization": f"Bearer {PUSH}", "Content-Type": "application/json"})  # fmt: skip
    answer = json.loads(body)
    assert status == 200 and (answer["accepted"], answer["invalid"]) == (1, 4), answer
    fields = [e["field"] for e in answer["errors"]]
    assert fields == ["results[1].service", "results[2].host", "results[3].service", "results[4].service"], answer
    assert all("surrogate" in e["message"] or "control" in e["message"] for e in answer["errors"])
    assert set(harness.app[PASSIVE].store.services) == {("web-1", "HTTP")}


def test_nrdp_names_with_lone_surrogates_are_refused_item_by_item(harness: Harness) -> None:
    """NRDP's JSON payload: the same rule through NRDP's parser; the good item is stored, no odd one is."""
    results = [{"checkresult": {"type": "service"}, "hostname": host, "servicename": service, "state": "1", "output": "x"}
               for host, service in [("web-1", "HTTP"), *ODD_NAMES]]  # fmt: skip
    form = urllib.parse.urlencode({"cmd": "submitcheck", "token": PUSH, "output_type": "TYPE_JSON",
                                   "json": json.dumps({"checkresults": results})}).encode()  # fmt: skip
    status, _, body = harness.request("POST", "/nrdp/", data=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200, body
    for field in ("checkresults[1].servicename", "checkresults[2].hostname", "checkresults[4].servicename"):
        assert field.encode() in body, body
    assert set(harness.app[PASSIVE].store.services) == {("web-1", "HTTP")}


# -- item 10: start-up warnings and private files --------------------------------------------------------------------


def start_daemon(tmp_path: Path, args: tuple[str, ...] = (), env: dict[str, str] | None = None,
                 prefix: tuple[str, ...] = ()) -> BridgeProcess:  # fmt: skip
    """The real daemon on a fresh status.dat, its log in tmp_path/daemon.log (appended), its DB in tmp_path/state."""
    statusdat = tmp_path / "status.dat"
    statusdat.write_bytes(MINI_STATUSDAT % int(time.time()))
    port = free_port()
    (tmp_path / "site.toml").write_text(site_toml(port, "Hardening", statusdat))
    db = ("--db", str(tmp_path / "state" / "bridge.db"))
    return BridgeProcess(tmp_path / "site.toml", port, (*db, *args), prefix, output=tmp_path / "daemon.log", env=env)


def log_lines(tmp_path: Path, needle: str) -> list[str]:
    """The daemon log's lines holding needle."""
    return [line for line in (tmp_path / "daemon.log").read_text(errors="replace").splitlines() if needle in line]


SHORT_ADMIN, LONG_ADMIN, SHORT_PUSH = "short-admin", "a-long-enough-admin-token-4c1d", "tiny"


def test_start_warns_about_short_tokens_and_root_outside_systemd(tmp_path: Path) -> None:
    """One warning line per token source with tokens under 16 characters (never the tokens); one about running as
    root when systemd did not start us. A set-up without either gets neither line."""
    admin = tmp_path / "admin.token"
    admin.write_text(f"# admin\n{SHORT_ADMIN}\n{LONG_ADMIN}\n")
    admin.chmod(0o600)
    env = {"STATUS_BRIDGE_PUSH_TOKENS": SHORT_PUSH, "INVOCATION_ID": ""}
    with start_daemon(tmp_path, ("--admin-token-file", str(admin)), env):
        pass
    assert len(log_lines(tmp_path, f"1 of 2 admin tokens in {admin} are shorter than 16 characters")) == 1
    assert len(log_lines(tmp_path, "1 of 1 push tokens in $STATUS_BRIDGE_PUSH_TOKENS are shorter than 16")) == 1
    assert log_lines(tmp_path, SHORT_ADMIN) == log_lines(tmp_path, LONG_ADMIN) == []
    assert not [line for line in log_lines(tmp_path, "WARNING") if f"={SHORT_PUSH}" in line or f" {SHORT_PUSH} " in line]
    root_lines = log_lines(tmp_path, "running as root outside systemd")
    assert len(root_lines) == (1 if os.geteuid() == 0 else 0), root_lines
    (tmp_path / "daemon.log").unlink()
    admin.write_text(f"{LONG_ADMIN}\n")
    with start_daemon(tmp_path, ("--admin-token-file", str(admin)), {"INVOCATION_ID": "0123456789abcdef"}):
        pass
    assert log_lines(tmp_path, "shorter than 16") == log_lines(tmp_path, "running as root") == []
    assert log_lines(tmp_path, "serving on"), (tmp_path / "daemon.log").read_text()[-2000:]


UMASK_000 = ("sh", "-c", 'umask 000 && exec "$@"', "sh")


def test_database_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """Under umask 000 the database, its -wal and its -shm are created 0600 (notices not yet public and private
    override reasons live there); an existing world-readable file keeps its mode and is warned about."""
    db = tmp_path / "state" / "bridge.db"
    with start_daemon(tmp_path, prefix=UMASK_000):
        files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
    assert modes == {f.name: 0o600 for f in files}, {k: oct(v) for k, v in modes.items()}
    assert log_lines(tmp_path, "readable by everyone") == []
    db.chmod(0o644)
    with start_daemon(tmp_path, prefix=UMASK_000):
        pass
    assert stat.S_IMODE(db.stat().st_mode) == 0o644  # left as the administrator set it ...
    assert log_lines(tmp_path, f"{db} is readable by everyone (mode 644): chmod 600 it")  # ... with a warning
