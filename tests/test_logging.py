"""Log format (journald-aware), state-change lines, the opt-in access log, --log-level; tokens never logged."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from yarl import URL

from bridge.app import make_app
from bridge.cli import build_parser
from bridge.keys import LIVE
from bridge.logs import (
    AccessLogger,
    LineFormatter,
    access_log,
    kv,
    on_journal,
    redacted_query,
)
from bridge.settings import Settings
from tests.conftest import REPO, check, free_port, status_data, web_config

SNIPPET = "from bridge.logs import setup_logging; import logging; setup_logging('{level}'); "
SNIPPET += "log = logging.getLogger('bridge.x'); log.info('hello %s', kv({{'a': 1}})); log.debug('hidden')"


def test_kv_quotes_only_when_needed() -> None:
    assert kv({"component": "vpn", "from": "up", "to": "down"}) == "component=vpn from=up to=down"
    assert kv({"reason": 'status.dat "x" missing', "n": None}) == 'reason="status.dat \\"x\\" missing" n=""'
    assert kv({"k": "a=b"}) == 'k="a=b"'


def _record(level: int, msg: str) -> logging.LogRecord:
    """A log record from logger bridge.x."""
    return logging.LogRecord("bridge.x", level, __file__, 1, msg, (), None)


def test_formatter_with_timestamps_or_journal_priorities() -> None:
    plain = LineFormatter(journal=False).format(_record(logging.WARNING, "disk full"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d WARNING bridge.x: disk full", plain)
    journal = LineFormatter(journal=True)
    # journald adds the time itself and reads the priority from the <N> prefix.
    assert journal.format(_record(logging.WARNING, "disk full")) == "<4>WARNING bridge.x: disk full"
    assert journal.format(_record(logging.INFO, "a\nb")) == "<6>INFO bridge.x: a\n<6>b"


def test_on_journal_checks_the_stream_identity(tmp_path: Path) -> None:
    with open(tmp_path / "err", "w") as stream:
        st = os.fstat(stream.fileno())
        assert on_journal(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not on_journal(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not on_journal(stream, {})
        assert not on_journal(stream, {"JOURNAL_STREAM": "garbage"})


def _run_snippet(level: str, journal: bool) -> str:
    """stderr of a fresh interpreter that sets up logging and logs; JOURNAL_STREAM names its pipe if journal."""
    read, write = os.pipe()
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    if journal:
        st = os.fstat(write)
        env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    code = "from bridge.logs import kv; " + SNIPPET.format(level=level)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stderr=write)
    os.close(write)
    with os.fdopen(read) as out:
        text = out.read()
    assert proc.wait(30) == 0, text
    return text


def test_log_lines_on_the_journal_and_off_it() -> None:
    assert _run_snippet("info", journal=True) == "<6>INFO bridge.x: hello a=1\n"
    off = _run_snippet("debug", journal=False)
    assert re.match(r"\d{4}-\d\d-\d\dT[0-9:.+-]+ INFO bridge.x: hello a=1\n.* DEBUG bridge.x: hidden\n$", off), off


def test_log_level_option_before_or_after_the_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["run", "-c", "x"]).log_level == "info"
    assert parser.parse_args(["--log-level", "debug", "run", "-c", "x"]).log_level == "debug"
    assert parser.parse_args(["run", "-c", "x", "--log-level", "error"]).log_level == "error"
    assert parser.parse_args(["demo", "--access-log"]).access_log is True
    assert parser.parse_args(["run", "-c", "x"]).access_log is False


def test_one_line_per_component_state_change(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(Settings(web_config(), watch=False))
    live = app[LIVE]
    with caplog.at_level(logging.INFO, logger="bridge.state"):
        # The first data after start-up is not a change.
        live.update(status_data(check("web-1", "HTTP", 0), check("db-1", "PostgreSQL", 0)), live.health)
        assert caplog.records == []
        fresh = live.health
        live.update(status_data(check("web-1", "HTTP", 2), check("db-1", "PostgreSQL", 0)), fresh)
        live.update(status_data(check("web-1", "HTTP", 2), check("db-1", "PostgreSQL", 0)), fresh)  # no change
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["component state change component=website group=web from=up to=down monitored=down"]


async def test_access_log_is_opt_in_and_never_shows_tokens(caplog: pytest.LogCaptureFixture) -> None:
    assert redacted_query("cmd=submitcheck&token=abc&x=1") == "cmd=submitcheck&token=***&x=1"
    settings = Settings(web_config(), watch=False, push_tokens=("good-push-token",), admin_tokens=("good-admin",))
    server = TestServer(make_app(settings), host="127.0.0.1")
    await server.start_server(access_log_class=AccessLogger, access_log=access_log)
    try:
        with caplog.at_level(logging.DEBUG):
            async with aiohttp.ClientSession() as session:
                for path, headers in [
                    ("/nrdp/?cmd=submitcheck&token=good-push-token", {}),
                    ("/api/v1/admin/notices", {"Authorization": "Bearer wrong-admin-secret"}),
                    ("/api/v1/admin/notices", {"Authorization": "Bearer good-admin"}),
                    ("/api/services.json", {"X-Forwarded-For": "198.51.100.3"}),
                ]:
                    async with session.get(server.make_url(path), headers=headers) as resp:
                        await resp.read()
    finally:
        await server.close()
    text = caplog.text
    for secret in ("good-push-token", "wrong-admin-secret", "good-admin"):
        assert secret not in text
    assert "GET /nrdp/?cmd=submitcheck&token=*** status=" in text
    # The client behind the trusted loopback proxy, not the proxy.
    assert re.search(r"GET /api/services.json status=200 bytes=\d+ client=198.51.100.3 seconds=", text)


# Every spelling under which a secret may sit in a query string: the name as the server decodes it decides.
SECRET_NAMES = ["token", "TOKEN", "%74oken", "To%6Ben", "%54%4F%4B%45%4E", "access_token", "Access_Token", "auth", "AUTH",
                "%61uth", "bearer_token", "authorization", "Authorization", "api_key", "API_KEY", "api%5Fkey", "apikey",
                "password", "secret", "tokens[]", "+token"]  # fmt: skip


def test_redacted_query_goes_by_the_decoded_name() -> None:
    for name in SECRET_NAMES:
        assert redacted_query(f"cmd=hello&{name}=s3cr3t&x=1") == f"cmd=hello&{name}=***&x=1", name
    assert redacted_query("cmd=hello;token=s3cr3t") == "cmd=hello;token=***"  # some parsers split at ";" too
    assert redacted_query("token=a%26b&cmd=x") == "token=***&cmd=x"
    assert redacted_query("cmd=submitcheck&XMLDATA=%3Cx%3E&output_type=TYPE_JSON") == "cmd=submitcheck&XMLDATA=%3Cx%3E&output_type=TYPE_JSON"


async def test_access_log_hides_every_spelling_of_a_secret_parameter(caplog: pytest.LogCaptureFixture) -> None:
    """The app's access logger, real requests: no value of a secret-named parameter, however spelt, reaches the log
    (the issue's case: POST /nrdp/?%74oken=<push token> is accepted by NRDP's token check and used to be logged)."""
    push = "push-token-Hx81"
    settings = Settings(web_config(rate_limit=0.0), watch=False, push_tokens=(push,), admin_tokens=("admin-token-Kq20",))
    server = TestServer(make_app(settings), host="127.0.0.1")
    await server.start_server(access_log_class=AccessLogger, access_log=access_log)
    secrets = [f"secret-{i}-Zz" for i in range(len(SECRET_NAMES))]
    try:
        with caplog.at_level(logging.INFO, logger="bridge.access"):
            async with aiohttp.ClientSession() as session:
                # encoded=True: sent as written (yarl would otherwise normalise %74 to "t").
                url = URL(f"{server.make_url('/nrdp/')}?%74oken={push}&cmd=submitcheck", encoded=True)
                async with session.post(url, data={"xml": "<checkresults/>"}) as resp:
                    assert "<status>0</status>" in await resp.text()  # the encoded name is the token: accepted
                for name, secret in zip(SECRET_NAMES, secrets):
                    for path in ("/nrdp/", "/api/services.json", "/nope"):
                        async with session.get(URL(f"{server.make_url(path)}?cmd=hello&{name}={secret}", encoded=True)) as resp:
                            await resp.read()
    finally:
        await server.close()
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "bridge.access")
    assert text.count("\n") >= 3 * len(SECRET_NAMES), text  # every request was logged
    for secret in [push, *secrets]:
        assert secret not in text, f"{secret} leaked: " + next(line for line in text.splitlines() if secret in line)
    assert "POST /nrdp/?%74oken=***&cmd=submitcheck status=200" in text


def test_malformed_requests_do_not_flood_the_log(tmp_path: Path) -> None:
    from tests.test_reload import Daemon, write_config

    port = free_port()
    cfg = write_config(tmp_path / "site.toml", port, status_file="missing.dat")
    daemon = Daemon(cfg, port).start()
    try:
        for raw in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"GET / HTTP/1.1\r\nBad Header\x00: 1\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(raw)
                sock.recv(4096)
    finally:
        daemon.stop()
    assert daemon.returncode == 0
    assert "Traceback" not in daemon.log and "Error handling request" not in daemon.log, daemon.log
