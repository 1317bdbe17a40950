"""Start a real, throw-away Nagios 4 for tests: passive-only objects, fast status.dat, a command FIFO."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_real
from tests.procs import (
    await_ready,
    daemon_kwargs,
    launch,
    processes,
    run_as,
    stop,
    tail,
)

DEFAULT_BINARY = "/usr/sbin/nagios4"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
# A command line must reach the FIFO in one write; writes up to PIPE_BUF are atomic.
MAX_COMMAND_BYTES = 4096


def find_nagios() -> str:
    """Path of the Nagios 4 binary, or skip/fail the calling test when it is not installed."""
    for candidate in (shutil.which("nagios4"), DEFAULT_BINARY):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    require_real("Nagios 4 (package nagios4-core: nagios4 on PATH or /usr/sbin/nagios4)", False)
    raise AssertionError("unreachable")


def parse_status(data: bytes) -> list[tuple[str, dict[str, str]]]:
    """Naive status.dat reader for tests: (block type, {key: value}) in file order."""
    blocks: list[tuple[str, dict[str, str]]] = []
    current: dict[str, str] | None = None
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if current is None:
            if line.endswith("{"):
                current = {}
                blocks.append((line[:-1].strip(), current))
        elif line == "}":
            current = None
        elif "=" in line:
            key, _, value = line.partition("=")  # values may contain '='
            current[key] = value
    return blocks


def _object_config(services: Mapping[str, Sequence[str]]) -> str:
    """Passive-only hosts and services with a dummy command: no plugins, no /etc/nagios4."""
    parts = [
        "define command {\n  command_name dummy\n  command_line /bin/true\n}\n",
        "define timeperiod {\n  timeperiod_name always\n  alias Always\n"
        + "".join(
            f"  {day} 00:00-24:00\n"
            for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        )
        + "}\n",
        # Nagios warns about objects without contacts; a silent one keeps `-v` output clean.
        "define contact {\n  contact_name nobody\n  host_notifications_enabled 0\n"
        "  service_notifications_enabled 0\n  host_notification_period always\n"
        "  service_notification_period always\n  host_notification_options n\n"
        "  service_notification_options n\n  host_notification_commands dummy\n"
        "  service_notification_commands dummy\n}\n",
    ]
    common = (
        "  check_command dummy\n  check_period always\n  notification_period always\n"
        "  contacts nobody\n  notifications_enabled 0\n  active_checks_enabled 0\n"
        "  passive_checks_enabled 1\n  check_freshness 0\n  flap_detection_enabled 0\n"
        # One attempt: a passive problem is HARD at once, as the bridge counts HARD states.
        "  max_check_attempts 1\n  check_interval 5\n  retry_interval 1\n"
    )
    for host, host_services in services.items():
        parts.append(f"define host {{\n  host_name {host}\n  address 127.0.0.1\n{common}}}\n")
        for service in host_services:
            parts.append(
                f"define service {{\n  host_name {host}\n  service_description {service}\n{common}}}\n"
            )
    return "".join(parts)


def _main_config(root: Path, user: str, group: str, extra: Mapping[str, object] | None = None) -> str:
    """nagios.cfg keeping every path inside root, with status.dat rewritten every second; extra adds or replaces keys."""
    settings = {
        "cfg_file": root / "objects.cfg",
        "log_file": root / "nagios.log",
        "status_file": root / "status.dat",
        "status_update_interval": 1,
        # Same directory as status.dat: Nagios writes the temp file and rename()s it, as in production.
        "temp_file": root / "nagios.tmp",
        "temp_path": root,
        "lock_file": root / "nagios.lock",
        "object_cache_file": root / "objects.cache",
        "precached_object_file": root / "objects.precache",
        "check_result_path": root / "checkresults",
        "query_socket": root / "nagios.qh",
        "command_file": root / "nagios.cmd",
        "check_external_commands": 1,
        "nagios_user": user,
        "nagios_group": group,
        "retain_state_information": 0,
        "state_retention_file": root / "retention.dat",
        "log_archive_path": root,
        "log_rotation_method": "n",
        "debug_file": root / "nagios.debug",
        "debug_level": 0,
        "use_syslog": 0,
        "log_passive_checks": 1,
        "log_external_commands": 1,
        "log_initial_states": 1,
        "accept_passive_service_checks": 1,
        "accept_passive_host_checks": 1,
        # Passive host results are HARD at once (Debian's default too), so DOWN counts immediately.
        "passive_host_checks_are_soft": 0,
        "translate_passive_host_checks": 0,
        "execute_service_checks": 0,
        "execute_host_checks": 0,
        "check_service_freshness": 0,
        "check_host_freshness": 0,
        "enable_notifications": 0,
        "enable_event_handlers": 0,
        "enable_flap_detection": 0,
        "process_performance_data": 0,
        "check_result_reaper_frequency": 1,
        "check_workers": 1,
        "event_broker_options": 0,
        "check_for_updates": 0,
        "bare_update_check": 0,
        "daemon_dumps_core": 0,
        "interval_length": 60,
        "illegal_object_name_chars": "`~!$%^&*|'\"<>?,()=",
        "illegal_macro_output_chars": "`~$&|'\"<>",
    }
    settings.update(extra or {})
    return "".join(f"{key}={value}\n" for key, value in settings.items())


class Nagios:
    """One throw-away Nagios process living in its own temp directory."""

    def __init__(
        self,
        services: Mapping[str, Sequence[str]],
        binary: str | None = None,
        root: Path | None = None,
        settings: Mapping[str, object] | None = None,
        objects: str = "",
    ) -> None:
        """services: passive-only {host: [service, ...]}; settings: nagios.cfg keys to add or replace
        (e.g. obsess_over_services=1, ocsp_command=...); objects: extra object definitions appended to objects.cfg.
        """
        self.binary = binary or find_nagios()
        self.user, self.group = run_as("Nagios", "nagios4-common")
        # Not pytest's tmp_path: that lives under a 0700 root-owned directory the nagios user cannot enter.
        self._owns_root = root is None
        self.root = root or Path(tempfile.mkdtemp(prefix="status-bridge-nagios-"))
        self.services = {host: list(svcs) for host, svcs in services.items()}
        self.settings = dict(settings or {})
        self.objects = objects
        self.cfg = self.root / "nagios.cfg"
        self.status_file = self.root / "status.dat"
        self.command_file = self.root / "nagios.cmd"
        self.log_file = self.root / "nagios.log"
        self.output_file = self.root / "nagios.out"
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            self._write_config()
        except BaseException:
            self.cleanup()
            raise

    def _write_config(self) -> None:
        """Write the configuration and hand the directory to the Nagios user."""
        (self.root / "checkresults").mkdir(exist_ok=True)
        (self.root / "objects.cfg").write_text(_object_config(self.services) + self.objects)
        self.cfg.write_text(_main_config(self.root, self.user, self.group, self.settings))
        if os.geteuid() == 0:
            uid, gid = pwd.getpwnam(self.user).pw_uid, grp.getgrnam(self.group).gr_gid
            for path in (self.root, self.root / "checkresults", self.cfg, self.root / "objects.cfg"):
                os.chown(path, uid, gid)
        # Readers (the bridge under test, maybe another user) must be able to list and read status.dat.
        self.root.chmod(0o755)

    def extend(self, settings: Mapping[str, object] | None = None, objects: str = "") -> None:
        """Before start(): add or replace nagios.cfg keys and append object definitions (paths may use self.root)."""
        assert self.proc is None, "extend() before start()"
        self.settings.update(settings or {})
        self.objects += objects
        self._write_config()

    def write_file(self, name: str, text: str, mode: int = 0o600) -> Path:
        """Write a file inside the Nagios directory, owned by the Nagios user (e.g. a token file a command reads)."""
        path = self.root / name
        path.write_text(text)
        path.chmod(mode)
        if os.geteuid() == 0:
            os.chown(path, pwd.getpwnam(self.user).pw_uid, grp.getgrnam(self.group).gr_gid)
        return path

    def _popen_kwargs(self) -> dict[str, Any]:
        """Run as the Nagios user, in a session of its own."""
        return daemon_kwargs(self.root, self.user, self.group)

    def verify(self) -> None:
        """Run `nagios4 -v` on the config and fail the test with its output when it is not valid."""
        result = subprocess.run(
            [self.binary, "-v", str(self.cfg)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=30,
            **self._popen_kwargs(),
        )
        if result.returncode != 0:
            pytest.fail(
                f"{self.binary} -v {self.cfg} exited {result.returncode}:\n"
                + result.stdout.decode("utf-8", "replace"),
                pytrace=False,
            )

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start Nagios in the foreground and wait until status.dat lists every configured object."""
        self.verify()
        self.proc = launch([self.binary, str(self.cfg)], self.output_file, **self._popen_kwargs())
        want_hosts = set(self.services)
        want_services = {(h, s) for h, svcs in self.services.items() for s in svcs}

        def ready() -> bool:
            hosts, services = set(), set()
            for kind, block in self.status():
                if kind == "hoststatus":
                    hosts.add(block.get("host_name", ""))
                elif kind == "servicestatus":
                    services.add((block.get("host_name", ""), block.get("service_description", "")))
            return want_hosts <= hosts and want_services <= services and self.command_file.exists()

        await_ready(self.proc, ready, timeout, "Nagios (status.dat listing all objects)", self.diagnostics)

    def status(self) -> list[tuple[str, dict[str, str]]]:
        """Current status.dat parsed naively; empty when it does not exist (yet, or any more)."""
        try:
            return parse_status(self.status_file.read_bytes())
        except FileNotFoundError:
            return []

    def service_status(self, host: str, service: str) -> dict[str, str] | None:
        """The servicestatus block for host/service from the current status.dat, if any."""
        for kind, block in self.status():
            if kind == "servicestatus" and block.get("host_name") == host and block.get(
                "service_description"
            ) == service:
                return block
        return None

    def host_status(self, host: str) -> dict[str, str] | None:
        """The hoststatus block for host from the current status.dat, if any."""
        for kind, block in self.status():
            if kind == "hoststatus" and block.get("host_name") == host:
                return block
        return None

    def command(self, line: str) -> None:
        """Send one external command, `[EPOCH] ` prefixed, through the command FIFO."""
        write_command(self.command_file, f"[{int(time.time())}] {line}")

    def submit(self, host: str, service: str, state: int, output: str) -> None:
        """Submit a passive service check result (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)."""
        self.command(f"PROCESS_SERVICE_CHECK_RESULT;{host};{service};{state};{_one_line(output)}")

    def submit_host(self, host: str, state: int, output: str) -> None:
        """Submit a passive host check result (0 UP, 1 DOWN, 2 UNREACHABLE)."""
        self.command(f"PROCESS_HOST_CHECK_RESULT;{host};{state};{_one_line(output)}")

    def force_service_check(self, host: str, service: str) -> None:
        """Run an active service check now (needs execute_service_checks=1 and an active check on the service)."""
        self.command(f"SCHEDULE_FORCED_SVC_CHECK;{host};{service};{int(time.time())}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM Nagios (a clean stop, which deletes status.dat), then SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        # Workers put themselves in process groups of their own: note them while they are our children.
        workers = [pid for pid, _, parent, _ in processes() if parent == proc.pid]
        stop(proc, timeout)
        for pid in workers:
            _kill_if_ours(pid, str(self.root))
        return proc.returncode

    def cleanup(self) -> None:
        """Stop Nagios if running and remove the temp directory if we made it."""
        try:
            self.stop()
        finally:
            if self._owns_root:
                shutil.rmtree(self.root, ignore_errors=True)

    def diagnostics(self) -> str:
        """Nagios' console output and log tail, for failure messages."""
        return (
            f"--- {self.output_file} ---\n{tail(self.output_file)}\n"
            f"--- {self.log_file} ---\n{tail(self.log_file)}"
        )

    def __enter__(self) -> Nagios:
        """Start on entering the with block."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Always stop and clean up."""
        self.cleanup()


def _one_line(output: str) -> str:
    """Plugin output as one command line: newlines sent as literal \\n, as Nagios expects."""
    return output.replace("\r", "").replace("\n", "\\n")


def _kill_if_ours(pid: int, marker: str) -> None:
    """SIGKILL pid if it is still a process whose command line mentions marker (our temp dir)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return  # already gone
    if marker.encode() in cmdline:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def write_command(path: Path, line: str) -> None:
    """Write one command line to a Nagios command FIFO without blocking; refuse anything but a FIFO."""
    data = (line.rstrip("\n") + "\n").encode()
    if b"\n" in data[:-1]:
        raise ValueError("a Nagios external command must be a single line")
    if len(data) > MAX_COMMAND_BYTES:
        raise ValueError(f"command is {len(data)} bytes; at most {MAX_COMMAND_BYTES} are written atomically")
    # O_NONBLOCK: opening a FIFO nobody reads fails with ENXIO instead of hanging the test.
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        # Checked on the open descriptor, so a file swapped in after a stat() cannot fool us.
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            raise ValueError(f"{path} is not a FIFO; refusing to write Nagios commands to it")
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
    finally:
        os.close(fd)


@contextmanager
def running_nagios(
    services: Mapping[str, Sequence[str]],
    settings: Mapping[str, object] | None = None,
    objects: str = "",
) -> Iterator[Nagios]:
    """A started Nagios with services {host: [service, ...]} (plus settings/objects, see Nagios), removed afterwards."""
    nagios = Nagios(services, settings=settings, objects=objects)
    try:
        nagios.start()
        yield nagios
    finally:
        nagios.cleanup()
