"""Faults in the monitoring input, end to end through the HTTP feed, /healthz and /metrics of the real app.

Every test runs the real app (make_app with the real status.dat tailer, or `python -m bridge run`) on a real
status.dat in a temp dir, breaks the file the way Nagios, a disk or an operator does, and checks the promise:
the last good data stays up (never "Down" because our input broke), the problem is flagged (stale, or the
error in /healthz and /metrics) and the feed recovers by itself once a good file is back.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bridge.app import make_app
from bridge.settings import Settings
from tests.bridgeproc import BridgeProcess, poll, site_toml
from tests.conftest import HANG_GUARD, free_port, web_config

ALL_UP = {("web-1", "HTTP"): 0, ("db-1", "PostgreSQL"): 0}
WAIT = HANG_GUARD  # every wait below is bounded by this many seconds (reached only by a hang)


def nagios_statusdat(created: float, services: Mapping[tuple[str, str], int] = ALL_UP, hosts: Mapping[str, int] | None = None) -> bytes:
    """A status.dat laid out as Nagios 4.4 writes it (info, programstatus, hosts, services, a contact)."""
    hosts = dict(hosts or {h: 0 for h, _ in services})
    out = [f"# Nagios status file\n\ninfo {{\n\tcreated={int(created)}\n\tversion=4.4.6\n\t}}\n\n".encode()]
    out.append(b"programstatus {\n\tnagios_pid=4242\n\tprogram_start=1700000000\n\t}\n\n")
    common = (
        "\thas_been_checked=1\n\tcurrent_state={s}\n\tlast_hard_state={s}\n\tstate_type=1\n"
        "\tplugin_output={out} - test output with = and | perf=1\n\tlong_plugin_output=line 1\\nline 2\n"
        "\tlast_check=1700000000\n\tlast_state_change=1699990000\n\tproblem_has_been_acknowledged=0\n"
        "\tis_flapping=0\n\tscheduled_downtime_depth=0\n\t}}\n\n"
    )
    for host, state in hosts.items():
        out.append((f"hoststatus {{\n\thost_name={host}\n" + common.format(s=state, out="UP")).encode())
    for (host, service), state in services.items():
        block = f"servicestatus {{\n\thost_name={host}\n\tservice_description={service}\n" + common.format(s=state, out="OK")
        out.append(block.encode())
    out.append(b"contactstatus {\n\tcontact_name=nobody\n\thost_notifications_enabled=0\n\t}\n\n")
    return b"".join(out)


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """What Nagios does every status_update_interval: write a temp file in the same directory, rename it over."""
    tmp = path.parent / f"nagios.tmp{os.getpid()}"
    tmp.write_bytes(data)
    if mode is not None:
        tmp.chmod(mode)
    os.replace(tmp, path)


def write_in_place(path: Path, data: bytes) -> None:
    """What Nagios does when temp_file is on another filesystem: truncate status.dat and copy into it."""
    with open(path, "r+b" if path.exists() else "wb") as f:
        f.truncate(0)
        f.write(data)


def metric_values(text: str) -> dict[str, float]:
    """Unlabelled samples of a Prometheus text exposition: name -> value."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        m = re.fullmatch(r"([a-z_:][a-z0-9_:]*) (\S+)", line)
        if m:
            values[m.group(1)] = float(m.group(2))
    return values


def statuses(feed: dict[str, Any]) -> dict[str, str]:
    """Component id -> shown status from /api/services.json."""
    return {s["id"]: s["status"] for g in feed["groups"] for s in g["services"]}


def assert_no_down(feed: dict[str, Any]) -> None:
    """Our own input problem must never show as an outage anywhere in the feed."""
    assert feed["overall_status_code"] != 2, feed
    for g in feed["groups"]:
        assert g["status_code"] != 2 and g["status"] != "down", g
        for s in g["services"]:
            assert s["status"] != "down" and s["status_code"] != 2, s


class Site:
    """The real app (with its status.dat tailer) on a temp status.dat, read through HTTP."""

    def __init__(self, client: TestClient, path: Path) -> None:
        self.client, self.path = client, path

    async def feed(self) -> dict[str, Any]:
        """GET /api/services.json."""
        resp = await self.client.get("/api/services.json")
        assert resp.status == 200
        return await resp.json()

    async def health(self) -> dict[str, Any]:
        """GET /healthz."""
        resp = await self.client.get("/healthz")
        assert resp.status == 200
        return await resp.json()

    async def metrics(self) -> dict[str, float]:
        """GET /metrics, parsed."""
        resp = await self.client.get("/metrics")
        assert resp.status == 200
        return metric_values(await resp.text())

    async def until(self, what: str, pred: Callable[[], Any], timeout: float = WAIT) -> Any:
        """Poll an async getter (self.feed/health/metrics by name) until pred(result) holds; bounded."""
        getter = getattr(self, what)
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = await getter()
            if pred(last):
                return last
            await asyncio.sleep(0.05)
        raise AssertionError(f"{what} never satisfied the condition in {timeout}s; last: {last!r}")


@pytest.fixture
async def site(aiohttp_client: Any, tmp_path: Path) -> Site:
    """The real app following a fresh all-up status.dat (stale_after 600 s)."""
    path = tmp_path / "nagios" / "status.dat"
    path.parent.mkdir()
    write_atomic(path, nagios_statusdat(time.time()))
    config = web_config(statusdat_path=path, stale_after=600.0, cache_seconds=0, rate_limit=0.0)
    client = await aiohttp_client(make_app(Settings(config, db_path=tmp_path / "db.sqlite")))
    s = Site(client, path)
    first = await s.feed()
    assert first["stale"] is False and set(statuses(first).values()) == {"up"}, first
    return s


async def test_truncated_copy_in_place_keeps_last_good_data_and_flags_the_error(site: Site) -> None:
    """A status.dat caught mid-copy is never published: last good data stays, the error is counted, then recovery."""
    good = await site.feed()
    new = nagios_statusdat(time.time() + 5)
    cuts = {
        "half": len(new) // 2,
        "mid-line": new.index(b"service_description=") + 8,
        "block not closed": new.rindex(b"\t}\n") - 1,
        "no final newline": len(new) - 2,
    }
    for n, (label, cut) in enumerate(cuts.items(), start=1):
        write_in_place(site.path, new[:cut])
        m = await site.until("metrics", lambda m, n=n: m["status_bridge_parse_errors_total"] >= n)
        assert m["status_bridge_last_parse_error_timestamp_seconds"] > 0, label
        feed = await site.feed()
        assert feed["last_updated"] == good["last_updated"], label  # nothing from the partial file
        assert statuses(feed) == statuses(good), label
        assert_no_down(feed)
        health = await site.health()
        assert "cannot parse status.dat" in (health["last_error"] or ""), (label, health)
    # The copy completes: the feed follows by itself.
    write_in_place(site.path, new)
    feed = await site.until("feed", lambda f: f["last_updated"] != good["last_updated"])
    assert feed["stale"] is False and set(statuses(feed).values()) == {"up"}


async def test_deleted_status_dat_is_stale_not_down_and_recovers(site: Site) -> None:
    """Nagios stopped (file deleted): the feed says stale, keeps the last states, /metrics shows it; restore recovers."""
    good = await site.feed()
    site.path.unlink()
    feed = await site.until("feed", lambda f: f["stale"] is True)
    assert statuses(feed) == statuses(good)
    assert_no_down(feed)
    assert "missing" in (feed["stale_reason"] or "")
    assert (await site.metrics())["status_bridge_stale"] == 1.0
    health = await site.health()
    assert health["status"] == "stale" and health["stale"] is True
    write_atomic(site.path, nagios_statusdat(time.time() + 3))
    feed = await site.until("feed", lambda f: f["stale"] is False)
    assert feed["last_updated"] != good["last_updated"]
    assert (await site.metrics())["status_bridge_stale"] == 0.0


@pytest.mark.parametrize(
    "content",
    [
        bytes(range(256)) * 8,  # binary garbage
        b"\x00" * 4096,  # a crashed filesystem's zero-filled block
        b"info {\n\tcreated=notanumber\n\t}\n",
        "hoststatus {\n\thost_name=\u00e9\u00e8\n\tcurrent_state=\u2603\n\t}\n".encode("utf-8"),
        b"",  # a 0-byte file
    ],
    ids=["binary", "zeros", "bad-created", "bad-state-unicode", "zero-bytes"],
)
async def test_garbage_or_empty_file_keeps_last_good_data_and_flags_the_error(site: Site, content: bytes) -> None:
    """Garbage, a 0-byte file or nonsense values: nothing of it is published; the error is in /metrics and /healthz."""
    good = await site.feed()
    before = (await site.metrics())["status_bridge_parse_errors_total"]
    write_atomic(site.path, content)
    m = await site.until("metrics", lambda m: m["status_bridge_parse_errors_total"] > before)
    assert m["status_bridge_last_parse_error_timestamp_seconds"] >= time.time() - 60
    feed = await site.feed()
    assert feed["last_updated"] == good["last_updated"] and statuses(feed) == statuses(good)
    assert_no_down(feed)
    health = await site.health()
    assert health["last_error"], health
    if not content:
        assert "empty" in health["last_error"]
    write_atomic(site.path, nagios_statusdat(time.time() + 7))
    await site.until("feed", lambda f: f["last_updated"] != good["last_updated"] and f["stale"] is False)


async def test_zero_byte_copy_in_place_then_recovers(site: Site) -> None:
    """The first step of a copy in place (O_TRUNC, nothing written yet) is an error, not an empty page."""
    good = await site.feed()
    write_in_place(site.path, b"")
    await site.until("metrics", lambda m: m["status_bridge_parse_errors_total"] >= 1)
    feed = await site.feed()
    assert statuses(feed) == statuses(good) and feed["last_updated"] == good["last_updated"]
    write_in_place(site.path, nagios_statusdat(time.time() + 4))
    await site.until("feed", lambda f: f["last_updated"] != good["last_updated"])


async def test_unreadable_status_dat_keeps_last_good_data(site: Site) -> None:
    """A path that cannot be read (a directory where the file should be: works as root too) is an error, not an outage."""
    good = await site.feed()
    site.path.unlink()
    site.path.mkdir()
    m = await site.until("metrics", lambda m: m["status_bridge_parse_errors_total"] >= 1)
    assert m["status_bridge_last_parse_error_timestamp_seconds"] > 0
    health = await site.health()
    assert "cannot read status.dat" in (health["last_error"] or ""), health
    feed = await site.feed()
    assert statuses(feed) == statuses(good)
    assert_no_down(feed)
    site.path.rmdir()
    write_atomic(site.path, nagios_statusdat(time.time() + 2))
    await site.until("feed", lambda f: f["last_updated"] != good["last_updated"] and f["stale"] is False)


async def test_errors_that_last_past_stale_after_turn_stale_not_down(aiohttp_client: Any, tmp_path: Path) -> None:
    """Good data that ages past stale_after while every new file is garbage becomes stale, never Down."""
    path = tmp_path / "status.dat"
    stale_after = 2.0
    write_atomic(path, nagios_statusdat(time.time() - stale_after + 1.0))
    config = web_config(statusdat_path=path, stale_after=stale_after, cache_seconds=0, rate_limit=0.0)
    site = Site(await aiohttp_client(make_app(Settings(config, db_path=tmp_path / "db.sqlite"))), path)
    good = await site.feed()
    assert good["stale"] is False
    write_atomic(path, b"garbage\n")
    feed = await site.until("feed", lambda f: f["stale"] is True)
    assert statuses(feed) == statuses(good)
    assert_no_down(feed)
    m = await site.metrics()
    assert m["status_bridge_stale"] == 1.0 and m["status_bridge_parse_errors_total"] >= 1
    assert m["status_bridge_statusdat_age_seconds"] > stale_after


async def test_nagios_restarted_with_other_objects_shows_no_data_not_down(site: Site) -> None:
    """Nagios restarted with a config where our mapped objects vanished: components say "no data", never "Down"."""
    site.path.unlink()  # Nagios deletes status.dat at start
    await site.until("feed", lambda f: f["stale"] is True)
    write_atomic(site.path, nagios_statusdat(time.time() + 1, {("mail-1", "SMTP"): 2}, {"mail-1": 1}))
    feed = await site.until("feed", lambda f: f["stale"] is False)
    assert set(statuses(feed).values()) == {"nodata"}, feed
    assert_no_down(feed)
    assert {s["status_name"] for g in feed["groups"] for s in g["services"]} == {"No data"}
    m = await site.metrics()
    assert m["status_bridge_stale"] == 0.0
    # The objects come back: the components follow.
    write_atomic(site.path, nagios_statusdat(time.time() + 2))
    feed = await site.until("feed", lambda f: set(statuses(f).values()) == {"up"})
    assert feed["stale"] is False


# -- the real daemon process ---------------------------------------------------------------------------------------

def daemon_toml(statusdat: Path | str, port: int | str, http: str = "rate_limit = 0\n") -> str:
    """The reliability site: groups web and data over statusdat (stale after 600 s), no cache, no rate limit."""
    return site_toml(port, "Reliability", statusdat, 600, http)


class Daemon(BridgeProcess):
    """The reliability site as `python -m bridge run ... ARGS` on statusdat, with a SQLite file beside its config."""

    def __init__(self, directory: Path, statusdat: Path, http: str = "rate_limit = 0\n", prefix: Sequence[str] = (),
                 args: Sequence[str] = ()) -> None:  # fmt: skip
        port = free_port()
        config = directory / "site.toml"
        config.write_text(daemon_toml(statusdat, port, http))
        super().__init__(config, port, ("--db", str(directory / "db"), *args), prefix)

    def feed(self, pred: Callable[[dict[str, Any]], bool] = lambda f: True) -> dict[str, Any]:
        """/api/services.json once pred holds."""
        return json.loads(poll(self.base + "/api/services.json", lambda b: pred(json.loads(b)), WAIT))

    def metrics(self, pred: Callable[[dict[str, float]], bool] = lambda m: True) -> dict[str, float]:
        """/metrics parsed, once pred holds."""
        return metric_values(poll(self.base + "/metrics", lambda b: pred(metric_values(b.decode())), WAIT).decode())


def without_dac_override() -> list[str]:
    """A command prefix that runs a root process without CAP_DAC_OVERRIDE/READ_SEARCH, so mode 000 really denies."""
    if os.geteuid() != 0:
        return []  # file modes already apply to us
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux): cannot make a file unreadable to the daemon")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]


def test_real_daemon_survives_every_input_fault(tmp_path: Path) -> None:
    """`python -m bridge run` through truncation, garbage, permission denied, deletion and restart: never Down, recovers."""
    statusdat = tmp_path / "nagios" / "status.dat"
    statusdat.parent.mkdir()
    write_atomic(statusdat, nagios_statusdat(time.time()))
    d = Daemon(tmp_path, statusdat, prefix=without_dac_override()).start()
    try:
        good = d.feed()
        assert good["stale"] is False and set(statuses(good).values()) == {"up"}
        steps: list[tuple[str, Callable[[], None]]] = [
            ("truncated copy in place", lambda: write_in_place(statusdat, nagios_statusdat(time.time())[:300])),
            ("garbage", lambda: write_atomic(statusdat, os.urandom(2048))),
            ("0 bytes", lambda: write_atomic(statusdat, b"")),
            ("permission denied", lambda: write_atomic(statusdat, nagios_statusdat(time.time()), mode=0)),
        ]
        for n, (label, fault) in enumerate(steps, start=1):
            fault()
            m = d.metrics(lambda m, n=n: m["status_bridge_parse_errors_total"] >= n)
            assert m["status_bridge_last_parse_error_timestamp_seconds"] > 0, label
            feed = d.feed()
            assert statuses(feed) == statuses(good) and feed["last_updated"] == good["last_updated"], label
            assert_no_down(feed)
        _, body = d.get("/healthz")
        assert b"Permission denied" in body, body
        statusdat.unlink()  # Nagios stopped
        feed = d.feed(lambda f: f["stale"] is True)
        assert_no_down(feed)
        assert d.metrics()["status_bridge_stale"] == 1.0
        # Nagios started again with other objects: no data, not down; then the mapped objects return.
        write_atomic(statusdat, nagios_statusdat(time.time() + 1, {("mail-1", "SMTP"): 2}))
        feed = d.feed(lambda f: f["stale"] is False)
        assert set(statuses(feed).values()) == {"nodata"}
        assert_no_down(feed)
        write_atomic(statusdat, nagios_statusdat(time.time() + 2))
        d.feed(lambda f: set(statuses(f).values()) == {"up"} and f["stale"] is False)
        assert d.metrics()["status_bridge_stale"] == 0.0
    finally:
        err = d.stop()
    assert d.returncode in (0, -15), err
    assert "Traceback" not in err, err


@pytest.mark.soak
async def test_soak_churn_with_faults_never_publishes_anything_but_the_truth(aiohttp_client: Any, tmp_path: Path) -> None:
    """15 s of Nagios rewrites mixed with every fault, the feed polled meanwhile: only the real states, or stale."""
    import random

    from bridge.statusdat import parse

    rng = random.Random(int(os.environ.get("RELIABILITY_SEED", random.randrange(1 << 30))))
    truth = {("web-1", "HTTP"): 2, ("db-1", "PostgreSQL"): 0}
    expected = {"website": "down", "database": "up"}
    path = tmp_path / "nagios" / "status.dat"
    path.parent.mkdir()
    write_atomic(path, nagios_statusdat(time.time(), truth))
    config = web_config(statusdat_path=path, stale_after=600.0, cache_seconds=0, rate_limit=0.0)
    site = Site(await aiohttp_client(make_app(Settings(config, db_path=tmp_path / "db.sqlite"))), path)
    seen: list[dict[str, str]] = []
    stop = asyncio.Event()

    async def poll() -> None:
        while not stop.is_set():
            feed = await site.feed()
            got = statuses(feed)
            assert got == expected, feed  # stale or not, the states shown are always the real ones
            assert feed["overall_status_name"] == "Some problems reported", feed
            seen.append(got)
            await asyncio.sleep(0.01)

    def fault() -> str:
        data = nagios_statusdat(time.time(), truth)
        if path.is_dir():
            path.rmdir()
        kind = rng.choice(["rename", "rename", "in place", "cut", "garbage", "empty", "delete", "directory"])
        if kind == "rename":
            write_atomic(path, data)
        elif kind == "in place":
            write_in_place(path, data)
        elif kind == "cut":
            # Any cut but at a block boundary (such a prefix is a well-formed file: see RELIABILITY.md, known limits).
            cuts = [c for c in rng.sample(range(1, len(data)), 20) if not _parses(parse, data[:c])]
            write_in_place(path, data[: cuts[0]])
        elif kind == "garbage":
            write_atomic(path, rng.randbytes(rng.randrange(1, 4096)))
        elif kind == "empty":
            write_atomic(path, b"")
        elif kind == "delete":
            path.unlink(missing_ok=True)
        else:
            path.unlink(missing_ok=True)
            path.mkdir()
        return kind

    poller = asyncio.create_task(poll())
    kinds: list[str] = []
    deadline = time.monotonic() + 15.0
    try:
        while time.monotonic() < deadline and not poller.done():
            kinds.append(fault())
            await asyncio.sleep(rng.uniform(0.0, 0.1))
    finally:
        stop.set()
        await poller  # re-raises a wrong feed
    if path.is_dir():
        path.rmdir()
    write_atomic(path, nagios_statusdat(time.time() + 1, truth))
    feed = await site.until("feed", lambda f: f["stale"] is False)
    assert statuses(feed) == expected
    m = await site.metrics()
    assert m["status_bridge_parse_errors_total"] > 0 and m["status_bridge_parses_total"] > 10
    assert len(seen) > 100 and len(kinds) > 100


def _parses(parse: Callable[[bytes], Any], data: bytes) -> bool:
    """True when data is a well-formed status.dat on its own."""
    try:
        parse(data)
    except ValueError:
        return False
    return True
