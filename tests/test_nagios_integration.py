"""Against a real Nagios 4: the test Nagios itself, then the bridge as a subprocess reading its status.dat."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.bridgeproc import BridgeProcess, site_toml
from tests.conftest import HANG_GUARD, free_port
from tests.nagios import Nagios, running_nagios, write_command
from tests.procs import wait_until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]  # (name, sorted labels) -> value
SERVICES = {"web-1": ["HTTP", "HTTPS"], "db-1": ["PostgreSQL"]}
STALE_AFTER = 5
STEP_TIMEOUT = HANG_GUARD  # each observable change must show up within this (reached only by a hang)
POLL = 0.2


@pytest.fixture
def nagios() -> Iterator[Nagios]:
    """A running throw-away Nagios with SERVICES, always stopped and removed."""
    with running_nagios(SERVICES) as instance:
        yield instance


def _service_block(nagios: Nagios, host: str, service: str, state: int) -> dict[str, str]:
    """Wait until status.dat shows host/service in state; fail with the Nagios log otherwise."""
    block = wait_until(
        lambda: (b := nagios.service_status(host, service)) and b.get("current_state") == str(state) and b,
        STEP_TIMEOUT,
    )
    if not block:
        pytest.fail(f"{host}/{service} never reached state {state} in status.dat\n{nagios.diagnostics()}")
    return block


@pytest.mark.real
def test_passive_critical_is_hard_at_once(nagios: Nagios) -> None:
    """One passive CRITICAL with max_check_attempts=1 is a HARD state in status.dat, output split as Nagios does."""
    before = nagios.service_status("web-1", "HTTP")
    assert before is not None and before["has_been_checked"] == "0"  # PENDING until the first result
    nagios.submit("web-1", "HTTP", 2, "CRITICAL - connection refused | time=1s\nline 2\nline 3")
    block = _service_block(nagios, "web-1", "HTTP", 2)
    assert block["state_type"] == "1"  # HARD
    assert block["last_hard_state"] == "2"
    assert block["has_been_checked"] == "1"
    assert block["plugin_output"] == "CRITICAL - connection refused"
    assert block["performance_data"] == "time=1s"
    # Only long_plugin_output is escaped: the newline arrives as backslash + n.
    assert block["long_plugin_output"] == "line 2\\nline 3"
    other = nagios.service_status("web-1", "HTTPS")
    assert other is not None and other["has_been_checked"] == "0"


@pytest.mark.real
def test_passive_host_down_is_hard(nagios: Nagios) -> None:
    """A passive host DOWN is HARD at once (passive_host_checks_are_soft=0)."""
    nagios.submit_host("db-1", 1, "PING CRITICAL - 100% packet loss")
    block = wait_until(lambda: (b := nagios.host_status("db-1")) and b.get("current_state") == "1" and b, STEP_TIMEOUT)
    if not block:
        pytest.fail(f"db-1 never went DOWN in status.dat\n{nagios.diagnostics()}")
    assert block["state_type"] == "1"
    assert block["last_hard_state"] == "1"


@pytest.mark.real
def test_status_dat_is_replaced_by_rename_and_removed_on_clean_stop(nagios: Nagios) -> None:
    """The production write pattern the tailer relies on: a new inode every cycle, no file after a clean stop."""
    first = nagios.status_file.stat().st_ino
    assert wait_until(lambda: nagios.status_file.stat().st_ino != first, STEP_TIMEOUT), "status.dat never replaced"
    assert nagios.stop() == 0
    assert not nagios.status_file.exists()


def test_write_command_refuses_non_fifo(tmp_path: Path) -> None:
    """Commands are never written into a regular file that sits where the FIFO should be."""
    target = tmp_path / "nagios.cmd"
    target.write_bytes(b"")
    with pytest.raises(ValueError, match="not a FIFO"):
        write_command(target, "[0] PROCESS_HOST_CHECK_RESULT;h;0;ok")
    assert target.read_bytes() == b""


def test_write_command_does_not_block_without_reader(tmp_path: Path) -> None:
    """A FIFO nobody reads (Nagios down) fails fast with ENXIO instead of hanging."""
    fifo = tmp_path / "nagios.cmd"
    os.mkfifo(fifo)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    with pytest.raises(OSError):
        write_command(fifo, "[0] PROCESS_HOST_CHECK_RESULT;h;0;ok")


class Bridge(BridgeProcess):
    """status-bridge `run` as a real subprocess, with stderr captured to a file."""

    def feed(self) -> dict[str, Any]:
        """The Oxford feed, parsed; fails the test on a non-200 answer."""
        status, body = self.get("/api/services.json")
        assert status == 200, f"/api/services.json answered {status}: {body[:500]!r}"
        return json.loads(body)

    def metrics(self) -> Samples:
        """/metrics samples as {(name, sorted labels): value}."""
        status, body = self.get("/metrics")
        assert status == 200, f"/metrics answered {status}: {body[:500]!r}"
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode("utf-8"))
            for s in family.samples
        }


@pytest.fixture
def bridge(nagios: Nagios) -> Iterator[Bridge]:
    """A status-bridge serving the test Nagios' status.dat on a free loopback port."""
    port = free_port()
    config = nagios.root / "status-bridge.toml"
    config.write_text(site_toml(port, "Integration test", nagios.status_file, STALE_AFTER, website="HTTP*"))
    with Bridge(config, port, output=nagios.root / "bridge.stderr", ready="/api/services.json") as instance:
        yield instance


def _component(feed: dict[str, Any], component_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(group, service) of the Oxford feed holding component_id."""
    for group in feed["groups"]:
        for service in group["services"]:
            if service["id"] == component_id:
                return group, service
    raise AssertionError(f"component {component_id!r} not in feed: {feed}")


def _summary(feed: dict[str, Any]) -> dict[str, Any]:
    """The parts of the feed the assertions look at, compact for failure messages."""
    return {
        "overall": (feed.get("overall_status_code"), feed.get("overall_status_name")),
        "stale": feed.get("stale"),
        "groups": {
            g["id"]: (g["status_code"], {s["id"]: (s["status_code"], s.get("status")) for s in g["services"]})
            for g in feed["groups"]
        },
    }


def _eventually(what: str, probe: Callable[[], tuple[bool, object]], nagios: Nagios, bridge: Bridge) -> None:
    """Poll probe (ok, observed) every POLL s for STEP_TIMEOUT s; fail with the last observation and logs."""
    last: list[object] = [None]
    broken: list[AssertionError] = []

    def attempt() -> bool:
        try:
            ok, last[0] = probe()
        except (OSError, ValueError, KeyError) as exc:  # not answering yet, or a half-built feed
            ok, last[0] = False, f"{type(exc).__name__}: {exc}"
        except AssertionError as exc:  # a broken promise: no point in waiting
            broken.append(exc)
            return True
        return ok

    started = time.monotonic()
    done = wait_until(attempt, STEP_TIMEOUT, POLL)
    if broken:
        pytest.fail(f"{what}: {broken[0]}\n{bridge.diagnostics()}\n{nagios.diagnostics()}", pytrace=False)
    if not done:
        pytest.fail(
            f"{what}: not seen within {STEP_TIMEOUT} s\nlast observed: {last[0]}\n"
            f"{bridge.diagnostics()}\n{nagios.diagnostics()}",
            pytrace=False,
        )
    print(f"{what}: {time.monotonic() - started:.1f} s")


def _component_metric(metrics: Samples, component: str, group: str) -> float | None:
    """status_bridge_component_status for one component (0 up, 1 partial, 2 down, ...)."""
    return metrics.get(("status_bridge_component_status", (("component", component), ("group", group))))


@pytest.mark.real
def test_bridge_follows_real_nagios(nagios: Nagios, bridge: Bridge) -> None:
    """Passive results through the real Nagios reach the feed and /metrics; a stopped Nagios means stale, not down."""

    def all_pending() -> tuple[bool, object]:
        feed = bridge.feed()
        statuses = {s["id"]: s["status"] for g in feed["groups"] for s in g["services"]}
        return statuses == {"website": "nodata", "database": "nodata"} and feed["stale"] is False, _summary(feed)

    # Nothing submitted yet: Nagios lists the services as PENDING, which is "no data" (code 0), not up.
    _eventually("PENDING -> no data, not stale", all_pending, nagios, bridge)

    for host, services in SERVICES.items():
        nagios.submit_host(host, 0, "PING OK")
        for service in services:
            nagios.submit(host, service, 0, f"{service} OK")

    def all_up() -> tuple[bool, object]:
        feed = bridge.feed()
        ok = feed["overall_status_code"] == 0 and feed["stale"] is False
        # "status" tells up from "no data", which share status_code 0.
        ok = ok and all(s["status_code"] == 0 and s["status"] == "up" for g in feed["groups"] for s in g["services"])
        return ok, _summary(feed)

    _eventually("all OK -> overall 0, not stale", all_up, nagios, bridge)

    nagios.submit("web-1", "HTTP", 2, "CRITICAL - connection refused")

    def website_down() -> tuple[bool, object]:
        feed = bridge.feed()
        web, website = _component(feed, "website")
        data, database = _component(feed, "database")
        ok = (
            website["status_code"] == 2  # rule "worst": one CRITICAL of HTTP/HTTPS is enough
            and web["status_code"] == 2  # its only component is down
            and database["status_code"] == 0
            and data["status_code"] == 0
            and feed["overall_status_code"] == 1
            and feed["overall_status_name"] == "Some problems reported"  # not every group is down
            and feed["stale"] is False
        )
        return ok, _summary(feed)

    _eventually("web-1/HTTP CRITICAL -> website Down, banner some problems", website_down, nagios, bridge)

    def website_metric() -> tuple[bool, object]:
        metrics = bridge.metrics()
        seen = {
            "website": _component_metric(metrics, "website", "web"),
            "database": _component_metric(metrics, "database", "data"),
            "group web": metrics.get(("status_bridge_group_status", (("group", "web"),))),
            "stale": metrics.get(("status_bridge_stale", ())),
        }
        return seen == {"website": 2, "database": 0, "group web": 2, "stale": 0}, seen

    _eventually("/metrics shows website down", website_metric, nagios, bridge)

    nagios.submit("db-1", "PostgreSQL", 1, "WARNING - 95 of 100 connections used")

    def database_partial() -> tuple[bool, object]:
        feed = bridge.feed()
        data, database = _component(feed, "database")
        _, website = _component(feed, "website")
        ok = (
            database["status_code"] == 1
            and data["status_code"] == 1
            and website["status_code"] == 2
            and feed["overall_status_code"] == 1
        )
        metric = _component_metric(bridge.metrics(), "database", "data")
        return ok and metric == 1, {"feed": _summary(feed), "database metric": metric}

    _eventually("db-1/PostgreSQL WARNING -> database Partial", database_partial, nagios, bridge)

    assert nagios.stop() == 0
    assert not nagios.status_file.exists(), "a clean Nagios stop should delete status.dat"

    def stale_but_unchanged() -> tuple[bool, object]:
        feed = bridge.feed()
        summary = _summary(feed)
        unchanged = summary["groups"] == {
            "web": (2, {"website": (2, "down")}),
            "data": (1, {"database": (1, "partial")}),
        }
        assert unchanged, f"statuses changed when status.dat vanished: {summary}"  # never "Down" for lost input
        metrics = bridge.metrics()
        seen = (metrics.get(("status_bridge_stale", ())), _component_metric(metrics, "website", "web"))
        return feed["stale"] is True and seen == (1, 2), {"feed": summary, "stale/website metrics": seen}

    _eventually("Nagios stopped -> stale, statuses kept", stale_but_unchanged, nagios, bridge)
    # Stale because the file went away, at once: not by age, which would have taken stale_after.
    assert bridge.feed()["stale_reason"] == "status.dat missing: Nagios stopped?"
