"""The systemd unit (systemd-analyze verify), the sysusers snippet and the sd_notify protocol."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.sdnotify import Notifier, notify, watchdog_interval
from tests.conftest import REPO, require_real
from tests.test_reload import Daemon, site  # noqa: F401  (site is a fixture)

UNIT = REPO / "systemd" / "status-bridge.service"
SYSUSERS = REPO / "systemd" / "status-bridge.sysusers"


def unit_settings(text: str) -> dict[str, list[str]]:
    """'Section.Key' -> every value (keys may repeat), continuation lines joined."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key}", []).append(value)
    return out


def test_unit_has_notify_watchdog_reload_and_hardening() -> None:
    unit = unit_settings(UNIT.read_text())
    svc = {k.removeprefix("Service."): v for k, v in unit.items() if k.startswith("Service.")}
    assert svc["Type"] == ["notify"]
    assert svc["WatchdogSec"] == ["30"]
    assert svc["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert svc["ExecStart"][0].startswith("/opt/status-bridge/bin/status-bridge run --config /etc/status-bridge/")
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables",
                "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups"):  # fmt: skip
        assert svc[key] == ["yes"], key
    assert svc["ProtectSystem"] == ["strict"]
    assert svc["StateDirectory"] == ["status-bridge"]
    # AF_UNIX is what sd_notify needs; the rest is TCP.
    assert svc["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert "@system-service" in svc["SystemCallFilter"]
    # Debian's /var/lib/nagios4 is nagios:www-data 0750: its group is the one that opens it.
    assert svc["SupplementaryGroups"] == ["www-data"]
    assert svc["User"] == ["status-bridge"]
    # Soft and hard limit alike: nothing is left for the bridge to raise at start.
    assert svc["LimitNOFILE"] == ["65536"]


def _unit_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this venv's status-bridge (verify checks the binary exists)."""
    exe = Path(sys.executable).parent / "status-bridge"
    if not exe.exists():
        found = shutil.which("status-bridge")
        assert found, "status-bridge console script not installed"
        exe = Path(found)
    path = tmp_path / "status-bridge.service"
    path.write_text(UNIT.read_text().replace("/opt/status-bridge/bin/status-bridge", str(exe)))
    return path


def _analyze() -> str:
    """systemd-analyze, with require_real semantics (CI installs the systemd package)."""
    found = shutil.which("systemd-analyze")
    require_real("systemd-analyze (apt-get install systemd)", found is not None)
    assert found is not None
    return found


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = _analyze()
    unit = _unit_copy(tmp_path)
    proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    # verify exits 0 even for unknown keys or bad values: those are warnings naming the unit.
    ours = [line for line in (proc.stdout + proc.stderr).splitlines() if "status-bridge" in line]
    assert proc.returncode == 0 and not ours, proc.stdout + proc.stderr


def test_unit_security_exposure_is_low(tmp_path: Path) -> None:
    analyze = _analyze()
    unit = _unit_copy(tmp_path)
    proc = subprocess.run([analyze, "security", "--offline=yes", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    found = re.search(r"Overall exposure level for status-bridge.service: ([0-9.]+)", proc.stdout + proc.stderr)
    assert found, proc.stdout + proc.stderr
    assert float(found[1]) <= 2.0, proc.stdout  # systemd calls below 2 "OK"; an unhardened unit scores 9.6


def test_sysusers_snippet(tmp_path: Path) -> None:
    lines = [ln.split() for ln in SYSUSERS.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0][:3] == ["u", "status-bridge", "-"]
    sysusers = shutil.which("systemd-sysusers")
    require_real("systemd-sysusers (apt-get install systemd)", sysusers is not None)
    assert sysusers is not None
    (tmp_path / "etc").mkdir()
    proc = subprocess.run([sysusers, f"--root={tmp_path}", "--dry-run", str(SYSUSERS)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Creating user 'status-bridge'" in proc.stdout + proc.stderr


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing in for systemd's notify socket: (socket, its path)."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    yield sock, path
    sock.close()


def test_notify_to_a_path_and_an_abstract_socket(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    assert notify("READY=1\nSTATUS=hello", {"NOTIFY_SOCKET": path})
    assert sock.recv(4096) == b"READY=1\nSTATUS=hello"
    name = f"status-bridge-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as abstract:
        abstract.bind("\0" + name)
        abstract.settimeout(5)
        assert notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert abstract.recv(4096) == b"WATCHDOG=1"
    # Not under systemd, or its socket gone: quietly nothing.
    assert not notify("READY=1", {})
    assert not notify("READY=1", {"NOTIFY_SOCKET": path + ".gone"})
    assert not Notifier({}).send("READY=1")


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    # Inherited by a child process: the watchdog is not ours.
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None


async def test_watchdog_pings_from_the_loop(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    assert notifier.interval == 0.05
    task = asyncio.create_task(notifier.watchdog(lambda: "all fine"))
    await asyncio.sleep(0.22)
    task.cancel()
    sock.setblocking(False)
    got = []
    while True:
        try:
            got.append(sock.recv(4096))
        except BlockingIOError:
            break
    assert got.count(b"WATCHDOG=1") >= 3
    assert got.count(b"STATUS=all fine") == 1  # STATUS= only when it changed


def _receive(sock: socket.socket, want: str, timeout: float = 20) -> list[str]:
    """Datagrams up to and including the first one holding the line want (bounded)."""
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            msg = sock.recv(4096).decode()
        except TimeoutError:
            break
        got.append(msg)
        if want in msg.splitlines():
            return got
    raise AssertionError(f"no {want!r} in {timeout}s; got {got!r}")


def test_daemon_speaks_the_notify_protocol(
    site: tuple[Path, int], notify_socket: tuple[socket.socket, str]  # noqa: F811
) -> None:
    cfg, port = site
    sock, path = notify_socket
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}
    # Not waiting for the port to answer: READY=1 alone must mean it serves.
    daemon = Daemon(cfg, port, env=env, ready=None).start()
    try:
        before = _receive(sock, "READY=1")
        # READY=1 means serving the first snapshot: the port answers at once, with the status.dat's data.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/services.json", timeout=5) as resp:
            body = resp.read().decode()
        assert '"stale":false' in body and '"status_code":2' in body
        assert not any("READY=1" in m for m in before[:-1])
        assert "STATUS=serving 1 components on http://127.0.0.1" in before[-1]
        # Pings every 0.1 s from the event loop.
        pings = _receive(sock, "WATCHDOG=1", 5)
        pings += _receive(sock, "WATCHDOG=1", 5) + _receive(sock, "WATCHDOG=1", 5)
        # A reload is RELOADING=1 (with the monotonic time) ... READY=1.
        daemon.signal(signal.SIGHUP)
        reload = [m for m in _receive(sock, "READY=1", 10) if m != "WATCHDOG=1"]
        assert reload[0].startswith("RELOADING=1\nMONOTONIC_USEC="), reload
        daemon.signal(signal.SIGTERM)
        assert "STOPPING=1" in _receive(sock, "STOPPING=1", 10)[-1]
        assert daemon.proc.wait(10) == 0
    finally:
        daemon.stop()
    assert daemon.returncode == 0, daemon.log
