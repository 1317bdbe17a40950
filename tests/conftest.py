"""Shared test helpers: hand-built monitoring data, configs and real-component gating."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.config import CheckPattern, Component, Config, Group
from bridge.model import CheckState, GroupView, Snapshot, SourceHealth, StatusData
from bridge.notices import Notice
from bridge.page_state import page_state

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"


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


class LoopTicker:
    """Ticks every millisecond on the running loop while in use; gaps[] is how long each tick really took."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self._done = False
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while not self._done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.gaps.append(now - last)
            last = now

    async def __aenter__(self) -> LoopTicker:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0.01)  # ticking before the work starts
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._done = True
        assert self._task is not None
        await self._task

    @property
    def max_gap(self) -> float:
        """The longest the loop kept the ticker waiting."""
        return max(self.gaps, default=0.0)


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
