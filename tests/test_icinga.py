"""Icinga 2 source: recorded 2.13 JSON mapped to CheckStates, stream behaviour on a local fake, and a real Icinga 2."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bridge.app import make_app
from bridge.config import ConfigError
import bridge.icinga as icinga_module
from bridge.icinga import IcingaSource
from bridge.icinga_health import (
    StreamFacts,
    backoff_delay,
    compute_health,
    stale_reason,
)
from bridge.icinga_http import read_password, ssl_context
from bridge.icinga_parse import (
    DOWNTIME_ATTRS,
    EVENT_TYPES,
    HOST_ATTRS,
    SERVICE_ATTRS,
    IcingaState,
    check_from_object,
    pending,
    split_output,
)
from bridge.live import Live
from bridge.merge import SourceView
from bridge.model import CheckState, SourceHealth, StatusData
from bridge.settings import Settings
from tests.conftest import HANG_GUARD, Held, Samples, by_source, metric_samples, web_config
from tests.icinga import API_USER, Icinga

# Recorded from Icinga 2.13.6 (Debian 12 icinga2) with `attrs=` as the bridge sends; one result per line.

PENDING_OBJECTS = r"""
{"attrs":{"acknowledgement":0,"downtime_depth":0,"flapping":false,"host_name":"web-1","last_check":-1,"last_check_result":null,"last_hard_state":3,"last_hard_state_change":0,"last_reachable":true,"last_state_change":0,"name":"Disk","state":3,"state_type":0},"joins":{},"meta":{},"name":"web-1!Disk","type":"Service"}
{"attrs":{"acknowledgement":0,"downtime_depth":0,"flapping":false,"host_name":"web-1","last_check":-1,"last_check_result":null,"last_hard_state":3,"last_hard_state_change":0,"last_reachable":true,"last_state_change":0,"name":"HTTP","state":3,"state_type":0},"joins":{},"meta":{},"name":"web-1!HTTP","type":"Service"}
{"attrs":{"acknowledgement":0,"downtime_depth":0,"flapping":false,"last_check":-1,"last_check_result":null,"last_hard_state":1,"last_hard_state_change":0,"last_reachable":true,"last_state_change":0,"name":"web-1","state":1,"state_type":0},"joins":{},"meta":{},"name":"web-1","type":"Host"}
"""

CHECKED_SERVICES = r"""
{"attrs":{"acknowledgement":0,"downtime_depth":1,"flapping":false,"host_name":"web-1","last_check":1795391688.378427,"last_check_result":{"active":false,"check_source":"localhost","command":null,"execution_end":1795391688.378427,"execution_start":1795391688.378427,"exit_status":0,"output":"WARNING - 91% used","performance_data":null,"previous_hard_state":99,"schedule_end":1795391688.378427,"schedule_start":1795391688.378427,"scheduling_source":"localhost","state":1,"ttl":0,"type":"CheckResult","vars_after":{"attempt":2,"reachable":true,"state":1,"state_type":0},"vars_before":null},"last_hard_state":3,"last_hard_state_change":0,"last_reachable":true,"last_state_change":1795391688.378427,"name":"Disk","state":1,"state_type":0},"joins":{},"meta":{},"name":"web-1!Disk","type":"Service"}
{"attrs":{"acknowledgement":1,"downtime_depth":0,"flapping":false,"host_name":"web-1","last_check":1795391688.359221,"last_check_result":{"active":false,"check_source":"localhost","command":null,"execution_end":1795391688.359221,"execution_start":1795391688.359221,"exit_status":0,"output":"CRITICAL - connection refused\nline two\nline three","performance_data":["time=0.1s"],"previous_hard_state":99,"schedule_end":1795391688.359221,"schedule_start":1795391688.359221,"scheduling_source":"localhost","state":2,"ttl":0,"type":"CheckResult","vars_after":{"attempt":1,"reachable":true,"state":2,"state_type":1},"vars_before":null},"last_hard_state":2,"last_hard_state_change":1795391688.359221,"last_reachable":true,"last_state_change":1795391688.359221,"name":"HTTP","state":2,"state_type":1},"joins":{},"meta":{},"name":"web-1!HTTP","type":"Service"}
"""

CHECKED_HOSTS = r"""
{"attrs":{"acknowledgement":0,"downtime_depth":0,"flapping":false,"last_check":1795391688.39893,"last_check_result":{"active":false,"check_source":"localhost","command":null,"execution_end":1795391688.39893,"execution_start":1795391688.39893,"exit_status":0,"output":"DOWN - no route","performance_data":null,"previous_hard_state":99,"schedule_end":1795391688.39893,"schedule_start":1795391688.39893,"scheduling_source":"localhost","state":2,"ttl":0,"type":"CheckResult","vars_after":{"attempt":1,"reachable":true,"state":2,"state_type":1},"vars_before":null},"last_hard_state":1,"last_hard_state_change":1795391688.39893,"last_reachable":true,"last_state_change":0,"name":"web-1","state":1,"state_type":1},"joins":{},"meta":{},"name":"web-1","type":"Host"}
{"attrs":{"acknowledgement":0,"downtime_depth":0,"flapping":false,"last_check":1795391755.675602,"last_check_result":{"active":false,"check_source":"localhost","command":null,"execution_end":1795391755.675602,"execution_start":1795391755.675602,"exit_status":0,"output":"CRITICAL - Host Unreachable (10.0.0.5)","performance_data":null,"previous_hard_state":99,"schedule_end":1795391755.675602,"schedule_start":1795391755.675602,"scheduling_source":"localhost","state":2,"ttl":0,"type":"CheckResult","vars_after":{"attempt":1,"reachable":false,"state":2,"state_type":1},"vars_before":null},"last_hard_state":1,"last_hard_state_change":1795391755.675602,"last_reachable":false,"last_state_change":0,"name":"db-1","state":1,"state_type":1},"joins":{},"meta":{},"name":"db-1","type":"Host"}
"""

DOWNTIMES = r"""
{"attrs":{"duration":0,"end_time":1795395288,"fixed":true,"host_name":"web-1","service_name":"Disk","start_time":1795391688,"trigger_time":1795391688.991062},"joins":{},"meta":{},"name":"web-1!Disk!1779a758-8eaa-4f86-abe3-b9ec651121e5","type":"Downtime"}
"""

# The event stream as Icinga 2.13.6 sent it (POST /v1/events), in order: results for web-1!HTTP (CRITICAL,
# HARD), web-1!Disk (WARNING, SOFT) and web-1 (DOWN), an ack, a fixed downtime, ack and downtime removed, web-1 UP.
EVENTS = r"""
{"acknowledgement":false,"check_result":{"active":false,"check_source":"localhost","command":null,"execution_end":1795391688.359221,"execution_start":1795391688.359221,"exit_status":0,"output":"CRITICAL - connection refused\nline two\nline three","performance_data":["time=0.1s"],"previous_hard_state":99,"schedule_end":1795391688.359221,"schedule_start":1795391688.359221,"scheduling_source":"localhost","state":2,"ttl":0,"type":"CheckResult","vars_after":{"attempt":1,"reachable":true,"state":2,"state_type":1},"vars_before":null},"downtime_depth":0,"host":"web-1","service":"HTTP","timestamp":1795391688.35932,"type":"CheckResult"}
{"acknowledgement":false,"check_result":{"active":false,"check_source":"localhost","command":null,"execution_end":1795391688.359221,"execution_start":1795391688.359221,"exit_status":0,"output":"CRITICAL - connection refused\nline two\nline three","performance_data":["time=0.1s"],"previous_hard_state":99,"schedule_end":1795391688.359221,"schedule_start":1795391688.359221,"scheduling_source":"localhost","state":2,"ttl":0,"type":"CheckResult","vars_after":{"attempt":1,"reachable":true,"state":2,"state_type":1},"vars_before":null},"downtime_depth":0,"host":"web-1","service":"HTTP","state":2,"state_type":1,"timestamp":1795391688.35957,"type":"StateChange"}
{"acknowledgement":false,"check_result":{"active":false,"check_source":"localhost","command":null,"execution_end":1795391688.378427,"execution_start":1795391688.378427,"exit_status":0,"output":"WARNING - 91% used","performance_data":null,"previous_hard_state":99,"schedule_end":1795391688.378427,"schedule_start":1795391688.378427,"scheduling_source":"localhost","state":1,"ttl":0,"type":"CheckResult","vars_after":{"attempt":2,"reachable":true,"state":1,"state_type":0},"vars_before":null},"downtime_depth":0,"host":"web-1","service":"Disk","timestamp":1795391688.378476,"type":"CheckResult"}
{"acknowledgement":false,"check_result":{"active":false,"check_source":"localhost","command":null,"execution_end":1795391688.378427,"execution_start":1795391688.378427,"exit_status":0,"output":"WARNING - 91% used","performance_data":null,"previous_hard_state":99,"schedule_end":1795391688.378427,"schedule_start":1795391688.378427,"scheduling_source":"localhost","state":1,"ttl":0,"type":"CheckResult","vars_after":{"attempt":2,"reachable":true,"state":1,"state_type":0},"vars_before":null},"downtime_depth":0,"host":"web-1","service":"Disk","state":1,"state_type":0,"timestamp":1795391688.378594,"type":"StateChange"}
{"acknowledgement":false,"check_result":{"active":false,"check_source":"localhost","command":null,"execution_end":1795391688.39893,"execution_start":1795391688.39893,"exit_status":0,"output":"DOWN - no route","performance_data":null,"previous_hard_state":99,"schedule_end":1795391688.39893,"schedule_start":1795391688.39893,"scheduling_source":"localhost","state":2,"ttl":0,"type":"CheckResult","vars_after":{"attempt":1,"reachable":true,"state":2,"state_type":1},"vars_before":null},"downtime_depth":0,"host":"web-1","timestamp":1795391688.399031,"type":"CheckResult"}
{"acknowledgement":false,"check_result":{"active":false,"check_source":"localhost","command":null,"execution_end":1795391688.39893,"execution_start":1795391688.39893,"exit_status":0,"output":"DOWN - no route","performance_data":null,"previous_hard_state":99,"schedule_end":1795391688.39893,"schedule_start":1795391688.39893,"scheduling_source":"localhost","state":2,"ttl":0,"type":"CheckResult","vars_after":{"attempt":1,"reachable":true,"state":2,"state_type":1},"vars_before":null},"downtime_depth":0,"host":"web-1","state":1,"state_type":1,"timestamp":1795391688.399167,"type":"StateChange"}
{"acknowledgement_type":1,"author":"ops","comment":"looking","expiry":0,"host":"web-1","notify":false,"persistent":false,"service":"HTTP","state":2,"state_type":1,"timestamp":1795391688.964461,"type":"AcknowledgementSet"}
{"downtime":{"__name":"web-1!Disk!1779a758-8eaa-4f86-abe3-b9ec651121e5","author":"ops","authoritative_zone":"","comment":"maint","config_owner":"","config_owner_hash":"","duration":0,"end_time":1795395288,"entry_time":1795391688.991062,"fixed":true,"host_name":"web-1","legacy_id":1,"name":"1779a758-8eaa-4f86-abe3-b9ec651121e5","package":"_api","parent":"","remove_time":0,"scheduled_by":"","service_name":"Disk","source_location":{"first_column":0,"first_line":1,"last_column":69,"last_line":1,"path":"/tmp/i2try/data/api/packages/_api/8d8cf1f7-91d1-40e8-b823-3f07c988000d/conf.d/downtimes/web-1!Disk!1779a758-8eaa-4f86-abe3-b9ec651121e5.conf"},"start_time":1795391688,"templates":["1779a758-8eaa-4f86-abe3-b9ec651121e5"],"trigger_time":0,"triggered_by":"","triggers":[],"type":"Downtime","version":1795391688.991083,"zone":""},"timestamp":1795391688.994043,"type":"DowntimeAdded"}
{"downtime":{"__name":"web-1!Disk!1779a758-8eaa-4f86-abe3-b9ec651121e5","author":"ops","authoritative_zone":"","comment":"maint","config_owner":"","config_owner_hash":"","duration":0,"end_time":1795395288,"entry_time":1795391688.991062,"fixed":true,"host_name":"web-1","legacy_id":1,"name":"1779a758-8eaa-4f86-abe3-b9ec651121e5","package":"_api","parent":"","remove_time":0,"scheduled_by":"","service_name":"Disk","source_location":{"first_column":0,"first_line":1,"last_column":69,"last_line":1,"path":"/tmp/i2try/data/api/packages/_api/8d8cf1f7-91d1-40e8-b823-3f07c988000d/conf.d/downtimes/web-1!Disk!1779a758-8eaa-4f86-abe3-b9ec651121e5.conf"},"start_time":1795391688,"templates":["1779a758-8eaa-4f86-abe3-b9ec651121e5"],"trigger_time":0,"triggered_by":"","triggers":[],"type":"Downtime","version":1795391688.991083,"zone":""},"timestamp":1795391688.994111,"type":"DowntimeStarted"}
{"downtime":{"__name":"web-1!Disk!1779a758-8eaa-4f86-abe3-b9ec651121e5","author":"ops","authoritative_zone":"","comment":"maint","config_owner":"","config_owner_hash":"","duration":0,"end_time":1795395288,"entry_time":1795391688.991062,"fixed":true,"host_name":"web-1","legacy_id":1,"name":"1779a758-8eaa-4f86-abe3-b9ec651121e5","package":"_api","parent":"","remove_time":0,"scheduled_by":"","service_name":"Disk","source_location":{"first_column":0,"first_line":1,"last_column":69,"last_line":1,"path":"/tmp/i2try/data/api/packages/_api/8d8cf1f7-91d1-40e8-b823-3f07c988000d/conf.d/downtimes/web-1!Disk!1779a758-8eaa-4f86-abe3-b9ec651121e5.conf"},"start_time":1795391688,"templates":["1779a758-8eaa-4f86-abe3-b9ec651121e5"],"trigger_time":1795391688.991062,"triggered_by":"","triggers":[],"type":"Downtime","version":1795391688.991083,"zone":""},"timestamp":1795391688.99421,"type":"DowntimeTriggered"}
{"acknowledgement_type":0,"host":"web-1","service":"HTTP","state":2,"state_type":1,"timestamp":1795391690.75367,"type":"AcknowledgementCleared"}
{"downtime":{"__name":"web-1!Disk!1779a758-8eaa-4f86-abe3-b9ec651121e5","author":"ops","authoritative_zone":"","comment":"maint","config_owner":"","config_owner_hash":"","duration":0,"end_time":1795395288,"entry_time":1795391688.991062,"fixed":true,"host_name":"web-1","legacy_id":1,"name":"1779a758-8eaa-4f86-abe3-b9ec651121e5","package":"_api","parent":"","remove_time":1795391690.813962,"scheduled_by":"","service_name":"Disk","source_location":{"first_column":0,"first_line":1,"last_column":69,"last_line":1,"path":"/tmp/i2try/data/api/packages/_api/8d8cf1f7-91d1-40e8-b823-3f07c988000d/conf.d/downtimes/web-1!Disk!1779a758-8eaa-4f86-abe3-b9ec651121e5.conf"},"start_time":1795391688,"templates":["1779a758-8eaa-4f86-abe3-b9ec651121e5"],"trigger_time":1795391688.991062,"triggered_by":"","triggers":[],"type":"Downtime","version":1795391688.991083,"zone":""},"timestamp":1795391690.814008,"type":"DowntimeRemoved"}
{"acknowledgement":false,"check_result":{"active":false,"check_source":"localhost","command":null,"execution_end":1795391690.876136,"execution_start":1795391690.876136,"exit_status":0,"output":"UP","performance_data":null,"previous_hard_state":2,"schedule_end":1795391690.876136,"schedule_start":1795391690.876136,"scheduling_source":"localhost","state":0,"ttl":0,"type":"CheckResult","vars_after":{"attempt":1,"reachable":true,"state":0,"state_type":1},"vars_before":{"attempt":1,"reachable":true,"state":2,"state_type":1}},"downtime_depth":0,"host":"web-1","timestamp":1795391690.876188,"type":"CheckResult"}
{"acknowledgement":false,"check_result":{"active":false,"check_source":"localhost","command":null,"execution_end":1795391690.876136,"execution_start":1795391690.876136,"exit_status":0,"output":"UP","performance_data":null,"previous_hard_state":2,"schedule_end":1795391690.876136,"schedule_start":1795391690.876136,"scheduling_source":"localhost","state":0,"ttl":0,"type":"CheckResult","vars_after":{"attempt":1,"reachable":true,"state":0,"state_type":1},"vars_before":{"attempt":1,"reachable":true,"state":2,"state_type":1}},"downtime_depth":0,"host":"web-1","state":0,"state_type":1,"timestamp":1795391690.876278,"type":"StateChange"}
"""

# db-1 behind a DOWN parent (Dependency): reachable false; then Flapping for db-1!Flappy.
EVENTS_UNREACHABLE = r"""
{"acknowledgement":false,"check_result":{"active":false,"check_source":"localhost","command":null,"execution_end":1795391755.675602,"execution_start":1795391755.675602,"exit_status":0,"output":"CRITICAL - Host Unreachable (10.0.0.5)","performance_data":null,"previous_hard_state":99,"schedule_end":1795391755.675602,"schedule_start":1795391755.675602,"scheduling_source":"localhost","state":2,"ttl":0,"type":"CheckResult","vars_after":{"attempt":1,"reachable":false,"state":2,"state_type":1},"vars_before":null},"downtime_depth":0,"host":"db-1","timestamp":1795391755.675673,"type":"CheckResult"}
{"acknowledgement":false,"check_result":{"active":false,"check_source":"localhost","command":null,"execution_end":1795391755.675602,"execution_start":1795391755.675602,"exit_status":0,"output":"CRITICAL - Host Unreachable (10.0.0.5)","performance_data":null,"previous_hard_state":99,"schedule_end":1795391755.675602,"schedule_start":1795391755.675602,"scheduling_source":"localhost","state":2,"ttl":0,"type":"CheckResult","vars_after":{"attempt":1,"reachable":false,"state":2,"state_type":1},"vars_before":null},"downtime_depth":0,"host":"db-1","state":1,"state_type":1,"timestamp":1795391755.675777,"type":"StateChange"}
{"flapping_current":11.700000000000001,"host":"db-1","is_flapping":true,"service":"Flappy","state":0,"state_type":1,"threshold_high":10,"threshold_low":5,"timestamp":1795391755.797599,"type":"Flapping"}
"""


def rows(text: str) -> list[dict[str, Any]]:
    """One JSON document per line."""
    return [json.loads(line) for line in text.strip().splitlines()]


def by_name(text: str) -> dict[str, dict[str, Any]]:
    """Recorded objects keyed by their full name (host or host!service)."""
    return {r["name"]: r for r in rows(text)}


T_HTTP, T_DISK, T_HOST, T_UP = 1795391688, 1795391688, 1795391688, 1795391690  # recorded check times


# --- objects -> CheckState ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        (PENDING_OBJECTS, "web-1!Disk", pending("web-1", "Disk")),
        (PENDING_OBJECTS, "web-1", pending("web-1", None)),  # Icinga reads DOWN before any check: still PENDING
        # SOFT WARNING that never was HARD: Icinga's last_hard_state 3 is its initial value, Nagios' is 0.
        (CHECKED_SERVICES, "web-1!Disk", CheckState("web-1", "Disk", 1, 0, 0, True, False, 1, False, T_DISK, T_DISK,
                                                    "WARNING - 91% used", "")),
        (CHECKED_SERVICES, "web-1!HTTP", CheckState("web-1", "HTTP", 2, 1, 2, True, True, 0, False, T_HTTP, T_HTTP,
                                                    "CRITICAL - connection refused", "line two\nline three")),
        (CHECKED_HOSTS, "web-1", CheckState("web-1", None, 1, 1, 1, True, False, 0, False, T_HOST, 0,
                                            "DOWN - no route", "")),
        # DOWN behind a DOWN parent: last_reachable false is Nagios' UNREACHABLE (2).
        (CHECKED_HOSTS, "db-1", CheckState("db-1", None, 2, 1, 2, True, False, 0, False, 1795391755, 0,
                                           "CRITICAL - Host Unreachable (10.0.0.5)", "")),
    ],
)  # fmt: skip
def test_objects_map_to_check_states(text: str, name: str, expected: CheckState) -> None:
    assert check_from_object(by_name(text)[name]) == expected


@pytest.mark.parametrize("junk", [{}, {"attrs": None}, {"type": "Service", "attrs": {"name": "x"}}, {"type": "Host", "attrs": {}}])
def test_malformed_objects_are_skipped(junk: dict[str, Any]) -> None:
    assert check_from_object(junk) is None


def test_sync_counts_downtimes_in_effect_by_time() -> None:
    hosts, services, downtimes = rows(CHECKED_HOSTS), rows(CHECKED_SERVICES), rows(DOWNTIMES)
    during = IcingaState.synced(hosts, services, downtimes, now=1795391700)
    assert during.checks[("web-1", "Disk")].downtime_depth == 1
    assert set(during.checks) == {("web-1", None), ("db-1", None), ("web-1", "Disk"), ("web-1", "HTTP")}
    after_end = IcingaState.synced(hosts, services, downtimes, now=1795395288)
    assert after_end.checks[("web-1", "Disk")].downtime_depth == 0
    data = during.status_data(created=5.0, version="r2.13.6-1")
    assert set(data.hosts) == {"web-1", "db-1"} and set(data.services) == {("web-1", "Disk"), ("web-1", "HTTP")}
    assert (data.created, data.version) == (5.0, "r2.13.6-1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("one line", ("one line", "")), ("a\nb\nc", ("a", "b\nc")), ("a\r\nb", ("a", "b")), ("", ("", "")), (None, ("", ""))],
)
def test_split_output(text: object, expected: tuple[str, str]) -> None:
    assert split_output(text) == expected


# --- events -> updates ----------------------------------------------------------------------------------------


def pending_state() -> IcingaState:
    """The state synced before any check result was submitted."""
    objects = rows(PENDING_OBJECTS)
    return IcingaState.synced([o for o in objects if o["type"] == "Host"], [o for o in objects if o["type"] == "Service"], [], 0)


HTTP, DISK, HOST = ("web-1", "HTTP"), ("web-1", "Disk"), ("web-1", None)

# After each recorded event: (type, changed?, key, fields expected on that check).
EXPECTED_AFTER = [
    ("CheckResult", True, HTTP, {"current_state": 2, "state_type": 1, "last_hard_state": 2, "has_been_checked": True,
                                 "last_check": T_HTTP, "last_state_change": T_HTTP,
                                 "plugin_output": "CRITICAL - connection refused", "long_plugin_output": "line two\nline three"}),
    ("StateChange", False, HTTP, {"current_state": 2}),  # the same result again: nothing new
    ("CheckResult", True, DISK, {"current_state": 1, "state_type": 0, "last_hard_state": 0, "plugin_output": "WARNING - 91% used"}),
    ("StateChange", False, DISK, {"current_state": 1, "state_type": 0}),
    # A host result's own state is a service state (2): the host is DOWN (1).
    ("CheckResult", True, HOST, {"current_state": 1, "state_type": 1, "last_hard_state": 1, "plugin_output": "DOWN - no route"}),
    ("StateChange", False, HOST, {"current_state": 1}),
    ("AcknowledgementSet", True, HTTP, {"acknowledged": True}),
    ("DowntimeAdded", False, DISK, {"downtime_depth": 0}),  # scheduled is not in effect; not even subscribed
    ("DowntimeStarted", True, DISK, {"downtime_depth": 1}),  # fixed: in effect from its start
    ("DowntimeTriggered", False, DISK, {"downtime_depth": 1}),  # the same downtime counts once
    ("AcknowledgementCleared", True, HTTP, {"acknowledged": False}),
    ("DowntimeRemoved", True, DISK, {"downtime_depth": 0}),
    ("CheckResult", True, HOST, {"current_state": 0, "last_hard_state": 0, "last_check": T_UP, "last_state_change": T_UP}),
    ("StateChange", False, HOST, {"current_state": 0}),
]  # fmt: skip


def test_recorded_events_update_checks_in_order() -> None:
    state = pending_state()
    events = rows(EVENTS)
    assert [e["type"] for e in events] == [row[0] for row in EXPECTED_AFTER]
    for i, (event, (_, changed, key, fields)) in enumerate(zip(events, EXPECTED_AFTER, strict=True)):
        assert state.apply(event) is changed, f"event {i} ({event['type']})"
        got = state.checks[key]._asdict()
        assert {k: got[k] for k in fields} == fields, f"after event {i} ({event['type']})"


def test_replaying_events_already_in_a_sync_converges() -> None:
    # Subscribed before the sync: events that the sync already reflects may arrive after it.
    straight = pending_state()
    for event in rows(EVENTS):
        straight.apply(event)
    synced = IcingaState.synced(rows(CHECKED_HOSTS), rows(CHECKED_SERVICES), rows(DOWNTIMES), now=1795391689)
    for event in rows(EVENTS):
        synced.apply(event)
    for key in (HTTP, DISK, HOST):
        assert synced.checks[key] == straight.checks[key]


def test_an_older_result_never_overwrites_a_newer_one() -> None:
    state = pending_state()
    events = rows(EVENTS)
    down, up = events[4], events[12]
    assert state.apply(up)
    assert state.apply(down) is False
    assert state.checks[HOST].current_state == 0 and state.checks[HOST].last_check == T_UP


def test_unreachable_host_and_flapping_events() -> None:
    state = pending_state()
    cr, sc, flap = rows(EVENTS_UNREACHABLE)
    assert state.apply(cr) and state.checks[("db-1", None)].current_state == 2  # new host: created from the result
    state.apply(sc)
    assert state.checks[("db-1", None)].current_state == 2  # StateChange says DOWN (1), reachable false makes it 2
    assert state.apply(flap) is False  # db-1!Flappy has no state yet: nothing to mark
    result = {**rows(EVENTS)[0], "host": "db-1", "service": "Flappy"}
    state.apply(result)
    assert state.apply(flap) and state.checks[("db-1", "Flappy")].flapping is True


def test_flexible_downtime_counts_only_once_triggered() -> None:
    state = pending_state()
    started = next(e for e in rows(EVENTS) if e["type"] == "DowntimeStarted")
    flexible = {**started["downtime"], "fixed": False, "duration": 600, "trigger_time": 0}
    assert state.apply({**started, "downtime": flexible}) is False
    triggered = {**flexible, "trigger_time": 1795391700.5}
    assert state.apply({"type": "DowntimeTriggered", "downtime": triggered})
    assert state.checks[DISK].downtime_depth == 1
    assert state.apply({"type": "DowntimeRemoved", "downtime": triggered})
    assert state.checks[DISK].downtime_depth == 0


@pytest.mark.parametrize(
    "junk",
    [{}, {"type": "CheckResult"}, {"type": "CheckResult", "host": "web-1", "check_result": None},
     {"type": "AcknowledgementSet", "host": "nobody"}, {"type": "DowntimeStarted", "downtime": {"fixed": True}},
     {"type": "CheckResult", "host": 5, "check_result": {}}, {"type": "Flapping", "host": "web-1", "is_flapping": "yes"}],
)  # fmt: skip
def test_junk_events_change_nothing(junk: dict[str, Any]) -> None:
    state = pending_state()
    before = dict(state.checks)
    assert state.apply(junk) is False
    assert state.checks == before


# --- health and backoff ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "now", "reason"),
    [
        (StreamFacts(down_since=0.0), 1.0, "no Icinga 2 data yet"),
        (StreamFacts(down_since=0.0, last_error="HTTP 401 Unauthorized"), 1.0, "no Icinga 2 data yet: HTTP 401 Unauthorized"),
        (StreamFacts(connected=True, data_as_of=50.0), 10_000.0, None),  # connected: fresh, however quiet
        (StreamFacts(down_since=100.0, data_as_of=90.0, last_error="x"), 280.0, None),  # down, not for long yet
        (StreamFacts(down_since=100.0, data_as_of=90.0, last_error="Connection refused"), 281.0,
         "Icinga 2 event stream down since 1970-01-01T00:01:40Z: Connection refused"),
    ],
)  # fmt: skip
def test_stale_only_when_the_stream_is_down_longer_than_stale_after(facts: StreamFacts, now: float, reason: str | None) -> None:
    assert stale_reason(facts, now, stale_after=180) == reason
    health = compute_health(facts, now, 180)
    assert health.stale is (reason is not None) and health.data_created == facts.data_as_of


def test_health_reports_syncs_under_the_names_every_source_shares() -> None:
    facts = StreamFacts(connected=True, data_as_of=50.0, last_sync_seconds=1.5, last_error="HTTP 503",
                        last_error_time=40.0, syncs_total=3, errors_total=2)  # fmt: skip
    assert compute_health(facts, 60.0, 180) == SourceHealth(
        stale=False, data_created=50.0, last_parse_seconds=1.5, last_error="HTTP 503", last_error_time=40.0,
        parses_total=3, errors_total=2,
    )  # fmt: skip


def test_backoff_doubles_from_half_a_second_to_thirty_with_jitter() -> None:
    assert [backoff_delay(n, 0.5) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff_delay(0, 0.0) == pytest.approx(0.4) and backoff_delay(0, 1.0) == pytest.approx(0.6)
    assert backoff_delay(10, 1.0) == 30 and backoff_delay(10**6, 0.0) == 24


# --- configuration edges --------------------------------------------------------------------------------------


def test_password_file_is_read_without_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("s3cret=with spaces \n")
    assert read_password(path) == "s3cret=with spaces "
    path.write_bytes(b"pw\r\n")
    assert read_password(path) == "pw"


@pytest.mark.parametrize("content", [None, b"", b"\n", b"\xff\xfe"])
def test_unreadable_password_file_is_a_config_error(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "pw"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=r"icinga\.password_file: .*pw"):
        read_password(path)


def test_missing_or_bad_ca_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"icinga\.ca_file: cannot load .*missing\.crt: No such file"):
        ssl_context(tmp_path / "missing.crt")
    (tmp_path / "junk.crt").write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"icinga\.ca_file"):
        ssl_context(tmp_path / "junk.crt")
    assert ssl_context(None).verify_mode.name == "CERT_REQUIRED"  # verifies by default


def test_from_config_needs_a_user_and_a_password_file() -> None:
    with pytest.raises(ConfigError, match="icinga.password_file: required"):
        IcingaSource.from_config(web_config(icinga_url="https://127.0.0.1:5665", icinga_user="u"), lambda: None)
    with pytest.raises(ConfigError, match="icinga.user: required"):
        IcingaSource.from_config(web_config(icinga_url="https://127.0.0.1:5665"), lambda: None)


# --- the edge against a local fake serving recorded answers ---------------------------------------------------

PASSWORD = "pa55-w0rd-that-must-never-be-logged"
WAIT = HANG_GUARD  # every wait on the fake or the real Icinga: reached only if something hangs


class FakeIcinga:
    """Answers the bridge's queries with recorded objects and streams the events a test pushes."""

    def __init__(self) -> None:
        self.objects = {"hosts": rows(CHECKED_HOSTS), "services": rows(CHECKED_SERVICES), "downtimes": rows(DOWNTIMES)}
        self.requests: list[tuple[str, str, list[tuple[str, str]], dict[str, str], Any]] = []
        self.streams: list[asyncio.Queue[str | None]] = []
        self.fail_with: int | None = None  # answer every request with this status (503: "restarting")
        self.fail_gets_only = False
        self.app = web.Application()
        self.app.router.add_get("/v1/objects/{kind}", self._objects)
        self.app.router.add_post("/v1/events", self._events)

    def _failure(self, request: web.Request) -> web.Response | None:
        """Icinga's JSON error answer when failing is switched on."""
        if self.fail_with is None or (self.fail_gets_only and request.method != "GET"):
            return None
        status = "Unauthorized. Please check your user credentials." if self.fail_with == 401 else "Unavailable"
        return web.json_response({"error": self.fail_with, "status": status}, status=self.fail_with)

    async def _objects(self, request: web.Request) -> web.Response:
        self.requests.append(("GET", request.path, list(request.query.items()), dict(request.headers), None))
        if (failed := self._failure(request)) is not None:
            return failed
        if request.query.get("filter") == "false":
            return web.json_response({"results": []})
        return web.json_response({"results": self.objects[request.match_info["kind"]]})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(("POST", request.path, [], dict(request.headers), body))
        if (failed := self._failure(request)) is not None:
            return failed
        resp = web.StreamResponse(headers={"Content-Type": "application/json", "Server": "Icinga/r2.13.6-1"})
        await resp.prepare(request)
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.streams.append(queue)
        while (line := await queue.get()) is not None:
            await resp.write(line.encode() + b"\n")
        return resp

    def push(self, line: str) -> None:
        """Send one line on the newest stream."""
        self.streams[-1].put_nowait(line)

    def close_streams(self) -> None:
        """End every open stream, as Icinga does when it stops."""
        for queue in self.streams:
            queue.put_nowait(None)

    def count(self, method: str, path: str) -> int:
        """How many such requests arrived."""
        return sum(1 for r in self.requests if r[0] == method and r[1] == path)


@pytest.fixture
async def fake(aiohttp_server: Any) -> AsyncIterator[tuple[FakeIcinga, str]]:
    """A fake Icinga on 127.0.0.1 (plain HTTP: TLS is exercised against the real one)."""
    icinga = FakeIcinga()
    server = await aiohttp_server(icinga.app)
    yield icinga, str(server.make_url("/")).rstrip("/")
    icinga.close_streams()  # let the streaming handlers end before the server shuts down


async def eventually(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll probe until truthy (returning it) or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not (result := probe()):
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)
    return result


@asynccontextmanager
async def running(source: IcingaSource) -> AsyncIterator[asyncio.Task[None]]:
    """source.run() in a task, cancelled and awaited on exit."""
    task = asyncio.create_task(source.run())
    try:
        yield task
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def make_source(url: str, listener: Callable[[IcingaSource], None] | None = None, **kw: Any) -> tuple[IcingaSource, list[float]]:
    """A source on url with fast test timings; the list collects on_change call times, listener(source) runs too."""
    calls: list[float] = []
    opts: dict[str, Any] = {"stale_after": 5.0, "min_gap": 0.01, "rand": lambda: 0.5}
    opts.update(kw)

    def on_change() -> None:
        calls.append(time.monotonic())
        if listener is not None:
            listener(source)

    source = IcingaSource(url, "bridge", PASSWORD, None, on_change, **opts)
    return source, calls


def publish_to(live: Live) -> Callable[[IcingaSource], None]:
    """A listener handing the source's data to live, as the app's Sources does."""
    return lambda source: live.update_source(SourceView("icinga", source.current, source.health(source.clock())))


def http_result(state: int, when: float, output: str) -> dict[str, Any]:
    """The recorded CheckResult event of web-1!HTTP with another state, time and output."""
    event = rows(EVENTS)[0]
    event["check_result"] = {**event["check_result"], "state": state, "execution_end": when, "output": output}
    return event


def website(live: Live) -> str:
    """The shown status of web_config's "website" component (web-1!HTTP and HTTPS)."""
    return next(c.status.value for g in live.snapshot.groups for c in g.components if c.id == "website")


async def test_subscribes_then_syncs_then_follows_events(fake: tuple[FakeIcinga, str]) -> None:
    icinga, url = fake
    source, calls = make_source(url)
    async with running(source):
        await eventually(lambda: source.current is not None, WAIT, "first sync")
        data = source.current
        assert data.services[("web-1", "HTTP")].current_state == 2 and data.hosts["db-1"].current_state == 2
        assert data.version == "Icinga/r2.13.6-1" and calls
        # The subscription comes first, so nothing between the sync and the stream is lost.
        assert [(r[0], r[1]) for r in icinga.requests[:4]] == [
            ("POST", "/v1/events"), ("GET", "/v1/objects/hosts"), ("GET", "/v1/objects/services"),
            ("GET", "/v1/objects/downtimes"),
        ]  # fmt: skip
        _method, _, _, headers, body = icinga.requests[0]
        assert re.fullmatch(r"status-bridge-\d+-[0-9a-f]{8}", body["queue"]) and body["types"] == list(EVENT_TYPES)
        assert headers["Accept"] == "application/json"
        assert headers["Authorization"] == "Basic " + base64.b64encode(f"bridge:{PASSWORD}".encode()).decode()
        for request, attrs in zip(icinga.requests[1:4], (HOST_ATTRS, SERVICE_ATTRS, DOWNTIME_ATTRS), strict=True):
            assert [v for k, v in request[2] if k == "attrs"] == list(attrs)

        host_up = rows(EVENTS)[12]
        icinga.push("this is not JSON")  # skipped, the stream goes on
        icinga.push(json.dumps(host_up))
        await eventually(lambda: source.current.hosts["web-1"].current_state == 0, WAIT, "event applied")
        assert source.facts.connected and source.facts.errors_total == 0


async def test_stream_loss_goes_stale_after_stale_after_then_reconnects_and_resyncs(fake: tuple[FakeIcinga, str]) -> None:
    icinga, url = fake
    now = [float(T_UP)]  # the source's clock, moved by the test: stale_after is measured on it, not on the machine
    source, _ = make_source(url, stale_after=60.0, backoff_cap=0.1, clock=lambda: now[0])
    async with running(source):
        await eventually(lambda: source.facts.connected, WAIT, "first sync")
        icinga.fail_with = 503  # Icinga is restarting: the stream ends and reconnects are refused
        icinga.close_streams()
        await eventually(lambda: not source.facts.connected, WAIT, "loss noticed")
        await eventually(lambda: "HTTP 503" in (source.facts.last_error or ""), WAIT, "a reconnect refused")
        lost = source.facts.down_since
        assert lost == now[0]
        now[0] = lost + 60.0
        assert not source.health(source.clock()).stale  # an outage up to stale_after is not news
        now[0] = lost + 60.5
        health = source.health(source.clock())
        assert health.stale and health.reason is not None
        assert health.reason.startswith("Icinga 2 event stream down since ") and "HTTP 503" in health.reason
        assert source.current.services[("web-1", "HTTP")].current_state == 2  # the last known state is kept
        icinga.objects["services"][1]["attrs"]["state"] = 0  # changed while we were away
        icinga.fail_with = None
        await eventually(lambda: source.facts.connected, WAIT, "reconnected")
        assert not source.health(source.clock()).stale
        assert source.current.services[("web-1", "HTTP")].current_state == 0  # re-synced
        assert icinga.count("GET", "/v1/objects/services") == 2 and len(icinga.streams) == 2


async def test_a_silently_dead_stream_is_noticed_by_the_heartbeat(fake: tuple[FakeIcinga, str]) -> None:
    icinga, url = fake
    source, _ = make_source(url, stale_after=0.6, backoff_cap=0.1)
    async with running(source):
        await eventually(lambda: source.facts.connected, WAIT, "first sync")
        icinga.fail_with, icinga.fail_gets_only = 503, True  # the stream stays open but says nothing
        await eventually(lambda: not source.facts.connected, WAIT, "heartbeat failure noticed")
        await eventually(lambda: source.health(source.clock()).stale, WAIT, "stale")


async def test_unauthorized_is_reported_and_the_password_never_logged(fake: tuple[FakeIcinga, str], caplog: pytest.LogCaptureFixture) -> None:
    icinga, url = fake
    icinga.fail_with = 401
    caplog.set_level(logging.DEBUG)
    source, calls = make_source(url)
    async with running(source):
        await eventually(lambda: calls, WAIT, "first attempt reported")
        health = source.health(source.clock())
        assert health.stale and health.reason == "no Icinga 2 data yet: HTTP 401 Unauthorized. Please check your user credentials."
        assert source.current is None
    assert "401" in caplog.text and PASSWORD not in caplog.text


async def test_app_publishes_the_icinga_source(fake: tuple[FakeIcinga, str], aiohttp_client: Any, tmp_path: Path) -> None:
    _, url = fake
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    config = dataclasses.replace(web_config(), icinga_url=url, icinga_user="bridge", icinga_password_file=tmp_path / "pw")
    client = await aiohttp_client(make_app(Settings(config)))
    body = await (await client.get("/api/services.json")).json()  # start-up waited for the first sync
    assert body["stale"] is False
    website, database = (g["services"][0] for g in body["groups"])
    assert website["status"] == "down"  # web-1!HTTP CRITICAL 
    assert database["status"] == "nodata"  # the recording has no db-1!PostgreSQL


async def test_publishes_are_prepared_in_a_worker_thread_while_the_loop_keeps_running(fake: tuple[FakeIcinga, str]) -> None:
    icinga, url = fake
    live = Live(web_config())
    prepared: list[StatusData] = []

    def prepare(data: StatusData) -> None:
        prepared.append(data)
        live.prepare(data)

    # The sync's prepare (as preparing 100k checks would) stays in progress until the loop has run meanwhile.
    prepare_held = Held(prepare)
    source, _ = make_source(url, publish_to(live), prepare=prepare_held, stale_after=30.0)
    async with running(source) as task:
        await prepare_held.serve_loop_meanwhile(task)
        await eventually(lambda: source.current is not None, WAIT, "first sync")
        assert website(live) == "down"  # web-1 DOWN, web-1!HTTP CRITICAL
        icinga.push(json.dumps(rows(EVENTS)[12]))  # web-1 UP
        icinga.push(json.dumps(http_result(0, T_UP + 1, "HTTP OK")))
        await eventually(lambda: website(live) == "up", WAIT, "events published")
    prepare_held.assert_loop_ran_meanwhile()
    # The sync and the events were prepared off the loop, and what was published is exactly what was prepared.
    assert len(prepare_held.threads) >= 2 and prepare_held.loop_thread not in prepare_held.threads
    assert live.sources["icinga"].data is prepared[-1]


class GatedGap:
    """bridge.icinga's asyncio, except that each sleep of the publish gap (min_gap or longer) waits for open()."""

    def __init__(self, min_gap: float, log: list[str]) -> None:
        self.min_gap, self.log = min_gap, log
        self._opened = asyncio.Semaphore(0)

    def __getattr__(self, name: str) -> Any:
        """Everything else is asyncio's own."""
        return getattr(asyncio, name)

    async def sleep(self, delay: float, result: Any = None) -> Any:
        """A gap waits until the test opens it; the shorter sleeps (backoff, staleness watch) are real."""
        if delay < self.min_gap:
            return await asyncio.sleep(delay, result)
        self.log.append("gap")
        await self._opened.acquire()
        return result

    def open(self) -> None:
        """End one gap."""
        self.log.append("gap opened")
        self._opened.release()


async def test_a_burst_of_events_makes_one_rebuild_after_the_gap(
    fake: tuple[FakeIcinga, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    icinga, url = fake
    log: list[str] = []  # publishes and gaps, in order
    published: list[StatusData | None] = []

    def record(source: IcingaSource) -> None:
        if not published or published[-1] is not source.current:
            published.append(source.current)
            log.append("published")

    gap = GatedGap(3600.0, log)
    monkeypatch.setattr(icinga_module, "asyncio", gap)
    source, _ = make_source(url, record, min_gap=gap.min_gap, stale_after=30.0)

    def http_state() -> int:
        return source.current.services[("web-1", "HTTP")].current_state

    async with running(source):
        await eventually(lambda: source.current is not None, WAIT, "first sync")
        first = len(log)
        icinga.push(json.dumps(http_result(0, T_HTTP + 1, "HTTP OK")))
        await eventually(lambda: "published" in log[first:], WAIT, "first event")
        # A lone event is published at once, not after a gap (none has ended yet); the gap starts right after.
        assert log[first:] == ["published", "gap"] and http_state() == 0
        for i in range(2, 30):  # a burst: alternating states, each newer than the last
            icinga.push(json.dumps(http_result(i % 2 * 2, T_HTTP + i, f"result {i}")))
        checks = source.state.checks
        await eventually(lambda: checks[("web-1", "HTTP")].plugin_output == "result 29", WAIT, "burst applied")
        assert log[first:] == ["published", "gap"] and http_state() == 0  # all of it waits for the gap
        gap.open()
        await eventually(lambda: len(log) - first > 3, WAIT, "the rebuild after the gap")
    # The whole burst in one rebuild, and only once the gap had ended.
    assert log[first:] == ["published", "gap", "gap opened", "published", "gap"]
    assert http_state() == 2  # the last result of the burst (CRITICAL) is the one shown


# --- a real Icinga 2 ------------------------------------------------------------------------------------------

SERVICES = {"web-1": ["HTTP", "HTTPS"], "db-1": ["PostgreSQL"]}  # what tests.conftest.web_config maps
STALE_AFTER = 3.0


@pytest.fixture(scope="module")
def icinga_instance() -> Iterator[Icinga]:
    """One Icinga 2 with web_config's objects for this module (its CA takes seconds to make), always removed."""
    instance = Icinga(SERVICES)
    try:
        yield instance
    finally:
        instance.cleanup()


@pytest.fixture
def icinga(icinga_instance: Icinga) -> Icinga:
    """The module's Icinga 2, running (a test may stop it)."""
    if icinga_instance.proc is None:
        icinga_instance.start()
    return icinga_instance


async def wait_feed(client: Any, probe: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
    """Poll /api/services.json until probe(body) holds; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        body = await (await client.get("/api/services.json")).json()
        if probe(body):
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"feed not {what} within {timeout} s: {json.dumps(body)[:1500]}")
        await asyncio.sleep(0.1)


def statuses(body: dict[str, Any]) -> dict[str, str]:
    """Component id -> shown status."""
    return {s["id"]: s["status"] for g in body["groups"] for s in g["services"]}


CONNECTED, RECONNECTS = ("status_bridge_icinga_connected", ()), ("status_bridge_icinga_reconnects_total", ())


async def scrape(client: Any) -> Samples:
    """GET /metrics, parsed."""
    resp = await client.get("/metrics")
    assert resp.status == 200
    return metric_samples(await resp.text())


@pytest.mark.real
async def test_bridge_follows_a_real_icinga(icinga: Icinga, aiohttp_client: Any) -> None:
    for host, services in SERVICES.items():
        await asyncio.to_thread(icinga.submit, host, None, 0, "UP")
        for service in services:
            await asyncio.to_thread(icinga.submit, host, service, 0, f"{service} OK")
    config = dataclasses.replace(
        web_config(), icinga_url=icinga.url, icinga_user=API_USER, icinga_password_file=icinga.password_file,
        icinga_ca_file=icinga.ca_file, icinga_stale_after=STALE_AFTER,
    )  # fmt: skip
    client = await aiohttp_client(make_app(Settings(config)))
    # Start-up waited for the first sync over TLS, verified against Icinga's own CA.
    body = await wait_feed(client, lambda b: statuses(b) == {"website": "up", "database": "up"}, WAIT, "synced")
    assert body["stale"] is False
    metrics = await scrape(client)
    assert metrics[CONNECTED] == 1.0 and by_source(metrics, "status_bridge_source_stale") == {"icinga": 0.0}
    assert ("status_bridge_parses_total", ()) not in metrics  # status.dat's own families: no status.dat here

    await asyncio.to_thread(icinga.submit, "web-1", "HTTP", 2, "CRITICAL - connection refused\nsecond line")
    await wait_feed(client, lambda b: statuses(b)["website"] == "down", WAIT, "down from the event stream")

    await asyncio.to_thread(icinga.schedule_downtime, "db-1", "PostgreSQL")
    await asyncio.to_thread(icinga.submit, "db-1", "PostgreSQL", 2, "CRITICAL - too many connections")
    await wait_feed(client, lambda b: statuses(b)["database"] == "maintenance", WAIT, "in maintenance")

    stopped = time.monotonic()
    await asyncio.to_thread(icinga.stop)
    body = await wait_feed(client, lambda b: b["stale"], WAIT, "stale after Icinga stopped")
    assert time.monotonic() - stopped >= STALE_AFTER - 0.5  # not at the first hiccup
    assert "Icinga 2 event stream down since" in body["stale_reason"]
    assert statuses(body) == {"website": "down", "database": "maintenance"}  # last known, not invented "down"
    metrics = await scrape(client)
    assert metrics[CONNECTED] == 0.0 and metrics[RECONNECTS] >= 1.0
    assert by_source(metrics, "status_bridge_source_stale") == {"icinga": 1.0}
    assert metrics[("status_bridge_icinga_events_total", (("type", "CheckResult"),))] >= 1.0

    await asyncio.to_thread(icinga.start)  # same port, same retained state
    body = await wait_feed(client, lambda b: not b["stale"], WAIT, "fresh again after Icinga came back")
    assert statuses(body) == {"website": "down", "database": "maintenance"}
    metrics = await scrape(client)
    assert metrics[CONNECTED] == 1.0 and by_source(metrics, "status_bridge_source_stale") == {"icinga": 0.0}


@pytest.mark.real
async def test_tls_is_verified_against_a_real_icinga(icinga: Icinga) -> None:
    # Icinga's certificate names "localhost": by IP address, or without its CA, the connection must fail.
    for url, ca_file, expected in [
        (f"https://127.0.0.1:{icinga.port}", icinga.ca_file, "IP address mismatch"),
        (icinga.url, None, "certificate verify failed"),
    ]:
        source = IcingaSource(url, API_USER, icinga.password, ca_file, lambda: None, stale_after=5)
        async with running(source):
            await eventually(lambda s=source: s.facts.errors_total, WAIT, f"TLS failure for {url}")
        error = source.facts.last_error or ""
        assert expected in error and "Icinga's NodeName" in error and source.current is None


@pytest.mark.real
async def test_a_real_icinga_sync_and_its_events_are_prepared_off_the_loop(icinga: Icinga) -> None:
    for host, services in SERVICES.items():
        await asyncio.to_thread(icinga.submit, host, None, 0, "UP")
        for service in services:
            await asyncio.to_thread(icinga.submit, host, service, 0, f"{service} OK")
    live, loop_thread = Live(web_config()), threading.get_ident()
    threads: list[int] = []

    def prepare(data: StatusData) -> None:
        threads.append(threading.get_ident())
        live.prepare(data)

    listener = publish_to(live)
    source = IcingaSource(icinga.url, API_USER, icinga.password, icinga.ca_file, lambda: listener(source),
                          stale_after=STALE_AFTER, prepare=prepare)  # fmt: skip
    async with running(source):
        await eventually(lambda: website(live) == "up", WAIT, "synced")
        synced = len(threads)
        await asyncio.to_thread(icinga.submit, "web-1", "HTTP", 2, "CRITICAL - connection refused")
        await eventually(lambda: website(live) == "down", WAIT, "down from the event stream")
    assert synced >= 1 and len(threads) > synced and loop_thread not in threads
