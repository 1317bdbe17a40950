"""State semantics, component/group/page rules and the Snapshot built by bridge.aggregate."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import aggregate as agg
from bridge import matching
from bridge.aggregate import aggregate
from bridge.config import CheckPattern, Component, Config, Group
from bridge.matching import Matcher
from bridge.model import CheckState, SourceHealth, Status, StatusData
from bridge.status_rules import check_status, combine, group_status
from tests.conftest import record_threads

UP, PARTIAL, DOWN = Status.UP, Status.PARTIAL, Status.DOWN
MAINT, NODATA = Status.MAINTENANCE, Status.NODATA
SMOOTH, SOME, MAJOR = "Systems running smoothly", "Some problems reported", "Major problems reported"
FRESH = SourceHealth(stale=False, data_created=1_700_000_000.0)
RANK = {UP: 0, MAINT: 1, PARTIAL: 2, DOWN: 3}


def cs(host: str = "h", service: str | None = "s", state: int = 0, *, hard: bool = True,
       last_hard: int | None = None, checked: bool = True, downtime: int = 0, **kw: Any) -> CheckState:
    """A CheckState; a SOFT one keeps last_hard (default OK) as its last HARD state."""
    fields: dict[str, Any] = dict(
        host=host, service=service, current_state=state, state_type=1 if hard else 0,
        last_hard_state=(state if hard else 0) if last_hard is None else last_hard,
        has_been_checked=checked, acknowledged=False, downtime_depth=downtime, flapping=False,
        last_check=0, last_state_change=0, plugin_output="", long_plugin_output="",
    )
    fields.update(kw)
    return CheckState(**fields)


def hst(state: int = 0, **kw: Any) -> CheckState:
    """A host check for host "h"."""
    return cs("h", None, state, **kw)


def comp(id: str = "c", *patterns: CheckPattern, **kw: Any) -> Component:
    """A component in group "g"."""
    return Component(id=id, name=id.upper(), group_id="g", checks=patterns, **kw)


@pytest.mark.parametrize("check, host, options, expected", [
    pytest.param(cs(state=0), hst(), {}, UP, id="ok"),
    pytest.param(cs(state=1), hst(), {}, PARTIAL, id="warning"),
    pytest.param(cs(state=2), hst(), {}, DOWN, id="critical"),
    pytest.param(cs(state=3), hst(), {}, PARTIAL, id="unknown"),
    pytest.param(cs(state=2), None, {}, DOWN, id="no-host-block"),
    pytest.param(cs(state=2, hard=False), hst(), {}, UP, id="soft-critical-keeps-hard-ok"),
    pytest.param(cs(state=1, hard=False, last_hard=2), hst(), {}, DOWN, id="soft-warning-keeps-hard-critical"),
    pytest.param(cs(state=2, hard=False), hst(), {"soft_states": True}, DOWN, id="soft-states-option"),
    pytest.param(cs(state=0, checked=False), hst(), {}, NODATA, id="pending"),
    pytest.param(cs(state=0, checked=False), hst(), {"states": {"pending": UP}}, UP, id="pending-mapped"),
    pytest.param(cs(state=2, downtime=1), hst(), {}, MAINT, id="service-downtime"),
    pytest.param(cs(state=2), hst(downtime=2), {}, MAINT, id="host-downtime"),
    pytest.param(cs(state=0), hst(1), {}, DOWN, id="host-down-dominates"),
    pytest.param(cs(state=0), hst(2), {}, DOWN, id="host-unreachable"),
    pytest.param(cs(state=0), hst(2), {"states": {"host_unreachable": PARTIAL}}, PARTIAL, id="host-unreachable-mapped"),
    pytest.param(cs(state=0, checked=False), hst(1), {}, DOWN, id="host-down-beats-pending"),
    pytest.param(cs(state=0), hst(1, hard=False), {}, UP, id="host-soft-down-ignored"),
    pytest.param(cs(state=0), hst(1, hard=False), {"soft_states": True}, DOWN, id="host-soft-down-soft-states"),
    pytest.param(cs(state=2), hst(0, hard=False, last_hard=1), {}, DOWN, id="host-soft-up-keeps-hard-down"),
    pytest.param(cs(state=0), hst(1, checked=False), {}, UP, id="host-pending-ignored"),
    pytest.param(cs(state=0), hst(7), {}, UP, id="host-corrupt-state-ignored"),
    pytest.param(cs(state=2, downtime=1), hst(1), {}, MAINT, id="downtime-beats-host-down"),
    pytest.param(cs(state=0), hst(1, downtime=1), {}, MAINT, id="host-in-downtime-is-down"),
    pytest.param(cs(state=4), hst(), {}, NODATA, id="corrupt-4"),
    pytest.param(cs(state=-1), hst(), {}, NODATA, id="corrupt-negative"),
    pytest.param(cs(state=2, hard=False, last_hard=9), hst(), {}, NODATA, id="corrupt-last-hard"),
    pytest.param(cs(state=2, acknowledged=True), hst(), {}, DOWN, id="acknowledged-still-down"),
    pytest.param(cs(state=1, flapping=True), hst(), {}, PARTIAL, id="flapping-unchanged"),
    pytest.param(cs(state=1), hst(), {"states": {"warning": DOWN}}, DOWN, id="warning-mapped-down"),
    pytest.param(cs(state=2), hst(), {"states": {"warning": UP}}, DOWN, id="partial-states-keep-defaults"),
    pytest.param(cs(state=2, downtime=1), hst(), {"states": {"downtime": DOWN}}, DOWN, id="downtime-mapped"),
    pytest.param(hst(0), None, {}, UP, id="host-up"),
    pytest.param(hst(1), None, {}, DOWN, id="host-down"),
    pytest.param(hst(2), None, {}, DOWN, id="host-check-unreachable"),
    pytest.param(hst(3), None, {}, NODATA, id="host-corrupt-3"),
    pytest.param(hst(1, hard=False), None, {}, UP, id="host-check-soft-down"),
    pytest.param(hst(1, downtime=1), None, {}, MAINT, id="host-check-downtime"),
    pytest.param(hst(0, checked=False), None, {}, NODATA, id="host-check-pending"),
    pytest.param(hst(1), None, {"states": {"host_down": PARTIAL}}, PARTIAL, id="host-down-mapped"),
])
def test_check_status(check: CheckState, host: CheckState | None, options: dict[str, Any], expected: Status) -> None:
    assert check_status(check, host, comp(**options)) is expected


@pytest.mark.parametrize("rule, quorum, statuses, expected", [
    ("worst", 50, [], NODATA),
    ("worst", 50, [NODATA, NODATA], NODATA),
    ("worst", 50, [UP, UP], UP),
    ("worst", 50, [UP, MAINT], MAINT),
    ("worst", 50, [UP, MAINT, PARTIAL], PARTIAL),
    ("worst", 50, [DOWN, UP, PARTIAL], DOWN),
    ("worst", 50, [UP, NODATA], UP),
    ("all", 50, [], NODATA),
    ("all", 50, [DOWN, DOWN], DOWN),
    ("all", 50, [DOWN, DOWN, NODATA], DOWN),
    ("all", 50, [DOWN, UP], PARTIAL),
    ("all", 50, [PARTIAL, UP], PARTIAL),
    ("all", 50, [DOWN, MAINT], PARTIAL),
    ("all", 50, [MAINT, UP], MAINT),
    ("all", 50, [UP, UP], UP),
    ("quorum", 50, [], NODATA),
    ("quorum", 50, [NODATA], NODATA),
    ("quorum", 50, [UP, UP], UP),
    ("quorum", 50, [UP, DOWN], PARTIAL),  # exactly at the threshold
    ("quorum", 50, [UP, DOWN, DOWN], DOWN),
    ("quorum", 50, [UP, NODATA, NODATA, DOWN], PARTIAL),  # NODATA ignored: 1 of 2
    ("quorum", 75, [UP, UP, UP, DOWN], PARTIAL),
    ("quorum", 75.1, [UP, UP, UP, DOWN], DOWN),
    ("quorum", 66.66, [UP, UP, PARTIAL], PARTIAL),
    ("quorum", 66.67, [UP, UP, PARTIAL], PARTIAL),  # below quorum but nothing down
    ("quorum", 66.67, [UP, UP, DOWN], DOWN),
    ("quorum", 50, [UP, MAINT], MAINT),
    ("quorum", 50, [UP, MAINT, MAINT], MAINT),  # below quorum, but only maintenance
    ("quorum", 50, [UP, MAINT, DOWN], DOWN),
    ("quorum", 100, [UP, UP, PARTIAL], PARTIAL),
    ("quorum", 100, [UP, UP, DOWN], DOWN),
    ("quorum", 0, [DOWN, DOWN], PARTIAL),
    ("quorum", 50, [MAINT, MAINT], MAINT),
])
def test_combine(rule: str, quorum: float, statuses: list[Status], expected: Status) -> None:
    assert combine(statuses, rule, quorum) is expected


def test_combine_unknown_rule() -> None:
    with pytest.raises(ValueError, match="median"):
        combine([UP], "median", 50)


@pytest.mark.parametrize("components, expected", [
    ([UP, UP], UP),                    # "all services will be marked as 'Up'"
    ([UP, DOWN, UP], PARTIAL),         # "one of the services ... 'Down' ... category marked as 'Partial'"
    ([DOWN, DOWN], DOWN),              # "every service in a category is 'Down'"
    ([DOWN], DOWN),
    ([PARTIAL, PARTIAL], PARTIAL),
    ([DOWN, PARTIAL], PARTIAL),
    ([MAINT, MAINT], MAINT),
    ([UP, MAINT], MAINT),              # planned work on part of a group is not a problem with it
    ([UP, MAINT, NODATA], MAINT),
    ([PARTIAL, MAINT], PARTIAL),
    ([DOWN, MAINT], PARTIAL),
    ([UP, NODATA], UP),
    ([DOWN, NODATA], DOWN),
    ([NODATA], NODATA),
    ([], NODATA),
])
def test_group_status(components: list[Status], expected: Status) -> None:
    assert group_status(components) is expected


judged = st.sampled_from([UP, MAINT, PARTIAL, DOWN])
rules = st.sampled_from(["worst", "all", "quorum"])
quorums = st.floats(min_value=0, max_value=100)


@given(st.lists(judged, min_size=1), st.data(), rules, quorums)
def test_combine_is_monotone(statuses: list[Status], data: st.DataObject, rule: str, q: float) -> None:
    i = data.draw(st.integers(0, len(statuses) - 1))
    worse = data.draw(st.sampled_from([s for s in RANK if RANK[s] >= RANK[statuses[i]]]))
    after = [*statuses[:i], worse, *statuses[i + 1:]]
    assert RANK[combine(after, rule, q)] >= RANK[combine(statuses, rule, q)]


@given(st.lists(st.sampled_from([UP, MAINT, PARTIAL, NODATA])), rules, quorums)
def test_no_down_check_never_down(statuses: list[Status], rule: str, q: float) -> None:
    assert combine(statuses, rule, q) is not DOWN


def test_quorum_never_down_without_down_checks() -> None:
    # Below quorum, degraded checks alone are a partial outage, not "Down".
    assert combine([PARTIAL, PARTIAL, UP], "quorum", 50) is PARTIAL
    assert combine([PARTIAL, DOWN, UP], "quorum", 50) is DOWN


@given(st.lists(judged | st.just(NODATA)), st.data(), rules, quorums)
def test_combine_ignores_nodata_and_order(statuses: list[Status], data: st.DataObject, rule: str, q: float) -> None:
    shuffled = data.draw(st.permutations(statuses))
    judged_only = [s for s in statuses if s is not NODATA]
    assert combine(shuffled, rule, q) is combine(judged_only, rule, q)


@given(st.lists(judged | st.just(NODATA)))
def test_group_down_only_when_all_down(statuses: list[Status]) -> None:
    j = [s for s in statuses if s is not NODATA]
    all_down = bool(j) and all(s is DOWN for s in j)
    assert (group_status(statuses) is DOWN) == all_down
    assert (group_status(statuses) is UP) == (bool(j) and all(s is UP for s in j))


def data_of(*checks: CheckState, created: float = 1_700_000_000.0) -> StatusData:
    """StatusData with these checks, adding an UP host for any service host not given."""
    hosts = {c.host: c for c in checks if c.service is None}
    for c in checks:
        hosts.setdefault(c.host, cs(c.host, None))
    return StatusData(created, "4.4.6", hosts, {(c.host, c.service): c for c in checks if c.service})


def oxford_config(quorum_rule: str = "worst") -> Config:
    """Web (website on web-* HTTP*, mail on the mail host check) and Data (db on db-1 with a rule)."""
    web = Group("web", "Web", components=(
        Component("website", "Website", "web", "Public site", (CheckPattern("web-*", "HTTP*"),)),
        Component("mail", "Mail", "web", checks=(CheckPattern("mail"), CheckPattern("mail", "SMTP"))),
    ))
    data = Group("data", "Data", "Databases", components=(
        Component("db", "Database", "data", checks=(CheckPattern("db-?", "PostgreSQL"),), rule=quorum_rule),
        Component("ghost", "Ghost", "data", checks=(CheckPattern("nowhere", "*"),)),
    ))
    return Config(page_name="Status", page_url="https://status.example.org", groups=(web, data))


def everything(web: int = 0, db1: int = 0, db2: int = 0, mail: int = 0) -> StatusData:
    """All checks of oxford_config with the given states."""
    return data_of(cs("web-1", "HTTP", web), cs("web-2", "HTTPS", 0), cs("web-2", "SSH", 2),
                   cs("mail", None, mail), cs("mail", "SMTP", 0),
                   cs("db-1", "PostgreSQL", db1), cs("db-2", "PostgreSQL", db2))


def statuses(snap: Any) -> dict[str, Any]:
    """{group: (status, {component: (status, monitored, matched)})} of a Snapshot."""
    return {g.id: (g.status, {c.id: (c.status, c.monitored_status, c.checks_matched) for c in g.components})
            for g in snap.groups}


def test_aggregate_all_up() -> None:
    snap = aggregate(everything(), FRESH, oxford_config(), now=1_700_000_060.0)
    assert (snap.page.state, snap.page.headline, snap.stale, snap.stale_reason) == ("operational", SMOOTH, False, None)
    assert (snap.page_name, snap.page_url, snap.generated_at) == ("Status", "https://status.example.org", 1_700_000_060.0)
    assert snap.data_created == 1_700_000_000.0 and snap.health is FRESH
    assert statuses(snap) == {
        "web": (UP, {"website": (UP, UP, 2), "mail": (UP, UP, 2)}),  # web-2 SSH is not HTTP*: ignored
        "data": (UP, {"db": (UP, UP, 2), "ghost": (NODATA, NODATA, 0)}),
    }
    site = snap.groups[0].components[0]
    assert (site.name, site.group_id, site.description, snap.groups[1].description) == ("Website", "web", "Public site", "Databases")


@pytest.mark.parametrize("states, web, data, banner", [
    (dict(web=2), PARTIAL, UP, SOME),                 # one service down -> its group Partial
    (dict(web=2, mail=1), DOWN, UP, SOME),            # every service in a group down -> group Down
    (dict(web=2, mail=1, db1=2, db2=2), DOWN, DOWN, MAJOR),
    (dict(db1=2), UP, DOWN, SOME),                    # the only judged component down (ghost has no data)
    (dict(db1=1), UP, PARTIAL, SOME),
])
def test_aggregate_oxford_rules(states: dict[str, int], web: Status, data: Status, banner: str) -> None:
    snap = aggregate(everything(**states), FRESH, oxford_config(), now=0.0)
    assert (snap.groups[0].status, snap.groups[1].status, snap.page.headline) == (web, data, banner)


def test_aggregate_component_rule() -> None:
    snap = aggregate(everything(db1=2), FRESH, oxford_config("all"), now=0.0)
    assert snap.groups[1].components[0].status is PARTIAL


def test_aggregate_without_data_is_nodata_and_stale() -> None:
    health = SourceHealth(stale=True, reason="status.dat missing")
    snap = aggregate(None, health, oxford_config(), now=5.0)
    assert (snap.stale, snap.stale_reason, snap.data_created) == (True, "status.dat missing", None)
    assert {c.status for g in snap.groups for c in g.components} == {NODATA}
    assert {c.checks_matched for g in snap.groups for c in g.components} == {0}
    # No data is never "running smoothly" nor a problem: the page state is unknown, and says why.
    assert (snap.page.state, snap.page.headline) == ("unknown", "Status unknown: no monitoring data yet")
    assert snap.page.reason == "status.dat missing"


def test_stale_health_keeps_last_statuses() -> None:
    stale = SourceHealth(stale=True, reason="data older than 180 s")
    fresh_snap = aggregate(everything(web=2), FRESH, oxford_config(), now=0.0)
    stale_snap = aggregate(everything(web=2), stale, oxford_config(), now=999.0)
    assert statuses(stale_snap) == statuses(fresh_snap)
    assert (stale_snap.stale, stale_snap.stale_reason) == (True, "data older than 180 s")
    assert all(c.stale for g in stale_snap.groups for c in g.components)
    assert (stale_snap.page.state, stale_snap.page.headline) == ("unknown", "Status unknown: monitoring data is stale")
    assert stale_snap.page.last_known == SOME  # the banner says what the last known statuses were


def test_overrides_replace_shown_status_only() -> None:
    snap = aggregate(everything(web=2), FRESH, oxford_config(), now=0.0, overrides={"website": MAINT})
    site = snap.groups[0].components[0]
    assert (site.status, site.monitored_status) == (MAINT, DOWN)
    assert snap.groups[0].status is MAINT  # Up + Maintenance


def test_matcher_follows_changing_names_and_config() -> None:
    m = Matcher()
    config = oxford_config()
    assert statuses(aggregate(everything(), FRESH, config, 0.0, m))["web"][1]["website"] == (UP, UP, 2)
    more = data_of(*everything().services.values(), cs("web-3", "HTTP", 2))
    assert statuses(aggregate(more, FRESH, config, 0.0, m))["web"][1]["website"] == (DOWN, DOWN, 3)
    reordered = data_of(*reversed(list(more.services.values())))
    assert statuses(aggregate(reordered, FRESH, config, 0.0, m))["web"][1]["website"] == (DOWN, DOWN, 3)
    # A reload may keep a component id and change its patterns.
    site = Component("website", "Website", "web", checks=(CheckPattern("web-2", "SSH"),))
    reloaded = Config(groups=(Group("web", "Web", components=(site,)),))
    assert statuses(aggregate(more, FRESH, reloaded, 0.0, m))["web"][1]["website"] == (DOWN, DOWN, 1)


service_states = st.builds(
    cs, st.sampled_from(["a", "b", "c"]), st.sampled_from(["x", "y", "z"]), st.integers(-1, 4),
    hard=st.booleans(), last_hard=st.integers(0, 3), checked=st.booleans(), downtime=st.sampled_from([0, 0, 1]))
host_states = st.builds(
    cs, st.sampled_from(["a", "b", "c"]), st.none(), st.integers(0, 3),
    hard=st.booleans(), last_hard=st.integers(0, 2), checked=st.booleans(), downtime=st.sampled_from([0, 0, 1]))


@settings(max_examples=200)
@given(st.lists(service_states), st.lists(host_states), st.booleans(), rules, quorums)
def test_aggregate_agrees_with_check_status(svcs: list[CheckState], hosts: list[CheckState], soft: bool,
                                            rule: str, q: float) -> None:
    data = StatusData(0.0, None, {h.host: h for h in hosts}, {(s.host, s.service): s for s in svcs})  # type: ignore[misc]
    c = comp("c", CheckPattern("[ab]", "*"), CheckPattern("c"), rule=rule, quorum=q, soft_states=soft)
    view = aggregate(data, FRESH, Config(groups=(Group("g", "G", components=(c,)),)), 0.0).groups[0].components[0]
    expected = [check_status(s, data.hosts.get(s.host), c) for s in data.services.values() if s.host in ("a", "b")]
    expected += [check_status(data.hosts["c"], None, c)] if "c" in data.hosts else []
    assert (view.monitored_status, view.checks_matched) == (combine(expected, rule, q), len(expected))


def synthetic(n_hosts: int = 10_000, per_host: int = 10) -> tuple[StatusData, Config]:
    """100k services on 10k hosts and 100 components of ~1000 services each."""
    hosts, services = {}, {}
    for i in range(n_hosts):
        h = f"web{i:05d}"
        hosts[h] = cs(h, None, 1 if i % 97 == 0 else 0)
        for j in range(per_host):
            services[(h, f"svc-{j}")] = cs(h, f"svc-{j}", (i + j) % 4, hard=j % 3 > 0, downtime=int(i % 50 == 0))
    groups = tuple(
        Group(f"g{g}", f"G{g}", components=tuple(
            comp(f"c{k}", CheckPattern(f"web{k:03d}??", "*"), CheckPattern(f"web{k:03d}00"), rule=("worst", "all", "quorum")[k % 3])
            for k in range(g * 10, g * 10 + 10)))
        for g in range(10))
    return StatusData(0.0, None, hosts, services), Config(groups=groups)


def test_aggregate_100k_services_again_resolves_no_glob_and_counts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a warm Matcher, aggregating the same 100k services matches no glob and recounts no component."""
    data, config = synthetic()
    m = Matcher()
    aggregate(data, FRESH, config, 0.0, m)  # the first call resolves the globs and counts every component
    # Every glob resolution goes through matching._names and every count computed through rules_for:
    # a return to per-call glob matching or counting shows here (bench/loop_stall.py times the aggregate).
    resolved = record_threads(monkeypatch, matching, "_names")
    counted = record_threads(monkeypatch, agg, "rules_for")
    snap = aggregate(data, FRESH, config, 0.0, m)
    assert resolved == [] and counted == []
    assert sum(c.checks_matched for g in snap.groups for c in g.components) == 100_100


# --- per-data counting, prepare() and explaining times (the fast paths must equal the plain rules) -------

timed_services = st.builds(
    cs, st.sampled_from(["a", "b", "c"]), st.sampled_from(["x", "y", "z"]), st.integers(-1, 4),
    hard=st.booleans(), last_hard=st.integers(0, 3), checked=st.booleans(), downtime=st.sampled_from([0, 0, 1]),
    last_state_change=st.sampled_from([0, 100, 200, 300]))
timed_hosts = st.builds(
    cs, st.sampled_from(["a", "b", "c"]), st.none(), st.integers(0, 3),
    hard=st.booleans(), last_hard=st.integers(0, 2), checked=st.booleans(), downtime=st.sampled_from([0, 0, 1]),
    last_state_change=st.sampled_from([0, 150, 250]))


@settings(max_examples=200)
@given(st.lists(timed_services), st.lists(timed_hosts), st.booleans(), st.sampled_from(list(Status)))
def test_explaining_times_agrees_with_history(svcs: list[CheckState], hosts: list[CheckState], soft: bool,
                                              status: Status) -> None:
    from bridge import history
    from bridge.aggregate import explaining_times

    data = StatusData(0.0, None, {h.host: h for h in hosts}, {(s.host, s.service): s for s in svcs})  # type: ignore[misc]
    c = comp("c", CheckPattern("[ab]", "*"), CheckPattern("c"), CheckPattern("a"), soft_states=soft)
    m = Matcher()
    expected = history.explaining_times(c, m.resolve(c, data), data, status)
    assert sorted(explaining_times(c, data, status, m)) == sorted(expected)


def test_prepare_then_aggregate_equals_plain_aggregate() -> None:
    from bridge.aggregate import prepare

    data, config = synthetic(n_hosts=300, per_host=7)
    m = Matcher()
    prepare(data, config, m)
    assert aggregate(data, FRESH, config, 0.0, m) == aggregate(data, FRESH, config, 0.0, Matcher())


def test_counts_are_computed_once_per_data_object() -> None:
    from bridge import aggregate as agg

    data, config = synthetic(n_hosts=50, per_host=4)
    m = Matcher()
    component = config.groups[0].components[0]
    first = agg.component_counts(component, data, m)
    assert agg.component_counts(component, data, m) is first  # memoized for this StatusData object
    same_names = StatusData(1.0, None, dict(data.hosts), dict(data.services))
    again = agg.component_counts(component, same_names, m)
    assert again == first and again is not first  # a new object is counted afresh (its states may differ)
    assert m.memo(same_names).names is m.memo(data).names  # but its globs are not resolved again


def test_prepare_in_a_thread_while_the_loop_aggregates_other_data() -> None:
    import threading

    from bridge.aggregate import prepare

    old, config = synthetic(n_hosts=200, per_host=5)
    new = StatusData(1.0, None, dict(old.hosts), {k: v._replace(current_state=2) for k, v in old.services.items()})
    m = Matcher()
    expected_old = aggregate(old, FRESH, config, 0.0, Matcher())
    expected_new = aggregate(new, FRESH, config, 0.0, Matcher())
    worker = threading.Thread(target=prepare, args=(new, config, m))
    worker.start()
    for _ in range(20):  # meanwhile the published (old) data keeps being aggregated
        assert aggregate(old, FRESH, config, 0.0, m) == expected_old
    worker.join()
    assert aggregate(new, FRESH, config, 0.0, m) == expected_new
    assert aggregate(old, FRESH, config, 0.0, m) == expected_old


def test_plans_hold_no_gc_tracked_lists() -> None:
    # 100 components x 500 hosts of position lists would be walked by every full collection.
    data, config = synthetic(n_hosts=20, per_host=3)
    plan = Matcher().plan(config.groups[0].components[0], data)
    assert isinstance(plan.positions, tuple)
    assert all(isinstance(positions, tuple) for _, positions in plan.services_by_host)
