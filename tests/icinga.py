"""Start a real, throw-away Icinga 2 for tests: private paths, its own CA, an API on 127.0.0.1, passive checks."""

from __future__ import annotations

import grp
import json
import os
import pwd
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bridge.icinga_parse import EVENT_TYPES
from tests.conftest import free_port, require_binary
from tests.procs import (
    await_ready,
    daemon_kwargs,
    launch,
    processes,
    run_as,
    signal_group,
    stop,
    tail,
    wait_until,
)

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
NODE = "localhost"  # the API certificate's CN and DNS name: `icinga2 pki` certificates carry no IP address
API_USER = "status-bridge"
# What the bridge's ApiUser needs, and no more (the tests add actions/* to feed results).
BRIDGE_PERMISSIONS = (
    "objects/query/Host", "objects/query/Service", "objects/query/Downtime",
    *(f"events/{t}" for t in EVENT_TYPES),
)  # fmt: skip


def _quote(text: str) -> str:
    """An Icinga DSL string literal."""
    return json.dumps(text)


def _object_config(services: Mapping[str, Sequence[str]], port: int, password: str) -> str:
    """Endpoint, zone, API listener and user, and passive-only hosts and services using the ITL's dummy command."""
    permissions = ", ".join(_quote(p) for p in (*BRIDGE_PERMISSIONS, "actions/*"))
    parts = [
        f"""include <itl>
const NodeName = {_quote(NODE)}
const ZoneName = "master"
object Endpoint NodeName {{}}
object Zone ZoneName {{ endpoints = [ NodeName ] }}
object ApiListener "api" {{
  bind_host = "127.0.0.1"
  bind_port = {port}
  accept_config = false
  accept_commands = false
}}
object ApiUser {_quote(API_USER)} {{
  password = {_quote(password)}
  permissions = [ {permissions} ]
}}
object IcingaApplication "app" {{
  enable_notifications = false
  enable_event_handlers = false
  enable_flapping = false
  enable_perfdata = false
}}
"""
    ]
    # One attempt: a passive problem is HARD at once, as the bridge counts HARD states.
    common = "  check_command = \"dummy\"\n  enable_active_checks = false\n  max_check_attempts = 1\n"
    for host, host_services in services.items():
        parts.append(f"object Host {_quote(host)} {{\n{common}}}\n")
        for service in host_services:
            parts.append(f"object Service {_quote(service)} {{\n  host_name = {_quote(host)}\n{common}}}\n")
    return "".join(parts)


class Icinga:
    """One throw-away Icinga 2 process living in its own temp directory."""

    def __init__(self, services: Mapping[str, Sequence[str]], binary: str | None = None) -> None:
        self.binary = binary or require_binary("icinga2")
        self.user, self.group = run_as("Icinga 2", "icinga2-common")
        # Not pytest's tmp_path: that lives under a 0700 root-owned directory the nagios user cannot enter.
        self.root = Path(tempfile.mkdtemp(prefix="status-bridge-icinga-"))
        self.services = {host: list(svcs) for host, svcs in services.items()}
        self.port = free_port()
        self.password = secrets.token_urlsafe(18)
        self.url = f"https://{NODE}:{self.port}"
        self.cfg = self.root / "etc" / "icinga2.conf"
        self.ca_file = self.root / "data" / "certs" / "ca.crt"
        self.password_file = self.root / "api-password"
        self.output_file = self.root / "icinga2.out"
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            self._prepare()
        except BaseException:
            self.cleanup()
            raise

    def defines(self) -> list[str]:
        """-D constants keeping every path Icinga writes inside our directory."""
        dirs = {"DataDir": "data", "LogDir": "log", "CacheDir": "cache", "SpoolDir": "spool", "InitRunDir": "run",
                "ConfigDir": "etc", "ZonesDir": "etc/zones.d"}  # fmt: skip
        out = [f"-D{name}={self.root / sub}" for name, sub in dirs.items()]
        return [*out, f"-DPidPath={self.root / 'run' / 'icinga2.pid'}", f"-DRunAsUser={self.user}",
                f"-DRunAsGroup={self.group}"]  # fmt: skip

    def _prepare(self) -> None:
        """Directories, configuration, password file and a CA plus the node certificate made by `icinga2 pki`."""
        for sub in ("etc/zones.d", "data/certs", "log", "cache", "spool", "run"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.cfg.write_text(_object_config(self.services, self.port, self.password))
        self.password_file.write_text(self.password + "\n")  # the trailing newline an editor adds
        if os.geteuid() == 0:
            uid, gid = pwd.getpwnam(self.user).pw_uid, grp.getgrnam(self.group).gr_gid
            for path in (self.root, *self.root.rglob("*")):
                os.chown(path, uid, gid)
        self.root.chmod(0o755)
        certs = self.root / "data" / "certs"
        self._cli("pki", "new-ca")
        key, csr, crt = (certs / f"{NODE}.{ext}" for ext in ("key", "csr", "crt"))
        self._cli("pki", "new-cert", "--cn", NODE, "--key", str(key), "--csr", str(csr))
        self._cli("pki", "sign-csr", "--csr", str(csr), "--cert", str(crt))
        shutil.copyfile(self.root / "data" / "ca" / "ca.crt", self.ca_file)
        self._cli("daemon", "-C", "-c", str(self.cfg))

    def _popen_kwargs(self) -> dict[str, Any]:
        """Run as the Icinga user, in a session of its own: its process group is then ours alone to signal."""
        return daemon_kwargs(self.root, self.user, self.group)

    def _cli(self, *args: str) -> None:
        """Run one `icinga2` command with our defines; fail the test with its output when it fails."""
        cmd = [self.binary, *args, *self.defines()]
        result = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60, **self._popen_kwargs())
        if result.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} exited {result.returncode}:\n" + result.stdout.decode("utf-8", "replace"),
                        pytrace=False)  # fmt: skip

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start Icinga in the foreground and wait until its API lists every configured host."""
        cmd = [self.binary, "daemon", "-c", str(self.cfg), *self.defines()]
        self.proc = launch(cmd, self.output_file, **self._popen_kwargs())

        def ready() -> bool:
            try:
                hosts = self.api("GET", "/v1/objects/hosts?attrs=name")["results"]
            except (OSError, ValueError, KeyError):
                return False
            return set(self.services) <= {h["name"] for h in hosts}

        await_ready(self.proc, ready, timeout, "Icinga 2 (its API listing all hosts)", self.diagnostics)

    def api(self, method: str, path: str, body: object | None = None, timeout: float = 5.0) -> Any:
        """One REST API call verified against our CA; the decoded JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        req.add_unredirected_header("Authorization", _basic(API_USER, self.password))
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise OSError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:500]!r}") from None

    def submit(self, host: str, service: str | None, state: int, output: str) -> None:
        """A passive check result through the API (service 0-3; host 0 UP, 1 DOWN)."""
        if service is None:
            target = {"type": "Host", "filter": f"host.name=={_quote(host)}"}
        else:
            target = {"type": "Service", "filter": f"host.name=={_quote(host)} && service.name=={_quote(service)}"}
        answer = self.api("POST", "/v1/actions/process-check-result",
                          {**target, "exit_status": state, "plugin_output": output})  # fmt: skip
        assert answer["results"] and answer["results"][0]["code"] == 200, answer

    def schedule_downtime(self, host: str, service: str, seconds: float = 3600) -> None:
        """A fixed downtime starting now."""
        now = time.time()
        body = {"type": "Service", "filter": f"host.name=={_quote(host)} && service.name=={_quote(service)}",
                "author": "tests", "comment": "maintenance", "start_time": now, "end_time": now + seconds,
                "fixed": True}  # fmt: skip
        answer = self.api("POST", "/v1/actions/schedule-downtime", body)
        assert answer["results"] and answer["results"][0]["code"] == 200, answer

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM Icinga's process group (umbrella, worker, spawn helper), then SIGKILL what lingers."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        # The umbrella process forwards SIGTERM to its worker and waits for it: a clean, ordered stop.
        stop(proc, timeout)
        # The worker can outlive the umbrella process for a moment; wait for the group to empty.
        if not wait_until(lambda: not _group_alive(proc.pid), timeout):
            signal_group(proc.pid, signal.SIGKILL)
        return proc.returncode

    def cleanup(self) -> None:
        """Stop Icinga if running and remove the temp directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def diagnostics(self) -> str:
        """Icinga's console output, for failure messages."""
        return f"--- {self.output_file} ---\n{tail(self.output_file)}"


def _basic(user: str, password: str) -> str:
    """An HTTP Basic Authorization header value."""
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _group_alive(pgid: int) -> bool:
    """True while a live (not zombie) process of the group exists; zombies wait for a reaper, not for us."""
    if not Path("/proc").is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    return any(group == pgid and state != "Z" for _, state, _, group in processes())


@contextmanager
def running_icinga(services: Mapping[str, Sequence[str]]) -> Iterator[Icinga]:
    """A started Icinga 2 with services {host: [service, ...]}, stopped and removed afterwards."""
    icinga = Icinga(services)
    try:
        icinga.start()
        yield icinga
    finally:
        icinga.cleanup()
