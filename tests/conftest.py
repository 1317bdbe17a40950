"""Shared test helpers: hand-built monitoring data, configs and real-component gating."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.config import CheckPattern, Component, Config, Group
from bridge.model import CheckState, GroupView, Snapshot, SourceHealth, StatusData
from bridge.notices import Notice
from bridge.page_state import page_state

REPO = Path(__file__).resolve().parents[1]
# status.dat written by a real Nagios 4.4.6 (1k services; copied from the steering repo's shared corpus).
CORPUS = REPO / "tests" / "data"


def require_real(what: str, available: bool) -> None:
    """Skip when a real component is missing, unless REQUIRE_REAL=1 makes that a failure."""
    if available:
        return
    if os.environ.get("REQUIRE_REAL") == "1":
        pytest.fail(f"{what} is required (REQUIRE_REAL=1) but missing")
    pytest.skip(f"{what} not installed")


def require_binary(name: str) -> str:
    """Path of a real binary, with require_real semantics."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    require_real(name, path is not None)
    assert path is not None
    return path


def free_port() -> int:
    """An ephemeral loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check(host: str, service: str | None = None, state: int = 0, **kw: object) -> CheckState:
    """A HARD, checked CheckState; override any field by keyword."""
    fields: dict[str, object] = dict(
        host=host,
        service=service,
        current_state=state,
        state_type=1,
        last_hard_state=state,
        has_been_checked=True,
        acknowledged=False,
        downtime_depth=0,
        flapping=False,
        last_check=1_700_000_000,
        last_state_change=1_699_999_000,
        plugin_output="OK",
        long_plugin_output="",
    )
    fields.update(kw)
    return CheckState(**fields)  # type: ignore[arg-type]


def status_data(*checks: CheckState, created: float = 1_700_000_000.0) -> StatusData:
    """StatusData holding the given host and service checks."""
    hosts = {c.host: c for c in checks if c.service is None}
    for c in checks:
        hosts.setdefault(c.host, check(c.host))
    services = {(c.host, c.service): c for c in checks if c.service is not None}
    return StatusData(created=created, version="4.4.6", hosts=hosts, services=services)


def web_config(**kw: object) -> Config:
    """Two groups: web (website: web-1 HTTP*) and data (database: db-1 PostgreSQL)."""
    groups = (
        Group(
            id="web",
            name="Web",
            components=(Component(id="website", name="Website", group_id="web", checks=(CheckPattern("web-1", "HTTP*"),)),),
        ),
        Group(
            id="data",
            name="Data",
            components=(
                Component(id="database", name="Database", group_id="data", checks=(CheckPattern("db-1", "PostgreSQL"),)),
            ),
        ),
    )
    fields: dict[str, object] = dict(page_name="Test page", page_url="https://status.example.org", groups=groups)
    fields.update(kw)
    return Config(**fields)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _private_state_directory(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the default SQLite location at a temp dir so no test (or daemon it spawns) writes /var/lib."""
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path_factory.mktemp("state")))


HANG_GUARD = 60.0  # seconds: a bound only a hang reaches; no test uses it to claim anything about speed


class Held:
    """Wraps a real function: the chosen call, entered in a worker thread, waits there until the test releases it.

    Every call's thread is recorded, and the held call logs "entered" and "returned" in `events`, where the
    loop side logs "loop ran": so a test proves that the event loop kept working *while* the function was
    in progress, by order, without timing anything. Entered on the loop's own thread (the behaviour under
    test broken), it does not wait, as nothing could ever release it: the recorded order then fails the test.
    """

    def __init__(self, real: Callable[..., Any], hold_call: int = 1) -> None:
        self.real = real
        self.hold_call = hold_call  # 1-based: which call is held (the others only have their thread recorded)
        self.loop_thread = threading.get_ident()  # made by the test, on the loop's thread
        self.threads: list[int] = []
        self.events: list[str] = []  # list.append is atomic under the GIL: one order for both threads
        self.entered = threading.Event()
        self._released = threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Record the thread; for the held call, wait for release() first (not on the loop's thread)."""
        me = threading.get_ident()
        self.threads.append(me)
        if len(self.threads) != self.hold_call:
            return self.real(*args, **kwargs)
        self.events.append("entered")
        self.entered.set()
        if me != self.loop_thread:
            self._released.wait(HANG_GUARD)
        try:
            return self.real(*args, **kwargs)
        finally:
            self.events.append("returned")

    async def wait_entered(self, work: asyncio.Future[Any] | None = None) -> None:
        """Wait on the loop until the held call is in progress (it stays there until release()).

        work: the task doing the work, to fail at once when it ends without ever making the held call.
        """
        deadline = time.monotonic() + HANG_GUARD
        while not self.entered.is_set():
            assert work is None or not work.done(), f"done after {len(self.threads)} calls, none held"
            assert time.monotonic() < deadline, "the held function was never called"
            await asyncio.sleep(0.001)

    def release(self) -> None:
        """Let the held call go on."""
        self._released.set()

    async def serve_loop_meanwhile(
        self, work: asyncio.Future[Any] | None = None, serve: Callable[[], Awaitable[object]] | None = None
    ) -> None:
        """Once the held call is in progress, run serve() on the loop (default: a few loop turns), then release it."""
        await self.wait_entered(work)
        if serve is not None:
            await serve()
        else:
            for _ in range(3):
                await asyncio.sleep(0)
        self.events.append("loop ran")
        self.release()

    def assert_loop_ran_meanwhile(self) -> None:
        """The held call ran in a worker thread, and the loop ran between its start and its end."""
        assert self.events == ["entered", "loop ran", "returned"], self.events
        assert self.loop_thread not in self.threads, "ran on the event loop's thread"


async def loop_until(pred: Callable[[], object], what: str, timeout: float = HANG_GUARD) -> None:
    """Poll pred on the loop until it holds; fail after timeout seconds (a hang guard, not a speed claim)."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        await asyncio.sleep(0.01)


def record_threads(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[int]:
    """Wrap module.name (the real function still runs) to record the thread of every call."""
    threads: list[int] = []
    real = getattr(module, name)

    def recorded(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, recorded)
    return threads


def stop_rate_clock(app: Any, at: float = 1000.0) -> Any:
    """Stop the app's rate limiter clock: no bucket refills during the test, however slowly the machine runs it."""
    from bridge.front import FRONT

    app[FRONT].limiter.clock = lambda: at
    return app


def web_group_toml(component: str = "website", name: str = "Website", service: str = "HTTP") -> str:
    """TOML for group web ("Web") with one component checking web-1's service."""
    return f"""[[group]]
id = "web"
name = "Web"
  [[group.component]]
  id = "{component}"
  name = "{name}"
  checks = [{{ host = "web-1", service = "{service}" }}]
"""


WEB_GROUP_TOML = web_group_toml()  # group web, component website: web-1 HTTP

# A small Nagios status.dat (a %d for its created time): web-1 UP, web-1/HTTP CRITICAL.
MINI_STATUSDAT = b"""info {
\tcreated=%d
\tversion=4.4.6
\t}

hoststatus {
\thost_name=web-1
\thas_been_checked=1
\tcurrent_state=0
\tlast_hard_state=0
\tstate_type=1
\tplugin_output=UP
\tlong_plugin_output=
\tlast_check=1700000000
\tlast_state_change=1700000000
\tproblem_has_been_acknowledged=0
\tis_flapping=0
\tscheduled_downtime_depth=0
\t}

servicestatus {
\thost_name=web-1
\tservice_description=HTTP
\thas_been_checked=1
\tcurrent_state=2
\tlast_hard_state=2
\tstate_type=1
\tplugin_output=CRITICAL - connection refused
\tlong_plugin_output=
\tlast_check=1700000000
\tlast_state_change=1700000000
\tproblem_has_been_acknowledged=0
\tis_flapping=0
\tscheduled_downtime_depth=0
\t}
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The CLI tests' config (group web, listening on a free port, cache 5 s) beside a fresh MINI_STATUSDAT."""
    # test_reload and test_reliability_input have site fixtures of their own, which override this one there.
    (tmp_path / "status.dat").write_bytes(MINI_STATUSDAT % int(time.time()))
    cfg = tmp_path / "site.toml"
    cfg.write_text(f"""
[page]
name = "CLI test"
[nagios]
status_file = "status.dat"
stale_after = 600
[http]
listen = "127.0.0.1:{free_port()}"
cache_seconds = 5
{WEB_GROUP_TOML}""")
    return cfg


def snapshot_of(
    groups: tuple[GroupView, ...],
    notices: tuple[Notice, ...] = (),
    *,
    page_name: str = "Example",
    page_url: str = "https://status.example.org/",
    generated: float = 1_700_000_100.0,
    created: float | None = 1_700_000_000.0,
    stale: bool = False,
    reason: str | None = None,
) -> Snapshot:
    """A Snapshot of hand-built groups whose page state is computed by the real bridge.page_state."""
    health = SourceHealth(stale=stale, reason=reason, data_created=created)
    return Snapshot(page_name, page_url, generated, created, stale, reason, page_state(groups, health, notices),
                    groups, health, notices)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]  # (name, sorted labels) -> value


def metric_samples(text: str) -> Samples:
    """Every sample of a Prometheus text exposition."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def by_source(samples: Samples, name: str) -> dict[str, float]:
    """The samples of one per-source family (status_bridge_source_*): source label -> value."""
    return {dict(labels)["source"]: value for (n, labels), value in samples.items() if n == name}
