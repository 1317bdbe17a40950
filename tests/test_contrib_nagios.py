"""contrib/nagios: check_status_bridge and status-bridge-push against real bridges, stubs and a real Nagios."""

from __future__ import annotations

import http.server
import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.bridgeproc import BridgeProcess, site_toml
from tests.conftest import HANG_GUARD, MINI_STATUSDAT, REPO, free_port
from tests.nagios import Nagios
from tests.procs import tail, wait_until

CONTRIB = REPO / "contrib" / "nagios"
CHECK = CONTRIB / "check_status_bridge"
PUSH = CONTRIB / "status-bridge-push"
OBJECTS = CONTRIB / "status-bridge.cfg"
TOKEN = "push-secret-0123456789"
STEP_TIMEOUT = HANG_GUARD  # each observable change must show up within this (reached only by a hang)
SCRIPT_TIMEOUT = 30.0  # hard bound on any script run (they bound themselves far lower)
OBEYED = 15.0  # a script given --timeout 1 ends well within this, and well before Nagios' own 60 s plugin timeout

SECURE_COMPONENT = """  [[group.component]]
  id = "secure"
  name = "Secure website"
  checks = [{ host = "web-1", service = "HTTPS" }]
"""


# ------------------------------------------------------------------------------------------------ helpers


def run_script(script: Path, *args: str, timeout: float = SCRIPT_TIMEOUT) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run a contrib script with the test's Python; return the finished process and its wall time."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(script), *args], check=False, capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    return proc, time.monotonic() - started


def check(*args: str) -> tuple[int, str]:
    """check_status_bridge ARGS -> (exit code, stdout); stdout must be one line, stderr empty."""
    proc, _ = run_script(CHECK, *args)
    assert proc.stderr == "", proc.stderr
    assert proc.stdout.count("\n") == 1, f"plugin output must be one line: {proc.stdout!r}"
    return proc.returncode, proc.stdout.rstrip("\n")


def perf_age(line: str) -> str:
    """The age perfdata of a plugin line ('12.3s;60;300;0;' -> the part after 'age=')."""
    _, sep, perf = line.partition(" | ")
    assert sep, f"no perfdata in {line!r}"
    match = re.fullmatch(r"age=(U|\d+(\.\d+)?s);([\d.]*);([\d.]*);0;", perf)
    assert match, f"bad perfdata {perf!r}"
    return match.group(1)


class Bridge(BridgeProcess):
    """`python -m bridge run` on a free loopback port, started from a config written into a directory."""

    def __init__(self, directory: Path, statusdat: str | None = None, stale_after: float = 600,
                 args: tuple[str, ...] = ()) -> None:  # fmt: skip
        """statusdat: a [nagios] source on that file (none: pushed results only)."""
        port = free_port()
        config = directory / "site.toml"
        config.write_text(site_toml(port, "contrib test", statusdat, stale_after, web_extra=SECURE_COMPONENT))
        super().__init__(config, port, args)

    def get_json(self, path: str) -> Any:
        """GET path on the bridge and parse its JSON; an answer other than 200 raises OSError."""
        status, body = self.get(path)
        if status != 200:
            raise OSError(f"{path}: HTTP {status}")
        return json.loads(body)

    def component(self, component_id: str) -> dict[str, Any]:
        """One component of the Oxford feed."""
        for group in self.get_json("/api/services.json")["groups"]:
            for service in group["services"]:
                if service["id"] == component_id:
                    return service
        raise AssertionError(f"no component {component_id}")


def statusdat_bridge(directory: Path, age: float, stale_after: float) -> Bridge:
    """A Bridge reading a MINI_STATUSDAT-style file created `age` seconds ago."""
    (directory / "status.dat").write_bytes(MINI_STATUSDAT % int(time.time() - age))
    return Bridge(directory, "status.dat", stale_after)


def eventually(what: str, probe: Callable[[], tuple[bool, object]], timeout: float = STEP_TIMEOUT) -> float:
    """Poll probe -> (ok, observed) until ok, at most timeout s; return the seconds it took."""
    last: list[object] = [None]

    def attempt() -> bool:
        try:
            ok, last[0] = probe()
        except (OSError, ValueError, KeyError, AssertionError) as exc:
            ok, last[0] = False, f"{type(exc).__name__}: {exc}"
        return ok

    started = time.monotonic()
    if not wait_until(attempt, timeout, 0.1):
        raise AssertionError(f"{what}: not within {timeout} s; last observed: {last[0]}")
    return time.monotonic() - started


class Stub:
    """A tiny loopback HTTP server answering every request with one canned reply and recording requests."""

    def __init__(self, status: int = 200, body: bytes = b'{"accepted": 1, "ignored": 0, "errors": []}') -> None:
        self.status, self.body = status, body
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                stub.requests.append((self.command, self.path, dict(self.headers), self.rfile.read(length)))
                self.send_response(stub.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(stub.body)))
                self.end_headers()
                self.wfile.write(stub.body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Stub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class BlackHole:
    """A loopback port that accepts TCP connections (kernel backlog) but never answers: a hung bridge."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    def connections(self) -> int:
        """How many connections were made to it so far (each waits in the backlog until taken here)."""
        taken = 0
        self.sock.setblocking(False)
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return taken
            conn.close()
            taken += 1


@contextmanager
def black_hole() -> Iterator[BlackHole]:
    """A BlackHole for the block."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield BlackHole(sock)


def push(url: str, token_file: Path, *args: str, spool: Path | None = None, timeout: float = 2.0) -> tuple[subprocess.CompletedProcess[str], float]:
    """status-bridge-push with explicit settings (no /etc config), logging to stderr only."""
    settings = ["--config", os.devnull, "--url", url, "--token-file", str(token_file), "--timeout", str(timeout), "--log", "stderr"]
    if spool is not None:
        settings += ["--spool", str(spool)]
    return run_script(PUSH, *settings, *args)


def spooled(spool: Path) -> list[dict[str, Any]]:
    """Results waiting in a spool file."""
    return [json.loads(line) for line in spool.read_text().splitlines()] if spool.exists() else []


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    """A push token file as an admin would write it: a comment, then the token."""
    path = tmp_path / "push.token"
    path.write_text(f"# status-bridge push token\n{TOKEN}\n")
    path.chmod(0o600)
    return path


# ------------------------------------------------------------------------------------------------ the scripts as files


@pytest.mark.parametrize("script", [CHECK, PUSH], ids=lambda p: p.name)
def test_scripts_are_executable_stdlib_python(script: Path) -> None:
    """Installable as they are: executable, python3 shebang, standard library only, --help runs via the shebang."""
    assert script.stat().st_mode & stat.S_IXOTH, f"{script} is not executable"
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env python3\n")
    imported = {a or b for a, b in re.findall(r"^\s*(?:import\s+(\w+)|from\s+(\w+)[\w.]*\s+import\b)", text, re.MULTILINE)}
    assert {"json", "argparse"} <= imported
    assert imported <= set(sys.stdlib_module_names), f"non-stdlib imports: {imported - set(sys.stdlib_module_names)}"
    proc = subprocess.run([str(script), "--help"], check=False, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT)
    assert "usage:" in proc.stdout
    # Nagios plugins answer --help with UNKNOWN (3) like the standard plugins; the push script exits 0.
    assert proc.returncode == (3 if script == CHECK else 0), proc.stderr


# ------------------------------------------------------------------------------------------------ (a) check_status_bridge


def test_check_ok_with_fresh_data(tmp_path: Path) -> None:
    """A running bridge with fresh status.dat data: OK, the data age in output and perfdata with the thresholds."""
    with statusdat_bridge(tmp_path, age=0, stale_after=600) as b:
        code, line = check("--url", b.base, "-w", "60", "-c", "300")
        assert code == 0, line
        assert line.startswith("STATUS-BRIDGE OK - data ")
        age = perf_age(line)
        assert age != "U" and float(age[:-1]) < 60
        assert line.endswith(";60;300;0;")
        # The full /healthz URL (trailing slash and all) works as well as the base URL.
        assert check("--url", b.base + "/healthz/")[0] == 0


def test_check_thresholds_warning_and_critical(tmp_path: Path) -> None:
    """Data 100 s old but not stale (stale_after 600): above -w is WARNING, above -c is CRITICAL."""
    with statusdat_bridge(tmp_path, age=100, stale_after=600) as b:
        code, line = check("-u", b.base, "-w", "50", "-c", "200")
        assert code == 1, line
        assert line.startswith("STATUS-BRIDGE WARNING - data 10") and "(> 50s)" in line
        assert 100 <= float(perf_age(line)[:-1]) < 150
        code, line = check("-u", b.base, "-w", "20", "-c", "90.5")
        assert code == 2, line
        assert line.startswith("STATUS-BRIDGE CRITICAL - data 10") and "(> 90.5s)" in line
        assert line.endswith(";20;90.5;0;")
        # Without thresholds only staleness counts.
        assert check("-u", b.base)[0] == 0


def test_check_stale_is_critical(tmp_path: Path) -> None:
    """Data older than the bridge's stale_after: CRITICAL naming the reason, even without -w/-c."""
    with statusdat_bridge(tmp_path, age=120, stale_after=30) as b:
        code, line = check("-u", b.base)
        assert code == 2, line
        assert line.startswith("STATUS-BRIDGE CRITICAL - data is stale (")
        assert float(perf_age(line)[:-1]) >= 120
        # status.dat deleted (Nagios stopped cleanly): CRITICAL with the bridge's reason.
        (tmp_path / "status.dat").unlink()
        eventually("status.dat gone", lambda: ("missing" in ((h := b.get_json("/healthz"))["reason"] or ""), h))
        code, line = check("-u", b.base, "-w", "60", "-c", "120")
        assert code == 2 and "stale (status.dat missing" in line, line


def test_check_bridge_stopped_is_critical(tmp_path: Path) -> None:
    """A bridge that was running and stopped: CRITICAL 'cannot reach', at once."""
    with statusdat_bridge(tmp_path, age=0, stale_after=600) as b:
        base = b.base
        assert check("-u", base)[0] == 0
    # At once: refused, not timed out. A wait for this --timeout would overrun SCRIPT_TIMEOUT and fail the run.
    proc, _ = run_script(CHECK, "-u", base, "-t", "600")
    assert proc.returncode == 2, proc.stdout
    assert proc.stdout.startswith("STATUS-BRIDGE CRITICAL - cannot reach http://127.0.0.1:")
    assert "| age=U;;;0;" in proc.stdout


def test_check_hung_bridge_times_out_critical() -> None:
    """A bridge that accepts connections but never answers: CRITICAL after --timeout, not Nagios' own timeout."""
    with black_hole() as hole:
        proc, took = run_script(CHECK, "-u", hole.url, "-t", "1")
    assert proc.returncode == 2, proc.stdout
    assert "no answer from" in proc.stdout and "within 1s" in proc.stdout
    assert 0.9 <= took < OBEYED  # it really waited its --timeout, and then gave up


@pytest.mark.parametrize(
    ("status", "body", "code", "words"),
    [
        (500, b'{"error": {"status": 500}}', 2, "HTTP 500"),
        (503, b"busy", 2, "HTTP 503"),
        (404, b"", 3, "HTTP 404"),
        (200, b"<html>a proxy's login page</html>", 3, "not JSON"),
        (200, b'{"status": "ok"}', 3, "no boolean 'stale'"),
        (200, b'{"stale": false, "data_age_seconds": "12"}', 3, "not a number"),
        (200, b'{"stale": false, "data_age_seconds": null}', 0, "no data age"),
    ],
)
def test_check_maps_odd_answers(status: int, body: bytes, code: int, words: str) -> None:
    """5xx is CRITICAL (the bridge is broken); answers that are not status-bridge's /healthz are UNKNOWN."""
    with Stub(status, body) as stub:
        got, line = check("-u", stub.url, "-w", "5", "-c", "10")
    assert got == code, line
    assert words in line
    assert stub.requests[0][:2] == ("GET", "/healthz")


@pytest.mark.parametrize(
    "args",
    [
        ["-w", "abc"],
        ["-w", "-5"],
        ["-c", "0"],
        ["-w", "300", "-c", "60"],
        ["--url", "ftp://127.0.0.1/"],
        ["--url", "127.0.0.1:8080"],
        ["-t", "nan"],
        ["--no-such-option"],
        ["positional"],
    ],
)
def test_check_bad_arguments_are_unknown(args: list[str]) -> None:
    """Bad arguments: UNKNOWN (3) with one line naming the problem, never argparse's exit 2."""
    code, line = check(*args)
    assert code == 3, line
    assert line.startswith("STATUS-BRIDGE UNKNOWN - ") and "see --help" in line


# ------------------------------------------------------------------------------------------------ push script: wire format


def test_push_sends_the_contract(tmp_path: Path, token_file: Path) -> None:
    """What goes over the wire: POST /api/v1/check-results, bearer token, one result with unescaped long output."""
    with Stub() as stub:
        proc, _ = push(
            stub.url + "/status/",  # a bridge behind a path prefix
            token_file,
            *("--host", "web-1", "--service", "HTTP", "--state", "2", "--state-type", "HARD"),
            *("--output", "CRITICAL - refused", "--long-output", r"line 2\nline 3 C:\tmp", "--timestamp", "1700000000"),
        )
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        proc, _ = push(stub.url, token_file, "--host", "db-1", "--state", "1", "--state-type", "1", "--output", "DOWN", "--timestamp", "0")
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    (method, path, headers, body), (_, path2, _, body2) = stub.requests
    assert (method, path, path2) == ("POST", "/status/api/v1/check-results", "/api/v1/check-results")
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {
        "results": [
            {"host": "web-1", "service": "HTTP", "state": 2, "output": "CRITICAL - refused\nline 2\nline 3 C:\\tmp", "timestamp": 1700000000}
        ]
    }
    host_result = json.loads(body2)["results"][0]
    assert "service" not in host_result  # service omitted = host result
    assert host_result["state"] == 1 and abs(host_result["timestamp"] - time.time()) < 60  # 0 = never: now


def test_push_soft_states_only_when_configured(tmp_path: Path, token_file: Path) -> None:
    """SOFT results are not pushed by default (the contract has no state type); --soft-states or the config sends them."""
    soft = ("--host", "web-1", "--service", "HTTP", "--state", "2", "--state-type", "SOFT", "--output", "CRITICAL")
    conf = tmp_path / "push.conf"
    with Stub() as stub:
        assert push(stub.url, token_file, *soft)[0].returncode == 0
        assert stub.requests == []
        assert push(stub.url, token_file, *soft, "--soft-states")[0].returncode == 0
        conf.write_text(f"[push]\nurl = {stub.url}\ntoken_file = {token_file}\nsoft_states = yes\nlog = stderr\n")
        proc, _ = run_script(PUSH, "--config", str(conf), *soft)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert len(stub.requests) == 2


@pytest.mark.parametrize(
    "args",
    [
        ["--host", "web-1", "--service", "HTTP", "--state", "4"],
        ["--host", "web-1", "--state", "3"],  # hosts have 0-2
        ["--host", "$HOSTNAME$", "--state", "0"],
        ["--host", "web-1", "--service", "", "--state", "0"],
        ["--host", "web-1", "--state", "0", "--state-type", "MAYBE"],
        ["--host", "web-1", "--state", "0", "--timestamp", "yesterday"],
        ["--state", "0"],
        ["--host", "web-1", "--state", "0", "--timeout", "0"],
    ],
)
def test_push_bad_arguments_log_and_exit_0(token_file: Path, args: list[str]) -> None:
    """Nagios must never see a failing obsessive command: bad macros are logged and the exit code is 0 (1 with --strict)."""
    with Stub() as stub:
        proc, _ = push(stub.url, token_file, *args)
        assert proc.returncode == 0
        assert proc.stderr.startswith("status-bridge-push: error: "), proc.stderr
        assert push(stub.url, token_file, *args, "--strict")[0].returncode == 1
    assert stub.requests == []


def test_push_drops_batches_the_bridge_refuses(tmp_path: Path, token_file: Path) -> None:
    """A 400 (the bridge will never take this body) is logged and dropped, not spooled forever."""
    spool = tmp_path / "push.spool"
    with Stub(400, b'{"error": {"status": 400, "message": "results[0].state: bad"}}') as stub:
        proc, _ = push(stub.url, token_file, "--host", "web-1", "--state", "0", spool=spool)
    assert proc.returncode == 0
    assert "HTTP 400" in proc.stderr and "dropped" in proc.stderr
    assert spooled(spool) == []


def test_push_hung_bridge_backs_off(tmp_path: Path, token_file: Path) -> None:
    """A bridge that never answers costs one --timeout; the next pushes only spool (no second stall), bounded spool."""
    spool = tmp_path / "push.spool"
    result = ("--host", "web-1", "--service", "HTTP", "--state", "2", "--output", "CRITICAL")
    with black_hole() as hole:
        first, took_first = push(hole.url, token_file, *result, spool=spool, timeout=1)
        assert hole.connections() == 1
        second, _ = push(hole.url, token_file, *result, "--spool-max", "2", spool=spool, timeout=1)
        third, _ = push(hole.url, token_file, *result, "--spool-max", "2", spool=spool, timeout=1)
        assert hole.connections() == 0  # no network attempt while backing off: no second stall
    assert first.returncode == second.returncode == third.returncode == 0
    assert "no answer" in first.stderr and "spooled" in first.stderr and "next attempt in 5s" in first.stderr
    assert 0.9 <= took_first < OBEYED  # it really waited its --timeout, and then gave up
    assert "no answer" not in second.stderr + third.stderr
    assert "dropped the 1 oldest" in third.stderr
    assert len(spooled(spool)) == 2


# ------------------------------------------------------------------------------------------------ (b) push script against a real bridge


def passive_bridge(directory: Path, token_file: Path) -> Bridge:
    """A bridge with no status.dat source: only pushed results, tokens from --push-token-file."""
    return Bridge(directory, args=("--push-token-file", str(token_file)))


def test_push_reaches_the_feed(tmp_path: Path, token_file: Path) -> None:
    """Pushed service and host results show up in /api/services.json; the script exits 0, answered (no timeout)."""
    with passive_bridge(tmp_path, token_file) as b:
        proc, _ = push(
            b.base, token_file, "--host", "web-1", "--service", "HTTP", "--state", "2",
            "--output", "CRITICAL - refused", "--timestamp", str(int(time.time())),
        )
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr  # a timeout would have been logged
        eventually("web-1/HTTP CRITICAL -> website down", lambda: ((c := b.component("website"))["status_code"] == 2, c))
        proc, _ = push(b.base, token_file, "--host", "db-1", "--service", "PostgreSQL", "--state", "1", "--output", "WARNING - 95%")
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        eventually("db-1/PostgreSQL WARNING -> partial", lambda: ((c := b.component("database"))["status_code"] == 1, c))
        # A host result (no --service): db-1 DOWN takes its services down.
        proc, _ = push(b.base, token_file, "--host", "db-1", "--state", "1", "--output", "PING CRITICAL")
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        eventually("db-1 DOWN -> database down", lambda: ((c := b.component("database"))["status_code"] == 2, c))
        proc, _ = push(b.base, token_file, "--host", "web-1", "--service", "HTTP", "--state", "0", "--output", "HTTP OK")
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        eventually("web-1/HTTP OK -> website up", lambda: ((c := b.component("website"))["status_code"] == 0, c))


def test_push_wrong_token_is_logged_exit_0(tmp_path: Path, token_file: Path) -> None:
    """A token the bridge does not know: logged (HTTP 401/403), exit 0, nothing changes on the page."""
    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-the-token\n")
    with passive_bridge(tmp_path, token_file) as b:
        before = b.component("website")
        proc, _ = push(b.base, wrong, "--host", "web-1", "--service", "HTTP", "--state", "2", "--output", "CRITICAL")
        assert proc.returncode == 0
        assert re.search(r"rejected the push token \(HTTP 40[13]\)", proc.stderr), proc.stderr
        assert b.component("website") == before
        assert push(b.base, wrong, "--host", "web-1", "--state", "0", "--strict")[0].returncode == 1


def test_push_bridge_down_spools_then_delivers(tmp_path: Path, token_file: Path) -> None:
    """Bridge down: exit 0 at once, result spooled; the next push (bridge back) delivers the spool with it."""
    spool = tmp_path / "push.spool"
    b = passive_bridge(tmp_path, token_file)  # port chosen, not started
    stamp = str(int(time.time()))
    # Refused at once: a wait for this --timeout (the most it allows) would overrun SCRIPT_TIMEOUT and fail the run.
    proc, _ = push(
        b.base, token_file, "--host", "web-1", "--service", "HTTP", "--state", "2",
        "--output", "CRITICAL - refused", "--timestamp", stamp, "--backoff", "0", spool=spool, timeout=60,
    )
    assert proc.returncode == 0
    assert "cannot reach" in proc.stderr and "spooled" in proc.stderr, proc.stderr
    assert [(r["host"], r.get("service"), r["state"]) for r in spooled(spool)] == [("web-1", "HTTP", 2)]
    b.start()
    try:
        proc, _ = push(
            b.base, token_file, "--host", "db-1", "--service", "PostgreSQL", "--state", "0",
            "--output", "OK", "--backoff", "0", spool=spool,
        )
        assert proc.returncode == 0
        assert proc.stderr == "status-bridge-push: info: bridge reachable again: delivered 2 result(s)\n"
        assert spooled(spool) == []
        eventually("spooled CRITICAL delivered", lambda: ((c := b.component("website"))["status_code"] == 2, c))
        eventually("new OK delivered", lambda: ((c := b.component("database"))["status"] == "up", c))
    finally:
        b.stop()


# ------------------------------------------------------------------------------------------------ (c) a real Nagios pushing through the contrib definitions

NAGIOS_SERVICES = {"web-1": ["HTTP"], "db-1": ["PostgreSQL"]}

# What Debian's default config provides and status-bridge.cfg's sample service uses (local-service, localhost),
# made silent and with one check attempt like the rest of the test objects; plus web-1/HTTPS with two attempts,
# so its first problem is SOFT.
DEBIAN_LIKE_OBJECTS = """
define service {
  name local-service
  check_period always
  notification_period always
  contacts nobody
  notifications_enabled 0
  max_check_attempts 1
  check_interval 5
  retry_interval 1
  register 0
}
define host {
  host_name localhost
  address 127.0.0.1
  check_command dummy
  check_period always
  notification_period always
  contacts nobody
  notifications_enabled 0
  active_checks_enabled 0
  max_check_attempts 1
}
define service {
  host_name web-1
  service_description HTTPS
  check_command dummy
  check_period always
  notification_period always
  contacts nobody
  notifications_enabled 0
  active_checks_enabled 0
  passive_checks_enabled 1
  flap_detection_enabled 0
  max_check_attempts 2
  check_interval 5
  retry_interval 1
}
"""


def contrib_objects(push_conf: Path, bridge_url: str) -> str:
    """contrib/nagios/status-bridge.cfg as shipped, with only the site paths and URL replaced."""
    text = OBJECTS.read_text()
    replacements = {
        "/usr/local/lib/nagios/plugins/": f"{CONTRIB}/",
        "/etc/status-bridge/push.conf": str(push_conf),
        "http://127.0.0.1:8080": bridge_url,
    }
    for old, new in replacements.items():
        assert old in text, f"{OBJECTS} no longer mentions {old}"
        text = text.replace(old, new)
    return text


@pytest.mark.real
def test_real_nagios_pushes_every_result(tmp_path: Path, token_file: Path) -> None:
    """A real Nagios with the contrib definitions as ocsp/ochp_command feeds a passive-only bridge, each change in <= 15 s."""
    b = passive_bridge(tmp_path, token_file)
    nagios = Nagios(
        NAGIOS_SERVICES,
        settings={
            # The nagios.cfg lines README.md asks for.
            "obsess_over_services": 1,
            "ocsp_command": "status-bridge-push-service",
            "obsess_over_hosts": 1,
            "ochp_command": "status-bridge-push-host",
            "ocsp_timeout": 5,
            "ochp_timeout": 5,
            "execute_service_checks": 1,  # for the sample check_status_bridge service
        },
    )
    push_log = nagios.root / "push.log"

    def diagnostics() -> str:
        return f"--- push.log ---\n{tail(push_log)}\n{b.diagnostics()}\n{nagios.diagnostics()}"

    def component_is(component_id: str, status: str) -> Callable[[], tuple[bool, object]]:
        return lambda: ((c := b.component(component_id))["status"] == status, c)

    try:
        # Files the nagios user reads live in its directory (pytest's tmp_path is closed to other users).
        push_conf = nagios.write_file(
            "push.conf",
            f"[push]\nurl = {b.base}\ntoken_file = {nagios.root / 'push.token'}\ntimeout = 2\n"
            f"spool = {nagios.root / 'push.spool'}\nbackoff = 0\nlog = none\nlog_file = {push_log}\n",
        )
        nagios.write_file("push.token", token_file.read_text())
        nagios.extend(objects=DEBIAN_LIKE_OBJECTS + contrib_objects(push_conf, b.base))
        b.start()
        nagios.start()
        timings: dict[str, float] = {}
        try:
            nagios.submit("web-1", "HTTP", 2, "CRITICAL - connection refused")
            timings["service CRITICAL"] = eventually("web-1/HTTP CRITICAL -> website down", component_is("website", "down"))
            nagios.submit("db-1", "PostgreSQL", 1, "WARNING - 95 of 100 connections used\nsecond line")
            timings["service WARNING"] = eventually("db-1/PostgreSQL WARNING -> partial", component_is("database", "partial"))
            nagios.submit("web-1", "HTTPS", 0, "HTTP OK")
            timings["service OK"] = eventually("web-1/HTTPS OK -> secure up", component_is("secure", "up"))

            # A SOFT problem (attempt 1 of 2) is not pushed. Nagios runs the ocsp_command while handling the
            # result, before status.dat shows it; a later push that shows up proves the bridge had its turn.
            nagios.submit("web-1", "HTTPS", 2, "CRITICAL - attempt 1")

            def soft_in_statusdat() -> tuple[bool, object]:
                block = nagios.service_status("web-1", "HTTPS") or {}
                return (block.get("current_state"), block.get("state_type")) == ("2", "0"), block

            eventually("web-1/HTTPS SOFT CRITICAL in status.dat", soft_in_statusdat)
            nagios.submit("web-1", "HTTP", 0, "HTTP OK")
            eventually("web-1/HTTP OK -> website up", component_is("website", "up"))
            assert b.component("secure")["status"] == "up", "a SOFT state reached the bridge"
            nagios.submit("web-1", "HTTPS", 2, "CRITICAL - attempt 2")
            timings["HARD after SOFT"] = eventually("web-1/HTTPS HARD CRITICAL -> secure down", component_is("secure", "down"))

            nagios.submit_host("db-1", 1, "PING CRITICAL - 100% loss")
            timings["host DOWN"] = eventually("db-1 DOWN (ochp_command) -> database down", component_is("database", "down"))

            # The sample service: Nagios runs check_status_bridge against the bridge it feeds.
            nagios.force_service_check("localhost", "status-bridge")

            def plugin_ran() -> tuple[bool, object]:
                block = nagios.service_status("localhost", "status-bridge") or {}
                return block.get("has_been_checked") == "1", block

            eventually("check_status_bridge ran", plugin_ran)
            block = nagios.service_status("localhost", "status-bridge") or {}
            assert block.get("current_state") == "0", block
            assert block.get("plugin_output", "").startswith("STATUS-BRIDGE OK - data "), block
            assert block.get("performance_data", "").startswith("age="), block
            assert not push_log.exists(), "the push script logged problems"
            assert not (nagios.root / "push.spool").read_text(), "results left in the spool"
        except AssertionError as exc:
            pytest.fail(f"{exc}\n{diagnostics()}", pytrace=False)
        print("push latency:", {k: f"{v:.1f} s" for k, v in timings.items()})
    finally:
        b.stop()
        nagios.cleanup()
