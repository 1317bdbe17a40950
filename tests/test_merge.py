"""merge(): newest result per check across sources, ties, per-source staleness, annotations, combined health."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.live import Live
from bridge.merge import SourceView, combined_health, merge
from bridge.model import SourceHealth
from tests.conftest import check, status_data, web_config

FRESH = SourceHealth(stale=False, data_created=100.0)
STALE = SourceHealth(stale=True, reason="old", data_created=50.0)


def view(name: str, *checks, health: SourceHealth = FRESH, stale_keys=frozenset(), annotated: bool = True) -> SourceView:
    return SourceView(name, status_data(*checks), health, frozenset(stale_keys), annotated)


def test_newest_wins_across_sources_per_check():
    a = view("a", check("web-1", "HTTP", 0, last_check=100), check("db-1", "PG", 2, last_check=300))
    b = view("b", check("web-1", "HTTP", 2, last_check=200), check("db-1", "PG", 0, last_check=250))
    merged = merge([a, b])
    assert merged.data is not None
    assert merged.data.services[("web-1", "HTTP")].current_state == 2  # b is newer
    assert merged.data.services[("db-1", "PG")].current_state == 2  # a is newer
    assert merge([b, a]).data.services == merged.data.services  # order only matters for ties


def test_tie_keeps_the_earlier_source():
    a = view("a", check("web-1", "HTTP", 0, last_check=100))
    b = view("b", check("web-1", "HTTP", 2, last_check=100))
    assert merge([a, b]).data.services[("web-1", "HTTP")].current_state == 0
    assert merge([b, a]).data.services[("web-1", "HTTP")].current_state == 2


def test_checks_only_one_source_knows_are_kept():
    a = view("a", check("web-1", "HTTP"))
    b = view("b", check("db-1", "PG"))
    merged = merge([a, b])
    assert set(merged.data.services) == {("web-1", "HTTP"), ("db-1", "PG")}
    assert set(merged.data.hosts) == {"web-1", "db-1"}


def test_a_stale_source_makes_only_its_own_winning_checks_stale():
    old = view("old", check("web-1", "HTTP", last_check=100), check("db-1", "PG", last_check=500), health=STALE)
    new = view("new", check("web-1", "HTTP", last_check=200))
    merged = merge([old, new])
    assert ("db-1", "PG") in merged.stale_keys  # only the stale source has it
    assert ("web-1", "HTTP") not in merged.stale_keys  # the fresh source's newer result won
    assert merged.health.stale is False  # one fresh source keeps the page fresh


def test_stale_keys_of_a_fresh_source_apply_only_where_it_wins():
    push = view("push", check("web-1", "HTTP", last_check=100), check("db-1", "PG", last_check=100),
                stale_keys={("web-1", "HTTP"), ("db-1", "PG")}, annotated=False)
    core = view("core", check("web-1", "HTTP", last_check=200))
    merged = merge([core, push])
    assert merged.stale_keys == frozenset({("db-1", "PG")})


def test_single_source_passthrough_keeps_identity():
    only = view("a", check("web-1", "HTTP"), stale_keys={("web-1", "HTTP")})
    empty = SourceView("b", None, SourceHealth(stale=True, reason="no data"))
    merged = merge([only, empty])
    assert merged.data is only.data  # no copy: Matcher caches by identity
    assert merged.stale_keys == frozenset({("web-1", "HTTP")})
    stale_only = view("a", check("web-1", "HTTP"), health=STALE)
    assert merge([stale_only]).stale_keys == frozenset({("web-1", None), ("web-1", "HTTP")})


def test_no_data_anywhere():
    merged = merge([SourceView("a", None, SourceHealth(stale=True, reason="missing"))])
    assert merged.data is None and merged.health.reason == "missing"
    assert merge([]).health.reason == "no monitoring source configured"


def test_pushed_winner_keeps_the_cores_downtime_and_acknowledgement():
    core = view("core", check("web-1", "HTTP", 2, last_check=100, downtime_depth=1, acknowledged=True),
                check("web-1", None, 0, last_check=100, downtime_depth=2))
    push = view("push", check("web-1", "HTTP", 0, last_check=200), check("web-1", None, 1, last_check=200),
                annotated=False)
    merged = merge([core, push])
    svc, host = merged.data.services[("web-1", "HTTP")], merged.data.hosts["web-1"]
    assert (svc.current_state, svc.downtime_depth, svc.acknowledged) == (0, 1, True)
    assert (host.current_state, host.downtime_depth) == (1, 2)
    # Without an annotated source holding the check nothing is invented.
    assert merge([view("x", check("db-1", "PG")), push]).data.services[("web-1", "HTTP")].downtime_depth == 0


@pytest.mark.parametrize(
    "healths, expected_stale, expected_created",
    [
        ([FRESH], False, 100.0),
        ([STALE], True, 50.0),
        ([STALE, FRESH], False, 100.0),
        ([FRESH, SourceHealth(stale=False, data_created=300.0)], False, 300.0),  # the freshest one speaks
        ([STALE, SourceHealth(stale=True, reason="older", data_created=10.0)], True, 50.0),  # first source with data
    ],
)
def test_combined_health_table(healths, expected_stale, expected_created):
    views = [view(f"s{i}", check("web-1", "HTTP"), health=h) for i, h in enumerate(healths)]
    health = combined_health(views)
    assert (health.stale, health.data_created) == (expected_stale, expected_created)


def test_combined_health_ignores_sources_without_data():
    nodata = SourceView("passive", None, SourceHealth(stale=True, reason="nothing pushed"))
    assert combined_health([nodata, view("core", check("web-1", "HTTP"))]).stale is False
    assert combined_health([nodata]).reason == "nothing pushed"


def test_live_marks_components_of_a_stale_source():
    live = Live(web_config(), clock=lambda: 1000.0)
    live.update_source(view("core", check("web-1", "HTTP", 0), check("db-1", "PostgreSQL", 0), health=STALE))
    live.update_source(view("push", check("web-1", "HTTP", 0, last_check=1_800_000_000), annotated=False))
    stale = {c.id: c.stale for g in live.snapshot.groups for c in g.components}
    assert stale == {"website": False, "database": True}
    assert live.snapshot.stale is False


def reference_merge(views: list[SourceView]) -> tuple[dict, dict, frozenset]:
    """The definition merge() must keep: per check the newest state, ties to the earlier source, stale where a stale
    source won, and a pushed winner carrying the newest annotated source's downtime/acknowledgement."""
    with_data = [v for v in views if v.data is not None]
    hosts, services, origin = {}, {}, {}
    for v in with_data:
        for table, merged, keyed in ((v.data.hosts, hosts, lambda k: (k, None)), (v.data.services, services, lambda k: k)):
            for k, state in table.items():
                if k not in merged or state.last_check > merged[k].last_check:
                    merged[k], origin[keyed(k)] = state, v
    annotated = [v.data for v in with_data if v.annotated]
    for (host, service), v in origin.items():
        table, k = (hosts, host) if service is None else (services, (host, service))
        found = [d.hosts.get(host) if service is None else d.services.get((host, service)) for d in annotated]
        found = [f for f in found if f is not None]
        if v.annotated or not found or not any(f.downtime_depth or f.acknowledged for f in found):
            continue
        best = max(found, key=lambda f: f.last_check)
        table[k] = table[k]._replace(downtime_depth=best.downtime_depth, acknowledged=best.acknowledged)
    return hosts, services, frozenset(k for k, v in origin.items() if v.is_stale(k))


CHECKS = st.builds(
    lambda host, service, last, state, down, ack: check(f"h{host}", None if service is None else f"s{service}", state,
                                                       last_check=last, downtime_depth=down, acknowledged=ack),
    st.integers(0, 3), st.none() | st.integers(0, 2), st.integers(1, 3), st.integers(0, 2), st.integers(0, 1),
    st.booleans(),
)
VIEWS = st.builds(
    lambda checks, stale, annotated, stale_pick: SourceView(
        "v", status_data(*checks), STALE if stale else FRESH,
        frozenset([(c.host, c.service) for c in checks[:stale_pick]] + [("ghost", None)] * (stale_pick == 3)),
        annotated),
    st.lists(CHECKS, max_size=12), st.booleans(), st.booleans(), st.integers(0, 3),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(VIEWS, min_size=2, max_size=4))
def test_merge_overlaying_the_biggest_source_matches_the_definition(views):
    hosts, services, stale = reference_merge(views)
    merged = merge(views)
    assert merged.data is not None
    assert (merged.data.hosts, merged.data.services, merged.stale_keys) == (hosts, services, stale)
