"""Helpers shared by the whole-path benchmarks: corpus files, a realistic config, servers, CPU pinning."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"

# The 20 service kinds of the Nagios corpus ("CPU Load 001", "Disk /var 017", ...).
SERVICE_KINDS = (
    "CPU Load", "Disk /", "Disk /home", "Disk /var", "DNS", "HTTP", "HTTPS cert", "Memory", "MySQL conn",
    "Nginx 5xx", "NTP offset", "Ping", "Postgres locks", "Procs total", "Redis mem", "SMTP queue", "SSH",
    "Swap", "Users", "Zombie procs",
)


def corpus_file(size: str, into: Path) -> Path:
    """status-{size}.dat decompressed into directory `into` (reused when already there)."""
    plain = into / f"status-{size}.dat"
    if not plain.exists():
        tmp = plain.with_suffix(".part")
        with gzip.open(CORPUS / f"status-{size}.dat.gz", "rb") as src, tmp.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        tmp.rename(plain)
    return plain


_CREATED = re.compile(rb"\n\tcreated=[0-9]+\n")


def fresh(data: bytes, created: int | None = None) -> bytes:
    """The status.dat bytes with info.created set to now (as Nagios writes it), so the data is not stale."""
    stamp = int(time.time() if created is None else created)
    return _CREATED.sub(b"\n\tcreated=%d\n" % stamp, data, count=1)


def _has_setting(name: str) -> bool:
    """Whether this checkout's Config knows a setting (the bench runs across versions)."""
    from bridge.config import Config

    return name in Config.__dataclass_fields__


def config_toml(statusdat: Path, components: int = 100, probe: tuple[str, str] | None = None) -> str:
    """A realistic page: 10 groups of 10 components, together mapping every host and service of the corpus.

    Component k takes the hosts whose number ends in k % 10 and two of the 20 service kinds; the
    first component of each host digit also takes the host checks. Globs, as a real config has.
    With probe=(host, service), a last group holds one component mapping just that check.
    Rate limiting is off: the benches are one client IP sending thousands of requests.
    """
    sys.path.insert(0, str(ROOT))
    lines = [
        "[page]", 'name = "Bench University IT status"', "",
        "[nagios]", f"status_file = {json.dumps(str(statusdat))}", "stale_after = 600", "",
        "[http]", "cache_seconds = 60", *(["rate_limit = 0"] if _has_setting("rate_limit") else []), "",
    ]
    per_group = 10
    for k in range(components):
        if k % per_group == 0:
            g = k // per_group
            lines += ["[[group]]", f'id = "group-{g}"', f'name = "Group {g}"', ""]
        digit, pair = k % 10, (k // 10) % 10
        kinds = SERVICE_KINDS[2 * pair: 2 * pair + 2]
        checks = [f'{{ host = "host-*{digit}", service = "{kind} *" }}' for kind in kinds]
        if pair == 0:
            checks.append(f'{{ host = "host-*{digit}" }}')
        lines += [
            "  [[group.component]]",
            f'  id = "comp-{k}"',
            f'  name = "Component {k}"',
            f'  checks = [{", ".join(checks)}]',
            "",
        ]
    if probe is not None:
        lines += [
            "[[group]]", 'id = "probe-group"', 'name = "Probe"', "",
            "  [[group.component]]", '  id = "probe"', '  name = "Probe"',
            f"  checks = [{{ host = {json.dumps(probe[0])}, service = {json.dumps(probe[1])} }}]", "",
        ]
    return "\n".join(lines)


def free_port() -> int:
    """An ephemeral loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin(pid: int, cpu: int) -> bool:
    """Pin a process to one CPU when the machine has more than one; True when pinned."""
    if (os.cpu_count() or 1) < 2 or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        os.sched_setaffinity(pid, {cpu})
    except OSError:
        return False
    return True


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait until url answers (any status); fail early when proc exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before answering {url}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not answer within {timeout:g} s")
        time.sleep(0.05)


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process we started, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def python() -> str:
    """The interpreter to run children with (the venv's when the bench runs from it)."""
    return sys.executable


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    """statistics.median, nan for no values."""
    return statistics.median(values) if values else float("nan")
