"""Pushed results applied in place (bridge.live_delta) publish exactly what a full merge and aggregation would."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bridge.live as live_module
import bridge.live_delta as delta
from bridge.aggregate import STATUS_FIELDS, Table, aggregate, component_counts, imposes, stale_count
from bridge.config import CheckPattern, Component, Config, Group
from bridge.live import Live
from bridge.matching import Matcher
from bridge.merge import SourceView, merge
from bridge.model import SourceHealth, Status, StatusData
from bridge.passive import Result
from bridge.passive_store import PassiveStore
from tests.conftest import check

T = 1_700_000_000.0
HOSTS = [f"h{i}" for i in range(4)]
SERVICES = [f"s{i}" for i in range(3)]


def _config(variant: int) -> Config:
    """Two page layouts over hosts h0-h3 and services s0-s2, covering every rule and state mapping."""
    states = {**Component("x", "x", "g").states}
    if variant == 0:
        comps = (
            Component("c1", "C1", "g", checks=(CheckPattern("h[01]", "s*"),)),
            Component("c2", "C2", "g", checks=(CheckPattern("h*", "s0"),), rule="all", soft_states=True),
            Component("c3", "C3", "g", checks=(CheckPattern("h2"), CheckPattern("h2", "s*")), rule="quorum",
                      quorum=50.0, states={**states, "warning": Status.UP}),
            Component("c4", "C4", "g", checks=(CheckPattern("h3", "s1"), CheckPattern("h*")),
                      states={**states, "downtime": Status.PARTIAL, "unknown": Status.NODATA}),
            Component("c5", "C5", "g", checks=(CheckPattern("h[01]", "s*"),)),  # the same counts as c1
        )
    else:
        comps = (
            Component("c1", "C1", "g", checks=(CheckPattern("h*", "s[12]"),), rule="quorum", quorum=75.0),
            Component("c6", "C6", "g", checks=(CheckPattern("h0"), CheckPattern("h1")), rule="all"),
        )
    return Config(groups=(Group("g", "G", components=comps),), passive_stale_after=60.0, passive_forget_after=300.0,
                  passive_max_checks=10)


CONFIGS = (_config(0), _config(1))


def _core(seed: int, now: float) -> StatusData:
    """A status.dat: states, downtimes and acknowledgements from seed; some objects missing for some seeds."""
    checks = []
    for i, h in enumerate(HOSTS):
        if (seed >> i) % 7 == 6:
            continue  # this host is not in this Nagios (yet)
        checks.append(check(h, None, (seed + i) % 3 if i % 2 else 0, last_check=int(now) - (seed + i) % 90,
                            downtime_depth=int((seed + i) % 11 == 0), state_type=(seed + i) % 2))
        for j, s in enumerate(SERVICES):
            if (seed + i + j) % 9 == 8:
                continue
            checks.append(check(h, s, (seed * 3 + i + j) % 4, last_check=int(now) - (seed + i * j) % 120,
                                last_hard_state=(seed + j) % 4, state_type=(seed + i + j) % 2,
                                downtime_depth=int((seed + i + j) % 13 == 0), acknowledged=(seed + j) % 5 == 0))
    hosts = {c.host: c for c in checks if c.service is None}
    services = {(c.host, c.service): c for c in checks if c.service is not None}
    return StatusData(created=now, version="4.4.6", hosts=hosts, services=services)


OPS = st.one_of(
    st.tuples(st.just("push"), st.lists(st.tuples(st.sampled_from(HOSTS), st.sampled_from([None, *SERVICES]),
                                                  st.integers(0, 3), st.sampled_from([0, 5, 70, 400])),
                                        min_size=1, max_size=4)),
    st.tuples(st.just("tick"), st.sampled_from([1, 30, 61, 250, 301])),
    st.tuples(st.just("core"), st.integers(0, 10_000)),
    st.tuples(st.just("core_health"), st.booleans()),
    st.tuples(st.just("reload"), st.integers(0, 1)),
)


class Scenario:
    """Live with a status.dat source and a passive store, driven like the daemon drives them."""

    def __init__(self) -> None:
        self.now = T
        self.config = CONFIGS[0]
        self.live = Live(self.config, clock=lambda: self.now)
        self.store = PassiveStore(self.config)
        self.core: SourceView | None = None

    async def run(self, op: tuple[Any, ...]) -> None:
        kind, arg = op
        if kind == "push":
            self.store.set_config(self.config)
            self.store.submit([Result(h, s, min(state, 2) if s is None else state, f"out {state}", self.now - age)
                               for h, s, state, age in arg], self.now)
        elif kind == "tick":
            self.now += arg
        elif kind == "core":
            self.core = SourceView("statusdat", _core(arg, self.now), SourceHealth(stale=False, data_created=self.now))
            await self.live.publish_source(self.core)
        elif kind == "core_health" and self.core is not None:
            self.core = dataclasses.replace(self.core, health=SourceHealth(stale=arg, data_created=self.now))
            await self.live.publish_source(self.core)
        elif kind == "reload":
            self.config = CONFIGS[arg]
            self.live.set_config(self.config)
        await self.publish_passive()

    async def publish_passive(self) -> None:
        """What PassiveHub.publish does."""
        self.store.set_config(self.live.config)
        if not len(self.store) and "passive" not in self.live.sources:
            return
        keys, rebuild = self.store.take(self.now)
        if keys or rebuild:
            await self.live.publish_changes(self.store, keys, rebuild)

    def check_equal_to_a_full_rebuild(self) -> None:
        if not self.live.sources:
            return  # nothing published yet: Live's own start-up state
        views = [v if v.name != "passive" else self.store.view() for v in self.live.sources.values()]
        ref = merge(views)
        live = self.live
        if ref.data is None:
            assert live.data is None
        else:
            assert live.data is not None
            assert live.data.hosts == ref.data.hosts and live.data.services == ref.data.services
            assert live.data.created == ref.data.created
        assert set(live.stale_keys) == set(ref.stale_keys)
        assert live.health == ref.health
        if ref.data is not None:  # the counts themselves, not only the statuses they add up to
            assert live.data is not None
            memo = live.matcher.peek(live.data)
            table = memo.values.get(Table) if memo is not None else None
            if table is not None:  # what explaining_times and recounts after a reload read
                assert [table.keys[c] for c in table.codes] == [STATUS_FIELDS(v) for v in live.data.services.values()]
                assert table.imposing == {h for h, v in live.data.hosts.items() if imposes(v)}
            fresh = Matcher()
            for comp in self.config.components():
                assert component_counts(comp, live.data, live.matcher) == component_counts(comp, ref.data, fresh)
                assert stale_count(comp, live.data, live.stale_keys, live.matcher) == \
                       stale_count(comp, ref.data, ref.stale_keys, fresh)
        snap = aggregate(ref.data, ref.health, self.config, self.now, Matcher(), {}, ref.stale_keys)
        got = live.snapshot
        fields = ("id", "status", "monitored_status", "checks_matched", "stale")
        assert [[[getattr(c, f) for f in fields] for c in g.components] for g in got.groups] == \
               [[[getattr(c, f) for f in fields] for c in g.components] for g in snap.groups]
        assert got.page == snap.page


async def run_checked(ops: list[tuple[Any, ...]]) -> None:
    """Run ops on a fresh scenario, comparing with a full rebuild after each."""
    s = Scenario()
    for op in ops:
        await s.run(op)
        s.check_equal_to_a_full_rebuild()


@pytest.fixture
def in_place_calls(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each in-place attempt was taken (the equivalence must be tested on that path, not only the other)."""
    calls: list[bool] = []
    real = delta.apply_in_place

    def counted(*args: Any) -> bool:
        done = real(*args)
        calls.append(done)
        return done

    monkeypatch.setattr(live_module, "apply_in_place", counted)
    return calls


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(OPS, min_size=1, max_size=25))
def test_in_place_publishes_what_a_full_rebuild_would(ops: list[tuple[Any, ...]]) -> None:
    asyncio.run(run_checked(ops))


def test_the_in_place_path_is_what_the_equivalence_covers(in_place_calls: list[bool]) -> None:
    """A fixed scenario mixing everything takes the in-place path many times (and the full one when it must)."""
    ops: list[tuple[Any, ...]] = [("core", 1), ("push", [("h0", "s0", 2, 0), ("h1", None, 1, 0)])]
    ops += [("tick", 5), ("push", [("h0", "s0", 1, 0)])]  # newer than the core: the merged data is newer too
    # A pushed host check turning stale while the source stays fresh (another check keeps it so).
    ops += [("push", [("h3", None, 1, 0), ("h0", "s1", 0, 0)]), ("tick", 40), ("push", [("h0", "s1", 1, 0)]),
            ("tick", 30), ("push", [("h0", "s1", 2, 0)])]
    # A host going down and up with some of its services in the same batch: each service counted once.
    ops += [("push", [("h1", None, state, 0), ("h1", "s1", 3 - state, 0), ("h1", "s2", state, 0)]) for state in (0, 1, 2, 0)]
    for n in range(60):
        ops += [("push", [(HOSTS[n % 4], SERVICES[n % 3], n % 4, (0, 5, 70)[n % 3])]), ("tick", (1, 30, 61)[n % 3])]
        if n % 17 == 0:
            ops += [("core", n), ("core_health", n % 2 == 0), ("reload", n % 2)]

    asyncio.run(run_checked(ops))
    assert sum(in_place_calls) >= 30 and not all(in_place_calls), in_place_calls
