"""SIGHUP reload (valid, invalid, retargeted sources, token files) and graceful SIGTERM, on real processes and in-process."""

from __future__ import annotations

import http.client
import json
import logging
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from bridge.app import make_app
from bridge.config_load import load_config
from bridge.keys import HEALTH, LIVE
from bridge.passive import Result
from bridge.reload import SOURCES, reload_config
from bridge.settings import Settings
from bridge.views_passive import PASSIVE
from tests.bridgeproc import BridgeProcess, run_cli
from tests.conftest import HANG_GUARD, MINI_STATUSDAT, free_port, web_group_toml
from tests.procs import wait_until

CONFIG = """
[page]
name = "Reload test"
[nagios]
status_file = "{status_file}"
stale_after = {stale_after}
[http]
listen = "127.0.0.1:{port}"
{http}
"""
OK_STATUSDAT = MINI_STATUSDAT.replace(b"current_state=2", b"current_state=0").replace(b"last_hard_state=2", b"last_hard_state=0")


def write_config(path: Path, port: int, component: str = "website", name: str = "Website",
                 status_file: str = "status.dat", stale_after: float = 600, http: str = "") -> Path:  # fmt: skip
    """Write the one-component test config (group web: component checks web-1 HTTP)."""
    path.write_text(CONFIG.format(port=port, status_file=status_file, stale_after=stale_after, http=http)
                    + web_group_toml(component, name))  # fmt: skip
    return path


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, int]:
    """(config path, port): web-1/HTTP CRITICAL in a fresh status.dat beside the config."""
    (tmp_path / "status.dat").write_bytes(MINI_STATUSDAT % int(time.time()))
    port = free_port()
    return write_config(tmp_path / "site.toml", port), port


class Daemon(BridgeProcess):
    """`status-bridge run` on config with a SQLite file beside it; its log goes to a file there, read while it runs."""

    def __init__(self, config: Path, port: int, args: Sequence[str] = (), env: Mapping[str, str] | None = None,
                 ready: str | None = "/api/services.json") -> None:  # fmt: skip
        """ready: as for BridgeProcess (None: start returns at once)."""
        log = config.parent / "daemon.log"
        super().__init__(config, port, ("--db", str(config.parent / "db"), *args), output=log, ready=ready, env=env)

    @property
    def log(self) -> str:
        """Everything logged so far."""
        assert self.output is not None
        return self.output.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = HANG_GUARD) -> None:
        """Wait (bounded) until a log line contains text."""
        if not wait_until(lambda: any(text in line for line in self.log.splitlines()), timeout, 0.05):
            raise AssertionError(f"no log line with {text!r} in {timeout}s:\n{self.log}")

    def signal(self, sig: int) -> None:
        """Send sig to the daemon."""
        assert self.proc is not None
        self.proc.send_signal(sig)


def get_json(conn: http.client.HTTPConnection, path: str = "/api/services.json") -> dict:
    """One GET on an open keep-alive connection."""
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 200, body
    return json.loads(body)


def wait_ready(port: int, timeout: float = 20) -> http.client.HTTPConnection:
    """A keep-alive connection once the daemon answers the feed."""
    deadline = time.monotonic() + timeout
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG_GUARD)
        try:
            get_json(conn)
            return conn
        except OSError:
            conn.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def component_ids(body: dict) -> list[str]:
    """Ids of every component in an Oxford feed."""
    return [s["id"] for g in body["groups"] for s in g["services"]]


def test_sighup_reloads_valid_config_on_a_live_connection(site: tuple[Path, int]) -> None:
    cfg, port = site
    daemon = Daemon(cfg, port).start()
    try:
        conn = wait_ready(port)
        local = conn.sock.getsockname()
        assert component_ids(get_json(conn)) == ["website"]
        write_config(cfg, port, component="www", name="World wide web")
        daemon.signal(signal.SIGHUP)
        deadline = time.monotonic() + HANG_GUARD
        while component_ids(body := get_json(conn)) != ["www"]:
            assert time.monotonic() < deadline, body
            time.sleep(0.1)
        assert body["groups"][0]["services"][0]["name"] == "World wide web"
        # The very same keep-alive connection served before, during and after the reload.
        assert conn.sock.getsockname() == local
        daemon.wait_log("configuration reloaded")
        assert "changed=groups" in daemon.log
        # No per-request lines unless --access-log.
        assert "/api/services.json" not in daemon.log
        conn.close()
    finally:
        daemon.stop()
    assert daemon.returncode == 0, daemon.log


def test_sighup_with_invalid_config_keeps_the_old_one(site: tuple[Path, int]) -> None:
    cfg, port = site
    daemon = Daemon(cfg, port).start()
    try:
        conn = wait_ready(port)
        good = cfg.read_text()
        cfg.write_text(good.replace('name = "Reload test"', 'nmae = "typo"').replace("stale_after = 600", "stale_after = -5"))
        daemon.signal(signal.SIGHUP)
        daemon.wait_log("reload failed")
        # Every problem gets its own line, naming file and key.
        daemon.wait_log(f"{cfg}: page.nmae: unknown key")
        daemon.wait_log(f"{cfg}: nagios.stale_after: must be greater than 0")
        assert component_ids(get_json(conn)) == ["website"]
        assert daemon.proc.poll() is None
        # Fixed, and reloaded again: the new config is taken.
        write_config(cfg, port, name="Fixed")
        daemon.signal(signal.SIGHUP)
        deadline = time.monotonic() + HANG_GUARD
        while get_json(conn)["groups"][0]["services"][0]["name"] != "Fixed":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        conn.close()
    finally:
        daemon.stop()
    assert daemon.returncode == 0, daemon.log


def admin_status(port: int, token: str) -> int:
    """The status of an admin API request with token."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/admin/notices", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=HANG_GUARD) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        e.close()
        return e.code


def test_sighup_rereads_the_token_files(site: tuple[Path, int], tmp_path: Path) -> None:
    cfg, port = site
    tokens = tmp_path / "admin.token"
    tokens.write_text("first-admin-token\n")
    tokens.chmod(0o600)
    daemon = Daemon(cfg, port, ["--admin-token-file", str(tokens)]).start()
    try:
        assert admin_status(port, "first-admin-token") == 200
        tokens.write_text("second-admin-token\n")
        daemon.signal(signal.SIGHUP)
        daemon.wait_log("changed=admin")
        assert (admin_status(port, "first-admin-token"), admin_status(port, "second-admin-token")) == (403, 200)
        # An unreadable file is logged by name and the running tokens stay.
        tokens.unlink()
        daemon.signal(signal.SIGHUP)
        daemon.wait_log(f"keeping the running admin tokens file={tokens}")
        assert admin_status(port, "second-admin-token") == 200
        assert daemon.proc.poll() is None
    finally:
        daemon.stop()
    assert daemon.returncode == 0, daemon.log
    assert "first-admin-token" not in daemon.log and "second-admin-token" not in daemon.log


def test_sigterm_finishes_the_request_in_flight_and_exits_0(site: tuple[Path, int], tmp_path: Path) -> None:
    cfg, port = site
    tokens = tmp_path / "push.token"
    tokens.write_text("s3cret-push-token\n")
    tokens.chmod(0o600)
    daemon = Daemon(cfg, port, ["--push-token-file", str(tokens)]).start()
    try:
        body = json.dumps({"results": [{"host": "web-1", "service": "HTTP", "state": 0, "output": "OK"}]}).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD) as sock:
            # Expect: 100-continue: aiohttp answers "100 Continue" right as it enters the handler, so once that
            # arrives the request is being handled (counted in flight), waiting for the rest of its body.
            head = (f"POST /api/v1/check-results HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-push-token\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n")  # fmt: skip
            sock.sendall(head.encode() + body[:10])
            interim = b""
            while not interim.endswith(b"\r\n\r\n"):
                interim += sock.recv(1)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n", interim
            daemon.signal(signal.SIGTERM)
            daemon.wait_log("stopping: 1 requests in flight")
            # No new connections are accepted while the old request finishes.
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            sock.sendall(body[10:])
            answer = sock.recv(65536).decode()
        assert answer.startswith("HTTP/1.1 200"), answer
        assert '"accepted": 1' in answer or '"accepted":1' in answer
        assert daemon.proc.wait(HANG_GUARD) == 0, daemon.log
        # It stopped once the request was done, not at the cut-off (which would have said so).
        assert "cut off" not in daemon.log, daemon.log
        assert "s3cret-push-token" not in daemon.log
    finally:
        daemon.stop()


def _settings(cfg: Path) -> Settings:
    """Settings for an in-process app with the real sources."""
    return Settings(load_config(cfg))


async def test_reload_retargets_the_tailer(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "status.dat").write_bytes(MINI_STATUSDAT % int(time.time()))
    (tmp_path / "other.dat").write_bytes(OK_STATUSDAT % int(time.time()))
    cfg = write_config(tmp_path / "site.toml", free_port())
    app = make_app(_settings(cfg))
    async with TestServer(app, host="127.0.0.1"):
        live, sources = app[LIVE], app[SOURCES]
        assert live.snapshot.groups[0].components[0].status.value == "down"
        first = sources.tailer
        # stale_after alone: the same tailer, retuned; data 600 s old is now stale.
        write_config(cfg, 1, stale_after=0.001)
        assert await reload_config(app, cfg)
        assert sources.tailer is first and first.stale_after == 0.001
        assert app[HEALTH](time.time()).stale and live.snapshot.stale
        # A new status_file: a new tailer on the new path, its data on the page.
        write_config(cfg, 1, status_file="other.dat")
        with caplog.at_level(logging.INFO, logger="bridge"):
            assert await reload_config(app, cfg)
        assert sources.tailer is not first and sources.tailer.path == tmp_path / "other.dat"
        assert live.snapshot.groups[0].components[0].status.value == "up" and not live.snapshot.stale
        assert "changed=statusdat_path,stale_after" in caplog.text
        assert "http.listen changed" in caplog.text  # port 1 vs the original: needs a restart


async def test_reload_problems_are_logged_and_change_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "status.dat").write_bytes(MINI_STATUSDAT % int(time.time()))
    cfg = write_config(tmp_path / "site.toml", free_port())
    app = make_app(_settings(cfg))
    async with TestServer(app, host="127.0.0.1"):
        before = app[LIVE].config
        cfg.write_text(cfg.read_text() + '[icinga]\nurl = "https://localhost:5665"\nuser = "u"\n'
                       f'password_file = "{tmp_path}/missing"\n')  # fmt: skip
        with caplog.at_level(logging.ERROR, logger="bridge"):
            assert not await reload_config(app, cfg)
        # The Icinga source is built (and its password file read) before anything is swapped.
        assert app[LIVE].config is before
        assert app[SOURCES].icinga is None
        assert "reload failed" in caplog.text and "password" in caplog.text
        cfg.unlink()
        assert not await reload_config(app, cfg)
        assert f"{cfg}: cannot read" in caplog.text
        assert app[LIVE].config is before


async def test_reload_dropping_status_file_removes_its_data(tmp_path: Path) -> None:
    (tmp_path / "status.dat").write_bytes(MINI_STATUSDAT % int(time.time()))
    cfg = write_config(tmp_path / "site.toml", free_port())
    app = make_app(_settings(cfg))
    async with TestServer(app, host="127.0.0.1"):
        assert app[LIVE].data is not None
        cfg.write_text(cfg.read_text().replace('status_file = "status.dat"', ""))
        assert await reload_config(app, cfg)
        assert app[SOURCES].tailer is None
        assert app[LIVE].data is None and app[LIVE].snapshot.stale
        assert app[LIVE].health.reason == "no monitoring source configured"


async def test_reload_dropping_status_file_keeps_pushed_results(tmp_path: Path) -> None:
    (tmp_path / "status.dat").write_bytes(OK_STATUSDAT % int(time.time()))
    cfg = write_config(tmp_path / "site.toml", free_port())
    app = make_app(_settings(cfg))
    async with TestServer(app, host="127.0.0.1"):
        live, hub = app[LIVE], app[PASSIVE]
        assert live.snapshot.groups[0].components[0].status.value == "up"
        tailed = live.sources["statusdat"].data
        hub.submit([Result("web-1", "HTTP", 2, "CRITICAL", time.time())])  # newer than status.dat's result
        assert await hub.publish()
        assert live.snapshot.groups[0].components[0].status.value == "down"
        assert live.data is not tailed and live.data is not live.sources["passive"].data  # merged
        cfg.write_text(cfg.read_text().replace('status_file = "status.dat"', ""))
        assert await reload_config(app, cfg)
        # Only the pushed results are left: Live publishes its own copy of them (changed in place by later pushes).
        assert set(live.sources) == {"passive"} and live.data == live.sources["passive"].data
        assert live.snapshot.groups[0].components[0].status.value == "down" and not live.snapshot.stale


def test_busy_port_is_a_message_and_exit_1(site: tuple[Path, int], tmp_path: Path) -> None:
    cfg, port = site
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        proc = run_cli(["run", "--config", str(cfg), "--db", str(tmp_path / "db")])
    assert proc.returncode == 1
    assert f"cannot listen on http://127.0.0.1:{port}/: Address already in use" in proc.stderr
    assert "Traceback" not in proc.stderr
