"""Child processes in tests: bounded waits, start-up checks, a clean stop, and daemons run as their service user."""

from __future__ import annotations

import grp
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import require_real

T = TypeVar("T")


def wait_until(probe: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T | None:
    """Call probe until it returns a truthy value or timeout passes; return that value or None."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def tail(path: Path, limit: int = 4000) -> str:
    """Last limit characters of a text file, or a note that it does not exist."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"<{path}: {exc.strerror}>"
    return data[-limit:].decode("utf-8", "replace")


def await_ready(
    proc: subprocess.Popen[Any], ready: Callable[[], bool], timeout: float, what: str, diagnostics: Callable[[], str]
) -> None:
    """Wait until ready() holds; fail the test with diagnostics() when proc exits first or timeout passes."""
    ok = wait_until(lambda: proc.poll() is not None or ready(), timeout)
    if proc.poll() is not None:
        pytest.fail(f"{what} exited with {proc.returncode} during start\n{diagnostics()}", pytrace=False)
    if not ok:
        pytest.fail(f"{what} was not ready within {timeout} s\n{diagnostics()}", pytrace=False)


def stop(proc: subprocess.Popen[Any], timeout: float = 10.0) -> str:
    """SIGTERM and a bounded wait, then SIGKILL (its whole group when it leads one); what it wrote to a stderr pipe."""
    if proc.poll() is None:
        proc.terminate()
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        if _leads_group(proc.pid):
            signal_group(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        _, err = proc.communicate(timeout=5)
    return err or ""


def _leads_group(pid: int) -> bool:
    """True when pid leads its process group (a daemon started with start_new_session)."""
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Signal a process group we created with start_new_session, if it still exists."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def processes() -> Iterator[tuple[int, str, int, int]]:
    """(pid, state, parent pid, process group) of every process in /proc; nothing where there is no /proc."""
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # exited meanwhile
        if len(fields) > 2:
            yield int(entry.parent.name), fields[0], int(fields[1]), int(fields[2])


def run_as(daemon: str, package: str) -> tuple[str, str]:
    """User and group to run a monitoring daemon as: 'nagios' (as Debian does) when we are root, else ourselves."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name
    try:
        user = pwd.getpwnam("nagios")
    except KeyError:
        # The daemon would run as root, which production never does; refuse rather than test that.
        require_real(f"user 'nagios' (to run {daemon} as, since we are root; package {package})", False)
        raise AssertionError("unreachable") from None
    return user.pw_name, grp.getgrgid(user.pw_gid).gr_name


def daemon_kwargs(root: Path, user: str, group: str) -> dict[str, Any]:
    """Popen arguments for a daemon run as user:group from root, in a session of its own (so terminal signals aimed
    at pytest miss it and its process group is ours alone to signal)."""
    kwargs: dict[str, Any] = {"start_new_session": True, "cwd": root, "stdin": subprocess.DEVNULL}
    if os.geteuid() == 0:
        kwargs.update(user=user, group=group, extra_groups=[])
    return kwargs


def launch(cmd: list[str], output: Path, **kwargs: Any) -> subprocess.Popen[Any]:
    """Start cmd with stdout and stderr appended to output, which stays readable for failure messages."""
    with open(output, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **kwargs)
