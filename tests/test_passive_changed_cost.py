"""One pushed result costs O(changed checks), not O(held checks): counted, not timed (speed: bench/ingest.py)."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

import bridge.aggregate as agg
import bridge.aggregate_delta as agg_delta
import bridge.live as live_module
import bridge.live_delta as live_delta
import bridge.matching as matching
import bridge.release as release_module
from bridge.config import CheckPattern, Component, Config, Group
from bridge.live import Live
from bridge.merge import SourceView
from bridge.model import SourceHealth, StatusData
from bridge.passive import Result
from bridge.passive_store import PassiveStore
from bridge.views_passive import PassiveHub
from tests.conftest import check

T = 1_700_000_000.0
PER_HOST = 100


def config() -> Config:
    """10 components by glob over core hosts (c*) and pushed ones (p*), like a real page."""
    comps = tuple(Component(f"k{i}", f"K{i}", "g", checks=(CheckPattern(f"c*{i}", "svc-*"), CheckPattern(f"p*{i}", "*"),
                                                             CheckPattern(f"c*{i}")))
                  for i in range(10))  # fmt: skip
    return Config(groups=(Group("g", "G", components=comps),), passive_max_checks=10**6)


def core(n: int) -> StatusData:
    """A status.dat of n services (and their hosts)."""
    states = [check(f"c{h:04d}", None, 0) for h in range(n // PER_HOST)]
    states += [check(f"c{h:04d}", f"svc-{s:02d}", (h + s) % 4) for h in range(n // PER_HOST) for s in range(PER_HOST)]
    return StatusData(created=T, version="4.4.6", hosts={c.host: c for c in states if c.service is None},
                      services={(c.host, c.service): c for c in states if c.service is not None})


def _size(data: StatusData | None) -> int:
    """Checks in data."""
    return 0 if data is None else len(data.hosts) + len(data.services)


class Counts:
    """Checks visited per publish by each function that can walk them: every check it walks counts one."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.visited: Counter[str] = Counter()
        self.threads: set[str] = set()
        # Whole-data steps: each visits every check of what it is given.
        self._wrap(monkeypatch, live_module, "merge", "merge", lambda views: sum(_size(v.data) for v in views))
        self._wrap(monkeypatch, live_module, "owned", "own copy", lambda merged, views: _size(merged.data))
        self._wrap(monkeypatch, PassiveStore, "view", "store view", lambda store: len(store))
        self._wrap(monkeypatch, matching.Names, "same", "names compared", lambda names, data: _size(data))
        self._wrap(monkeypatch, matching._Index, "__init__", "names indexed", lambda index, data: _size(data))
        self._wrap(monkeypatch, agg.Table, "__init__", "table built", lambda table, data: _size(data))
        # Per-check steps: each visits one check.
        self._wrap(monkeypatch, live_delta, "merge_one", "check merged", lambda *a: 1)
        self._wrap(monkeypatch, agg_delta, "check_status_with", "check counted", lambda *a: 1)

    def _wrap(self, monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, label: str, size: Callable[..., int]) -> None:
        real: Callable[..., Any] = getattr(owner, name)

        def counted(*args: Any) -> Any:
            self.visited[label] += size(*args)
            self.threads.add(threading.current_thread().name)
            return real(*args)

        monkeypatch.setattr(owner, name, counted)


async def one_push_costs(n: int, monkeypatch: pytest.MonkeyPatch) -> tuple[Counter[str], set[str]]:
    """Hold n pushed checks beside an n-service status.dat, then push one result: what did its publish do?"""
    live = Live(config(), clock=lambda: T + 10)
    live.update_source(SourceView("statusdat", core(n), SourceHealth(stale=False, data_created=T)))
    hub = PassiveHub(live)
    hub.submit([Result(f"p{h:04d}", f"x-{s:02d}", 0, "ok", T + 5) for h in range(n // PER_HOST) for s in range(PER_HOST)])
    assert await hub.publish() and len(hub.store) == n  # the first publish merges everything (in a worker)
    counts = Counts(monkeypatch)
    hub.submit([Result("p0003", "x-07", 2, "CRITICAL - refused", T + 8)])
    assert await hub.publish()
    assert {c.id: c.status.value for c in live.snapshot.groups[0].components}["k3"] == "down"
    assert live.data is not None and live.data.services[("p0003", "x-07")].current_state == 2
    monkeypatch.undo()
    return counts.visited, counts.threads


@pytest.fixture(autouse=True)
def _keep_replaced_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is freed in steps here: the counts are about publishing."""
    monkeypatch.setattr(release_module, "RELEASE_MIN", 10**9)


async def test_one_pushed_result_visits_one_check_whatever_the_store_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    small, small_threads = await one_push_costs(2_000, monkeypatch)
    big, big_threads = await one_push_costs(40_000, monkeypatch)  # 40k held beside a 40k-service status.dat
    # The same checks visited whatever is held: nothing that walks every check ran (no merge, no copy, no
    # view of the store, no names compared or indexed, no status table built).
    assert big == small, (small, big)
    assert set(big) == {"check merged", "check counted"}, big
    assert big["check merged"] == 1
    # Each component whose patterns hold the check moves it from its old slot to its new one: 2 per match.
    assert big["check counted"] == 2
    # And it all ran on the event loop, in one step: no worker thread was needed.
    assert big_threads == {threading.current_thread().name}


async def test_a_batch_costs_its_size_and_a_big_one_goes_to_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    live = Live(config(), clock=lambda: T + 10)
    hub = PassiveHub(live)
    hub.submit([Result(f"p{h:04d}", f"x-{s:02d}", 0, "ok", T + 5) for h in range(50) for s in range(PER_HOST)])
    assert await hub.publish()
    counts = Counts(monkeypatch)
    hub.submit([Result(f"p{h:04d}", "x-01", 1, "warn", T + 6) for h in range(40)])
    assert await hub.publish()
    assert counts.visited["check merged"] == 40 and "merge" not in counts.visited
    hub.submit([Result(f"p{h:04d}", f"x-{s:02d}", 1, "warn", T + 7) for h in range(50) for s in range(20)])
    assert await hub.publish()  # 1,000 changed checks: more than the loop should take on at once
    assert counts.visited["merge"] == 5_000 and counts.visited["check merged"] == 40
    assert sum(c.status.value == "partial" for c in live.snapshot.groups[0].components) == 10
    await asyncio.sleep(0)
