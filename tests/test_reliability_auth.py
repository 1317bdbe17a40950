"""Auth: no admin or push route accepts a missing, empty, malformed or wrong token; tokens never reach the logs.

The routes come from app.router, so a new admin or push endpoint is in the table without editing this file.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bridge.keys import SETTINGS
from tests.test_reliability_badinput import Harness, Route, build_app, nrdp_result, routes, state_of
from tests.test_reliability_input import Daemon, nagios_statusdat, write_atomic

ADMIN = "fuzz-admin-token-3b9e0c"  # the tokens build_app configures
PUSH = "fuzz-push-token-77d2aa"


def guarded(app: web.Application) -> list[Route]:
    """Every admin and push route (HEAD twins of GET routes included), NRDP's form-token endpoint apart."""
    return [r for r in routes(app) if r.admin or (r.push and not r.nrdp)]


def bearer_variants(token: str, other: str) -> dict[str, dict[str, str]]:
    """Authorization headers that must all be refused for a route whose token is `token`."""
    b64 = base64.b64encode(token.encode()).decode()
    return {
        "no header": {},
        "empty": {"Authorization": ""},
        "Bearer only": {"Authorization": "Bearer"},
        "Bearer space": {"Authorization": "Bearer "},
        "wrong": {"Authorization": "Bearer wrong"},
        "Basic base64": {"Authorization": f"Basic {b64}"},
        "Basic user:token": {"Authorization": "Basic " + base64.b64encode(f"admin:{token}".encode()).decode()},
        "Basic raw": {"Authorization": f"Basic {token}"},
        "no scheme": {"Authorization": token},
        "Token scheme": {"Authorization": f"Token {token}"},
        "suffix": {"Authorization": f"Bearer {token}x"},
        "prefix": {"Authorization": f"Bearer {token[:-1]}"},
        "token then space and more": {"Authorization": f"Bearer {token} x"},
        "token twice": {"Authorization": f"Bearer {token},{token}"},
        "NUL after token": {"Authorization": f"Bearer {token}%00"},
        "case changed": {"Authorization": f"Bearer {token.upper()}"},
        "the other API's token": {"Authorization": f"Bearer {other}"},
        "token in a query": {"X-Query": f"token={token}"},
    }


@pytest.fixture
def harness(tmp_path: Path) -> Any:
    """The real app with an admin and a push token, rate limiting off (every attempt reaches the auth check)."""
    h = Harness(build_app(tmp_path))
    yield h
    h.close()


def test_every_admin_and_push_route_refuses_every_bad_credential(harness: Harness) -> None:
    """Table: every guarded route from app.router x every bad Authorization: 401/403, JSON error, nothing written."""
    table = guarded(harness.app)
    assert any(r.admin for r in table) and any(r.push for r in table)
    for route in table:
        token, other = (ADMIN, PUSH) if route.admin else (PUSH, ADMIN)
        path = route.path({"id": "1"})
        for label, headers in bearer_variants(token, other).items():
            before = state_of(harness.app)
            params = {"token": token} if "X-Query" in headers else None
            headers = {k: v for k, v in headers.items() if k != "X-Query"}
            status, out_headers, body = harness.request(
                route.method, path, headers={**headers, "Content-Type": "application/json"}, params=params,
                data=None if route.method in ("GET", "HEAD", "DELETE") else json.dumps({"type": "unplanned", "subject": "x"}),
            )
            assert status in (401, 403), (route.method, route.template, label, status, body[:200])
            if route.method != "HEAD":
                assert json.loads(body)["error"]["status"] == status
            if status == 401:
                assert out_headers["WWW-Authenticate"].startswith("Bearer realm=")
            assert state_of(harness.app) == before, (route.template, label)


def test_every_guarded_route_accepts_its_real_token(harness: Harness) -> None:
    """The same table with the right token gets past auth (so the refusals above are about the credential)."""
    for route in guarded(harness.app):
        token = ADMIN if route.admin else PUSH
        status, _, body = harness.request(route.method, route.path({"id": "1"}), headers={"Authorization": f"Bearer {token}"},
                                          data=None if route.method in ("GET", "HEAD", "DELETE") else b"{}")  # fmt: skip
        assert status not in (401, 403), (route.template, status, body[:200])


def test_trailing_whitespace_is_not_part_of_a_header_value(harness: Harness) -> None:
    """`Bearer TOKEN ` is the same header as `Bearer TOKEN`: RFC 9110 strips a field value's trailing whitespace."""
    # The HTTP parser removes it before the app sees the header, so no near-miss secret is involved.
    request = f"GET /api/v1/admin/notices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN} \t\r\nConnection: close\r\n\r\n"
    status, _ = harness.raw(request.encode())
    assert status == 200


NRDP_BAD = {
    "no token": {},
    "empty": {"token": ""},
    "wrong": {"token": "wrong"},
    "suffix": {"token": PUSH + "x"},
    "prefix": {"token": PUSH[:-1]},
    "token then space and more": {"token": PUSH + " x"},
    "admin token": {"token": ADMIN},
    "case changed": {"token": PUSH.upper()},
}


@pytest.mark.parametrize("where", ["form", "query"])
def test_nrdp_refuses_every_bad_token(harness: Harness, where: str) -> None:
    """NRDP takes its token as a form (or query) field: every bad one is refused in NRDP's shape; nothing stored."""
    checks = json.dumps({"checkresults": [{"checkresult": {"type": "service"}, "hostname": "web-1", "servicename": "HTTP",
                                           "state": "2", "output": "CRITICAL"}]})  # fmt: skip
    for path in sorted({r.path({"slashes": s}) for r in routes(harness.app) if r.nrdp for s in ("/", "//", "")}):
        for label, token in NRDP_BAD.items():
            before = state_of(harness.app)
            fields = {"cmd": "submitcheck", "json": checks}
            query = token if where == "query" else {}
            form = {**fields, **(token if where == "form" else {})}
            status, _, body = harness.request("POST", path, params=query, data=urllib.parse.urlencode(form).encode(),
                                              headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
            assert status == 200, (path, label, status, body[:200])  # NRDP answers every request with 200
            assert nrdp_result(body) in ((-1, "NO TOKEN"), (-1, "BAD TOKEN")), (path, label, body[:200])
            assert state_of(harness.app) == before, (path, label)


def test_no_tokens_configured_means_every_guarded_route_is_off(tmp_path: Path) -> None:
    """With no tokens configured, the admin and push APIs are off (403) whatever the request carries."""
    app = build_app(tmp_path)
    app[SETTINGS] = dataclasses.replace(app[SETTINGS], admin_tokens=(), push_tokens=())
    h = Harness(app)
    try:
        for route in guarded(app):
            for auth in ("", "Bearer ", f"Bearer {ADMIN}", f"Bearer {PUSH}"):
                status, _, _ = h.request(route.method, route.path({"id": "1"}), headers={"Authorization": auth} if auth else {})
                assert status in (401, 403), (route.template, auth, status)
                if auth.strip() not in ("", "Bearer"):
                    assert status == 403
    finally:
        h.close()


# -- tokens never in the logs -------------------------------------------------------------------------------------

LOG_ADMIN = "log-admin-token-Q7vX2b"
LOG_PUSH = "log-push-token-Z3kP9m"
SECRETS = [LOG_ADMIN, LOG_PUSH, base64.b64encode(LOG_ADMIN.encode()).decode(), base64.b64encode(LOG_PUSH.encode()).decode()]


def send(base: str, method: str, path: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> int:
    """One request; the status (errors included)."""
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code


def send_raw(port: int, data: bytes) -> None:
    """Bytes straight to the socket (malformed requests a client library would refuse to send)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass


def test_tokens_never_reach_the_daemon_log(tmp_path: Path) -> None:
    """The real daemon at debug level with the access log on: valid, invalid, near-miss and malformed uses leave no token."""
    statusdat = tmp_path / "status.dat"
    write_atomic(statusdat, nagios_statusdat(time.time()))
    for name, token in (("admin", LOG_ADMIN), ("push", LOG_PUSH)):
        (tmp_path / name).write_text(f"# {name} tokens\n{token}\n")
        (tmp_path / name).chmod(0o600)
    args = ("--admin-token-file", str(tmp_path / "admin"), "--push-token-file", str(tmp_path / "push"), "--access-log",
            "--log-level", "debug")  # fmt: skip
    with Daemon(tmp_path, statusdat, args=args) as daemon:
        base, port = daemon.base, daemon.port
        notice = json.dumps({"type": "unplanned", "subject": "Log test", "components": ["website"]}).encode()
        for token in (LOG_ADMIN, LOG_ADMIN + "X", LOG_ADMIN[:-1], LOG_PUSH):
            auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            send(base, "POST", "/api/v1/admin/notices", auth, notice)
            send(base, "GET", "/api/v1/admin/notices", auth)
            send(base, "GET", "/api/v1/admin/notices", {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()})
        results = json.dumps({"results": [{"host": "web-1", "service": "HTTP", "state": 0, "output": "OK"}]}).encode()
        for token in (LOG_PUSH, LOG_PUSH + "X", LOG_ADMIN):
            send(base, "POST", "/api/v1/check-results", {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, results)
            form = urllib.parse.urlencode({"token": token, "cmd": "submitcheck", "json": '{"checkresults": []}'}).encode()
            send(base, "POST", "/nrdp/", {"Content-Type": "application/x-www-form-urlencoded"}, form)
            send(base, "GET", "/nrdp/?" + urllib.parse.urlencode({"token": token, "cmd": "submitcheck"}))
            send(base, "GET", "/nrdp/?cmd=hello&TOKEN=" + token)
            # The token under a percent-encoded name (NRDP accepts it) and other secret-looking names.
            send(base, "POST", f"/nrdp/?%74oken={token}&cmd=submitcheck", {"Content-Type": "application/x-www-form-urlencoded"},
                 b"xml=<checkresults/>")  # fmt: skip
            for name in ("To%6Ben", "access_token", "auth", "bearer_token", "authorization", "api_key", "API%5FKEY"):
                send(base, "GET", f"/nrdp/?cmd=hello&{name}={token}")
                send(base, "GET", f"/api/services.json?{name}={token}")
        # Malformed requests that carry a token: the HTTP parser's own error report must not echo it.
        long_url = f"GET /nrdp/?token={LOG_PUSH}&cmd=submitcheck&json={'a' * 9000} HTTP/1.1\r\nHost: x\r\n\r\n"
        send_raw(port, long_url.encode())
        long_header = f"GET /api/v1/admin/notices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {LOG_ADMIN}{' ' * 9000}x\r\n\r\n"
        send_raw(port, long_header.encode())
        send_raw(port, f"GET /?token={LOG_PUSH} HTTP/1.1\r\nHost: x\r\nBad\x00Header: {LOG_ADMIN}\r\n\r\n".encode())
        send(base, "GET", "/healthz")
    err = daemon.stderr
    assert "POST /api/v1/admin/notices" in err and "status=201" in err, err[-3000:]  # the access log is on
    assert "admin: rejected token" in err  # refusals are logged, without the token
    for secret in SECRETS:
        assert secret not in err, f"{secret!r} leaked into the log:\n" + "\n".join(l for l in err.splitlines() if secret in l)[:2000]
    assert "Traceback" not in err, err[-3000:]


def test_tokens_never_reach_app_logs_at_debug(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """In-process at DEBUG for every logger: valid and rejected admin/push calls log no token."""
    caplog.set_level(logging.DEBUG)
    body = json.dumps({"type": "unplanned", "subject": "x", "components": ["website"]})
    for token in (ADMIN, ADMIN + "X", PUSH, PUSH + "X"):
        for route in guarded(harness.app):
            harness.request(route.method, route.path({"id": "1"}), headers={"Authorization": f"Bearer {token}"},
                            data=None if route.method in ("GET", "HEAD", "DELETE") else body)  # fmt: skip
        form = urllib.parse.urlencode({"token": token, "cmd": "submitcheck", "json": "{}"}).encode()
        harness.request("POST", "/nrdp/", data=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    text = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records if r.name != "aiohttp.access")
    assert "rejected token" in text
    for secret in (ADMIN, PUSH):
        assert secret not in text
