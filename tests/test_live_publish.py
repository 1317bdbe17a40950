"""Live.publish_source: two sources merged and prepared off the loop, coalesced, never published stale."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import pytest

import bridge.live as live_module
import bridge.release as release_module
from bridge import aggregate as agg
from bridge.config import CheckPattern, Component, Config, Group
from bridge.live import Live
from bridge.merge import SourceView, merge
from bridge.model import SourceHealth, StatusData
from tests.conftest import Held, check, record_threads

HOSTS, PER_HOST = 200, 100  # 20k services
T = 1_700_000_000
FRESH = SourceHealth(stale=False, data_created=float(T))
NOW = float(T + 60)


def config() -> Config:
    """100 components in 10 groups: component k maps the hosts ending in k % 10 and ten services by glob."""
    groups = tuple(
        Group(f"g{g}", f"G{g}", components=tuple(
            Component(f"c{k}", f"C{k}", f"g{g}", checks=(CheckPattern(f"h*{k % 10}", f"svc-{k // 10}?"),
                                                        *((CheckPattern(f"h*{k % 10}"),) if k < 10 else ())))
            for k in range(g * 10, g * 10 + 10)))
        for g in range(10)
    )  # fmt: skip
    return Config(groups=groups)


@functools.cache  # shared, never changed: Live only frees objects nothing else refers to
def core(n: int, hosts: int = HOSTS) -> StatusData:
    """The core's status.dat, version n: states shift with n, checked at T + n."""
    states = [check(f"h{h:03d}", None, 0, last_check=T + n) for h in range(hosts)]
    states += [check(f"h{h:03d}", f"svc-{s:02d}", (h + s + n) % 4, last_check=T + n)
               for h in range(hosts) for s in range(PER_HOST)]  # fmt: skip
    return StatusData(
        created=float(T + n), version="4.4.6",
        hosts={c.host: c for c in states if c.service is None},
        services={(c.host, c.service): c for c in states if c.service is not None},
    )  # fmt: skip


def pushed(n: int) -> StatusData:
    """Passive results, push n: 200 services, newer than any core version below 1000."""
    states = [check(f"h{h:03d}", f"svc-{s:02d}", (n + h) % 3, last_check=T + 1000 + n) for h in range(20) for s in range(10)]
    return StatusData(created=float(T + 1000 + n), version=None, hosts={},
                      services={(c.host, c.service): c for c in states})  # fmt: skip


@pytest.fixture(autouse=True)
def _keep_replaced_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replaced objects are not freed here: the tests still hold them, and freeing waits 0.5 s for that to end."""
    monkeypatch.setattr(release_module, "RELEASE_MIN", 10**9)


def core_view(n: int) -> SourceView:
    return SourceView("statusdat", core(n), FRESH)


def push_view(n: int) -> SourceView:
    return SourceView("passive", pushed(n), FRESH, annotated=False)


def live() -> Live:
    return Live(config(), clock=lambda: NOW)


def two_source_live(c: SourceView, p: SourceView) -> Live:
    out = live()
    out.update_source(c)
    out.update_source(p)
    return out


def counting_merges(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the number of views of every merge Live runs (the real merge still runs)."""
    calls: list[int] = []
    real = live_module.merge

    def counted(views: Any) -> Any:
        calls.append(len(views))
        return real(views)

    monkeypatch.setattr(live_module, "merge", counted)
    return calls


async def test_a_two_source_publish_keeps_the_loop_free_and_equals_the_synchronous_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The merge and every count run in a worker thread while the loop keeps running; the result is update_source's."""
    c1, p1, c2 = core_view(1), push_view(1), core_view(2)
    on_loop = two_source_live(c1, p1)
    on_loop.update_source(c2)  # what the sources did before: merge and aggregate on the loop
    off_loop = two_source_live(c1, p1)
    # From here on: the merge waits in its thread until the loop has run, and every count computed
    # (a Matcher miss: rules_for runs only then) records its thread. How long the loop pauses for the
    # rest (assembly and encoding) is measured by bench/loop_stall.py, not here.
    merge_held = Held(live_module.merge)
    monkeypatch.setattr(live_module, "merge", merge_held)
    counted = record_threads(monkeypatch, agg, "rules_for")
    publishing = asyncio.create_task(off_loop.publish_source(c2))
    await merge_held.serve_loop_meanwhile(publishing)
    await publishing
    merge_held.assert_loop_ran_meanwhile()
    assert len(counted) == len(config().components())  # each component counted once for the merged object...
    assert merge_held.loop_thread not in counted  # ...in the worker thread: publishing on the loop counted nothing
    assert off_loop.snapshot == on_loop.snapshot
    assert off_loop.published.feeds == on_loop.published.feeds
    assert off_loop.data is not None and off_loop.data.services == on_loop.data.services


async def test_a_burst_from_two_sources_costs_two_merges_and_publishes_the_newest_of_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    subject = two_source_live(core_view(0), push_view(0))
    views = [core_view(n) if n % 2 else push_view(n) for n in range(1, 11)]
    merges = counting_merges(monkeypatch)
    await asyncio.gather(*(subject.publish_source(v) for v in views))
    # The first merge was overtaken by the other nine calls: one more merge of the newest inputs, no more.
    assert merges == [2, 2]
    newest_core, newest_push = views[-2], views[-1]
    assert subject.sources["statusdat"] is newest_core and subject.sources["passive"] is newest_push
    expected = two_source_live(newest_core, newest_push)
    assert subject.data is not None and subject.data.services == expected.data.services
    assert subject.snapshot.groups == expected.snapshot.groups


async def test_sources_awaiting_their_own_publishes_end_with_the_newest_of_both() -> None:
    subject = two_source_live(core_view(0), push_view(0))
    published: list[tuple[str, int]] = []

    async def source(make: Callable[[int], SourceView], name: str, probe: tuple[str, str], stamp: int) -> None:
        for n in range(1, 5):
            await subject.publish_source(make(n))
            # Returned: this view (or a newer one of the same source) is in the published data now.
            assert subject.data is not None and subject.data.services[probe].last_check >= stamp + n
            published.append((name, n))

    await asyncio.gather(source(core_view, "statusdat", ("h199", "svc-99"), T),
                         source(push_view, "passive", ("h000", "svc-00"), T + 1000))  # fmt: skip
    assert sorted(published) == [(name, n) for name in ("passive", "statusdat") for n in range(1, 5)]
    expected = merge([core_view(4), push_view(4)])
    assert subject.data is not None and subject.data.services == expected.data.services


async def test_a_synchronous_update_during_a_merge_is_never_overwritten_by_it() -> None:
    subject = two_source_live(core_view(0), push_view(0))
    task = asyncio.create_task(subject.publish_source(core_view(1)))
    await asyncio.sleep(0)  # the merge of (core 1, push 0) is now running in a worker thread
    subject.update_source(push_view(1))  # publishes (core 1, push 1) at once, on the loop
    newest = subject.data
    await task
    assert subject.data is newest  # the overtaken merge was dropped, not published over it
    assert subject.data is not None and subject.data.services == merge([core_view(1), push_view(1)]).data.services


async def test_a_single_source_publishes_its_own_prepared_object(monkeypatch: pytest.MonkeyPatch) -> None:
    subject = live()
    data = core(1)
    await asyncio.to_thread(subject.prepare, data)  # as the tailer does after parsing
    first = config().components()[0]
    counted = agg.component_counts(first, data, subject.matcher)
    await subject.publish_source(SourceView("statusdat", data, FRESH))
    assert subject.data is data  # passed through: no copy, so the counts prepared above are the ones used
    assert agg.component_counts(first, data, subject.matcher) is counted
    # A second source comes and goes: the merged object is published, then the core's own again.
    await subject.publish_source(push_view(1))
    assert subject.data is not data
    await subject.drop_source("passive", SourceHealth(stale=True, reason="unused"))
    assert subject.data is data and agg.component_counts(first, data, subject.matcher) is counted


async def test_dropping_the_last_source_publishes_no_data_with_the_reason() -> None:
    subject = live()
    await subject.publish_source(core_view(1))
    await subject.drop_source("statusdat", SourceHealth(stale=True, reason="no monitoring source configured"))
    assert subject.data is None and subject.snapshot.stale
    assert subject.health.reason == "no monitoring source configured"
    await subject.drop_source("statusdat", FRESH)  # nothing left to drop: nothing changes
    assert subject.data is None


async def test_replaced_objects_are_released_and_objects_in_use_never(monkeypatch: pytest.MonkeyPatch) -> None:
    released: list[StatusData] = []
    monkeypatch.setattr(live_module, "release", released.append)
    c0, p0, c1 = core_view(0), push_view(0), core_view(1)
    subject = two_source_live(c0, p0)
    merged0 = subject.data
    released.clear()
    await subject.publish_source(c1)
    ids = {id(d) for d in released}
    assert ids == {id(merged0), id(c0.data)}  # the old merge and the core's old file, nothing else
    # A burst: the overtaken merge is released too, and forgotten by the Matcher.
    released.clear()
    merged1 = subject.data
    c2, c3 = core_view(2), core_view(3)
    await asyncio.gather(subject.publish_source(c2), subject.publish_source(c3))
    in_use = {id(subject.data), *(id(v.data) for v in subject.sources.values())}
    assert not in_use & {id(d) for d in released}
    assert {id(merged1), id(c1.data), id(c2.data)} <= {id(d) for d in released}
    overtaken = [d for d in released if all(d is not x for x in (merged1, c1.data, c2.data))]
    assert len(overtaken) == 1 and all(m.ref() is not overtaken[0] for m in subject.matcher._memos)


async def test_the_published_counts_survive_a_second_source_coming_up() -> None:
    subject, first = live(), config().components()[0]
    await subject.publish_source(push_view(1))
    published = subject.data
    assert published is not None
    counted = agg.component_counts(first, published, subject.matcher)
    data = core(1)
    await asyncio.to_thread(subject.prepare, data)  # the core's first file: one source holds data so far
    merged = merge([push_view(1), SourceView("statusdat", data, FRESH)]).data
    assert merged is not None
    agg.prepare(merged, subject.config, subject.matcher)  # what publish_source does in its worker thread
    # Until the merge is published, rebuilds (notices, ticks) still aggregate the old object: not recounted.
    assert agg.component_counts(first, published, subject.matcher) is counted


async def test_a_source_object_is_not_prepared_when_a_merge_will_be_published() -> None:
    subject = two_source_live(core_view(0), push_view(0))
    data = core(1)
    await asyncio.to_thread(subject.prepare, data)
    assert all(m.ref() is not data for m in subject.matcher._memos)  # skipped: the merge gets prepared instead
    await subject.publish_source(SourceView("statusdat", data, FRESH))
    assert subject.data is not None and subject.data.services == merge([core_view(1), push_view(0)]).data.services
