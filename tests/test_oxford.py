"""The Oxford-compatible feeds: exact shape, codes and names, time format, JSON-native types."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from bridge.aggregate import aggregate
from bridge.config import CheckPattern, Component, Config, Group
from bridge.model import (
    CheckState,
    ComponentView,
    GroupView,
    Snapshot,
    SourceHealth,
    Status,
    StatusData,
)
from bridge.notices import Notice, NoticeUpdate, Override
from bridge.render.oxford import announcements_feed, iso_utc, services_feed
from bridge.status_rules import group_status
from tests.conftest import snapshot_of

UP, PARTIAL, DOWN = Status.UP, Status.PARTIAL, Status.DOWN
MAINT, NODATA = Status.MAINTENANCE, Status.NODATA
HEALTH = SourceHealth(stale=False, data_created=1_700_000_000.0)


def view(id: str, status: Status, monitored: Status | None = None, description: str = "") -> ComponentView:
    """A component view in group "g"."""
    return ComponentView(id, id.title(), "g", description, status, monitored or status, 1)


def snapshot(*groups: GroupView, created: float | None = 1_700_000_000.0, stale: bool = False,
             reason: str | None = None) -> Snapshot:
    """A Snapshot of the given groups (page state by the real rule)."""
    return snapshot_of(groups, page_name="Example status", page_url="https://status.example.org",
                       generated=1_700_000_030.0, created=created, stale=stale, reason=reason)


def test_services_feed_exact_shape() -> None:
    groups = (
        GroupView("web", "Web", "Sites", PARTIAL, (view("site", DOWN, description="Public site"), view("mail", UP))),
        GroupView("data", "Data", "", MAINT, (view("db", MAINT, monitored=DOWN),)),
    )
    feed = services_feed(snapshot(*groups))
    assert feed == {
        "overall_status_code": 1,
        "overall_status_name": "Some problems reported",
        "last_updated": "2023-11-14T22:13:20Z",
        "stale": False,
        "stale_reason": None,
        "page_state": "minor",
        "partly_stale": False,
        "page": {"name": "Example status", "url": "https://status.example.org"},
        "groups": [
            {"id": "web", "name": "Web", "status_code": 1, "status_name": "Partial", "status": "partial",
             "description": "Sites", "services": [
                 {"id": "site", "name": "Site", "status_code": 2, "status_name": "Down", "status": "down",
                  "monitored_status": "down", "stale": False, "description": "Public site", "override": None},
                 {"id": "mail", "name": "Mail", "status_code": 0, "status_name": "Up", "status": "up",
                  "monitored_status": "up", "stale": False, "description": "", "override": None},
             ]},
            {"id": "data", "name": "Data", "status_code": 1, "status_name": "Maintenance", "status": "maintenance",
             "description": "", "services": [
                 {"id": "db", "name": "Db", "status_code": 1, "status_name": "Maintenance", "status": "maintenance",
                  "monitored_status": "down", "stale": False, "description": "", "override": None},
             ]},
        ],
    }
    # Oxford's own keys come first, in its order; extras follow.
    assert list(feed) == ["overall_status_code", "overall_status_name", "last_updated", "stale",
                          "stale_reason", "page_state", "partly_stale", "page", "groups"]
    assert list(feed["groups"][0])[:4] == ["id", "name", "status_code", "status_name"]
    assert list(feed["groups"][0]["services"][0])[:4] == ["id", "name", "status_code", "status_name"]


@pytest.mark.parametrize("status, code, name", [
    (UP, 0, "Up"),
    (PARTIAL, 1, "Partial"),
    (DOWN, 2, "Down"),
    (MAINT, 1, "Maintenance"),
    (NODATA, 1, "No data"),  # never 0 ("Up" to a widget) nor 2 (an outage): we cannot vouch for it
])
def test_status_codes_and_names(status: Status, code: int, name: str) -> None:
    feed = services_feed(snapshot(GroupView("g", "G", "", status, (view("c", status),))))
    group, service = feed["groups"][0], feed["groups"][0]["services"][0]
    assert (group["status_code"], group["status_name"], group["status"]) == (code, name, status.value)
    assert (service["status_code"], service["status_name"], service["status"]) == (code, name, status.value)


@pytest.mark.parametrize("groups, state, code, name", [
    ([[UP], [UP, NODATA]], "operational", 0, "Systems running smoothly"),
    ([[UP], [PARTIAL]], "minor", 1, "Some problems reported"),
    ([[UP], [UP, DOWN]], "minor", 1, "Some problems reported"),
    ([[DOWN], [DOWN], [NODATA]], "major", 2, "Major problems reported"),
    ([[UP, MAINT], [UP]], "maintenance", 1, "Scheduled maintenance in progress"),
    ([[NODATA], [NODATA]], "unknown", 1, "Status unknown: nothing has been checked yet"),
])
def test_overall_status(groups: list[list[Status]], state: str, code: int, name: str) -> None:
    views = tuple(GroupView(f"g{i}", "G", "", group_status(ss), tuple(view(f"c{i}{j}", s) for j, s in enumerate(ss)))
                  for i, ss in enumerate(groups))
    feed = services_feed(snapshot(*views))
    assert (feed["overall_status_code"], feed["overall_status_name"], feed["page_state"]) == (code, name, state)


@pytest.mark.parametrize("created, expected", [
    (1_700_000_000.0, "2023-11-14T22:13:20Z"),
    (1_700_000_000.75, "2023-11-14T22:13:20Z"),  # Icinga writes a float: seconds are enough
    (0.0, "1970-01-01T00:00:00Z"),
    (None, None),
    (float("nan"), None),
    (float("inf"), None),
    (1e20, None),  # corrupt input must not break the feed
])
def test_last_updated(created: float | None, expected: str | None) -> None:
    assert iso_utc(created) == expected
    assert services_feed(snapshot(created=created))["last_updated"] == expected


def test_stale_fields() -> None:
    feed = services_feed(snapshot(stale=True, reason="status.dat missing"))
    assert (feed["stale"], feed["stale_reason"]) == (True, "status.dat missing")


def assert_json_native(value: Any) -> None:
    """Only exact JSON types: a str-enum or tuple would encode differently in other encoders."""
    assert type(value) in (dict, list, str, int, float, bool, type(None)), type(value)
    if isinstance(value, dict):
        for k, v in value.items():
            assert type(k) is str
            assert_json_native(v)
    elif isinstance(value, list):
        for v in value:
            assert_json_native(v)


def test_feed_from_aggregate_round_trips() -> None:
    def check(host: str, service: str | None, state: int) -> CheckState:
        return CheckState(host, service, state, 1, state, True, False, 0, False, 0, 0, "out", "")

    data = StatusData(1_700_000_000.0, "4.4.6", {"web": check("web", None, 0)},
                      {("web", "HTTP"): check("web", "HTTP", 2), ("web", "SMTP"): check("web", "SMTP", 0)})
    config = Config(page_name="Ünïcode status", groups=(Group("g", "G", components=(
        Component("site", "Site", "g", checks=(CheckPattern("web", "HTTP"),)),
        Component("mail", "Mail", "g", checks=(CheckPattern("web", "SMTP"),)),
        Component("none", "None", "g", checks=(CheckPattern("nowhere"),)),
    )),))
    feed = services_feed(aggregate(data, HEALTH, config, 1_700_000_030.0, overrides={"mail": MAINT}))
    assert_json_native(feed)
    assert json.loads(json.dumps(feed)) == feed
    services = {s["id"]: (s["status_code"], s["status_name"], s["monitored_status"]) for s in feed["groups"][0]["services"]}
    assert services == {"site": (2, "Down", "down"), "mail": (1, "Maintenance", "up"), "none": (1, "No data", "nodata")}
    assert (feed["groups"][0]["status_code"], feed["overall_status_code"]) == (1, 1)


def test_feed_without_data() -> None:
    config = Config(groups=(Group("g", "G", components=(Component("c", "C", "g"),)),))
    feed = services_feed(aggregate(None, SourceHealth(stale=True, reason="no data yet"), config, 0.0))
    assert (feed["last_updated"], feed["stale"], feed["overall_status_code"]) == (None, True, 1)
    assert (feed["page_state"], feed["overall_status_name"]) == ("unknown", "Status unknown: no monitoring data yet")
    assert feed["groups"][0]["services"][0]["status_name"] == "No data"
    assert_json_native(feed)


def test_announcements_feed_is_empty_list() -> None:
    assert announcements_feed(snapshot()) == []
    assert json.dumps(announcements_feed(snapshot())) == "[]"


# --- notices and overrides in the Oxford feeds ---

NOW = 1_700_000_030.0  # snapshot().generated_at


def notice(id: int, type: str = "unplanned", state: str = "investigating", subject: str = "Subject",
           began_at: float | None = None, ended_at: float | None = None, begins_at: float | None = None,
           ends_at: float | None = None, updated_at: float = NOW - 10, contents: tuple[str, ...] = ("Looking",)) -> Notice:
    """A notice with one update per content (all in the notice's state)."""
    ups = tuple(NoticeUpdate(i, id, state, c, NOW - 100 + i, NOW - 100 + i) for i, c in enumerate(contents))
    return Notice(id, type, state, subject, "s", began_at, ended_at, begins_at, ends_at, NOW - 1000, updated_at,
                  ("site",), ups)


def with_notices(*notices: Notice, overrides: tuple[Override, ...] = ()) -> Snapshot:
    """snapshot() carrying notices and overrides."""
    groups = (GroupView("g", "G", "", MAINT, (view("site", MAINT, monitored=UP), view("mail", UP))),)
    return dataclasses.replace(snapshot(*groups), notices=notices, overrides=overrides)


def test_announcements_list_present_and_future_ordered_by_start() -> None:
    feed = announcements_feed(with_notices(
        notice(1, began_at=NOW - 600, subject="Mail slow", contents=("Looking", "Found it")),
        notice(2, "planned", "scheduled", "Upgrade", begins_at=NOW + 3600, ends_at=NOW + 7200, contents=("Soon",)),
        notice(3, "planned", "underway", "Disk swap", began_at=NOW - 1200, begins_at=NOW - 1200, ends_at=None),
        notice(4, state="resolved", began_at=NOW - 9000, ended_at=NOW - 60),  # past_recent: not listed
        notice(5, "planned", "complete", began_at=NOW - 9000, ended_at=NOW - 100 * 86400),  # past_distant
    ))
    assert feed == [
        {"start_time": iso_utc(NOW - 1200), "end_time": None, "message": "Disk swap: Looking",
         "last_modified": iso_utc(NOW - 10)},
        {"start_time": iso_utc(NOW - 600), "end_time": None, "message": "Mail slow: Found it",
         "last_modified": iso_utc(NOW - 10)},
        {"start_time": iso_utc(NOW + 3600), "end_time": iso_utc(NOW + 7200), "message": "Upgrade: Soon",
         "last_modified": iso_utc(NOW - 10)},
    ]
    assert_json_native(feed)
    assert all(v is None or v.endswith("Z") for a in feed for k, v in a.items() if k != "message")


def test_announcement_without_update_is_just_the_subject() -> None:
    feed = announcements_feed(with_notices(notice(1, began_at=NOW - 5, subject="Odd", contents=())))
    assert feed[0]["message"] == "Odd"


def test_announcement_prefers_actual_times_over_planned_ones() -> None:
    n = notice(1, "planned", "underway", "Move", began_at=NOW - 50, begins_at=NOW - 60, ends_at=NOW + 600)
    assert announcements_feed(with_notices(n))[0]["start_time"] == iso_utc(NOW - 50)
    assert announcements_feed(with_notices(n))[0]["end_time"] == iso_utc(NOW + 600)


def test_services_show_the_active_override_beside_the_monitored_status() -> None:
    overrides = (
        Override(1, "site", MAINT, NOW - 60, NOW + 3600, "Ticket 4711", NOW - 100, "Moving racks"),
        Override(2, "mail", DOWN, NOW + 60, None, "Not yet", NOW - 100, "Soon"),  # not started: no override object
    )
    services = services_feed(with_notices(overrides=overrides))["groups"][0]["services"]
    assert services[0]["status"] == "maintenance" and services[0]["monitored_status"] == "up"
    assert services[0]["override"] == {"status": "maintenance", "message": "Moving racks", "ends_at": iso_utc(NOW + 3600)}
    assert services[1]["override"] is None


@pytest.mark.parametrize("message", ["Until further notice", None])
def test_open_ended_override_has_null_ends_at_and_never_the_reason(message: str | None) -> None:
    overrides = (Override(1, "site", MAINT, NOW - 60, None, "Private: ticket 4711", NOW - 100, message),)
    site = services_feed(with_notices(overrides=overrides))["groups"][0]["services"][0]
    assert site["override"] == {"status": "maintenance", "message": message, "ends_at": None}
