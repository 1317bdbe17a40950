"""Structural guards for issue 8: what runs where, in which steps, and what is cached or freed.

The event loop must keep serving while a big status.dat is read, parsed and prepared in a worker
thread, in small steps; publishing prepared data must count nothing on the loop; a replaced snapshot
must be freed off the loop; and the hot read APIs must be encoded once per generation, not once per
request. How long the loop pauses meanwhile is a speed target, measured by bench/loop_stall.py.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import bridge.statusdat as statusdat
from bridge import aggregate as agg
from bridge.app import make_app
from bridge.config import CheckPattern, Component, Config, Group
from bridge.encoded import DocCache, Encoded
from bridge.keys import LIVE
from bridge.live import Live
from bridge.merge import SourceView, merge
from bridge.model import SourceHealth, StatusData
from bridge.release import _free_in_steps
from bridge.settings import Settings
from bridge.statusdat_file import read_and_parse
from tests.conftest import Held, check, loop_until, record_threads, status_data, web_config

HOSTS, PER_HOST = 1000, 100  # 100k services, ~33 MB in this compact layout
CREATED = 1_700_000_000


def synthetic(hosts: int = HOSTS, per_host: int = PER_HOST, created: int = CREATED) -> bytes:
    """A status.dat with hosts x per_host services (only the keys the parser reads), states cycling."""
    out = [b"info {\n\tcreated=%d\n\tversion=4.4.6\n\t}\n\n" % created]
    for h in range(hosts):
        out.append(
            b"hoststatus {\n\thost_name=h%05d\n\thas_been_checked=1\n\tcurrent_state=%d\n\tlast_hard_state=%d\n"
            b"\tplugin_output=PING OK\n\tlong_plugin_output=\n\tlast_check=1700000000\n\tstate_type=1\n"
            b"\tlast_state_change=1699990000\n\tproblem_has_been_acknowledged=0\n\tis_flapping=0\n"
            b"\tscheduled_downtime_depth=%d\n\t}\n\n" % (h, h % 97 == 0, h % 97 == 0, h % 89 == 0)
        )
    for h in range(hosts):
        for s in range(per_host):
            state = (h + s) % 4
            out.append(
                b"servicestatus {\n\thost_name=h%05d\n\tservice_description=svc-%03d\n\thas_been_checked=1\n"
                b"\tcurrent_state=%d\n\tlast_hard_state=%d\n\tstate_type=1\n\tlast_state_change=%d\n"
                b"\tplugin_output=service %d state %d\n\tlong_plugin_output=\n\tlast_check=%d\n"
                b"\tproblem_has_been_acknowledged=0\n\tis_flapping=0\n\tscheduled_downtime_depth=0\n\t}\n\n"
                % (h, s, state, state, 1699990000 + s, s, state, 1700000000 + h)
            )
    return b"".join(out)


def config_100() -> Config:
    """100 components in 10 groups, each mapping 10 hosts' services and one host check by glob."""
    groups = tuple(
        Group(f"g{g}", f"G{g}", components=tuple(
            Component(f"c{k}", f"C{k}", f"g{g}", checks=(CheckPattern(f"h00{k:02d}?", "svc-*"), CheckPattern(f"h00{k:02d}0")))
            for k in range(g * 10, g * 10 + 10)))
        for g in range(10)
    )
    return Config(groups=groups)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "status.dat"
    path.write_bytes(synthetic())
    return path


async def test_event_loop_keeps_ticking_while_a_100k_file_is_taken_in(big_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Read, parse (chunk by chunk) and prepare run in a worker thread while the loop runs; publishing then counts nothing."""
    live = Live(config_100())
    health = SourceHealth(stale=False, data_created=CREATED)
    # The third chunk conversion (of ~50) waits in the worker until the loop has run: the loop is free
    # in the middle of the parse, not just at its ends. Every count computed records its thread.
    chunk_held = Held(statusdat._states, hold_call=3)
    monkeypatch.setattr(statusdat, "_states", chunk_held)
    counted = record_threads(monkeypatch, agg, "rules_for")
    taking_in = asyncio.create_task(asyncio.to_thread(read_and_parse, big_file, statusdat.parse, live.prepare))
    await chunk_held.serve_loop_meanwhile(taking_in)
    outcome = await taking_in
    chunk_held.assert_loop_ran_meanwhile()
    assert outcome.data is not None and len(outcome.data.services) == HOSTS * PER_HOST
    # Converted in many small steps (each at most CHUNK_BLOCKS blocks: the test below), all in the worker.
    assert len(chunk_held.threads) >= HOSTS * (PER_HOST + 1) // statusdat.CHUNK_BLOCKS
    assert len(counted) == len(config_100().components()) and chunk_held.loop_thread not in counted
    # Publishing the prepared data is assembly and encoding only: not one count is computed on the loop.
    counted.clear()
    live.update(outcome.data, health)
    assert counted == []
    assert sum(c.checks_matched for g in live.snapshot.groups for c in g.components) == 100_000 + 100


def test_each_conversion_step_is_one_chunk(big_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Structural guard: no single C-level conversion step may cover more than CHUNK_BLOCKS blocks.
    sizes: list[int] = []
    real = statusdat._states

    def spy(data: bytes, kind: bytes, flat: list[bytes], names: dict[bytes, str]) -> dict:
        sizes.append(len(flat) // len(statusdat._KINDS[kind]))
        return real(data, kind, flat, names)

    monkeypatch.setattr(statusdat, "_states", spy)
    parsed = statusdat.parse(big_file.read_bytes())
    assert len(parsed.services) == HOSTS * PER_HOST
    assert max(sizes) <= statusdat.CHUNK_BLOCKS
    assert sum(sizes) == HOSTS * (PER_HOST + 1)


class CountingDict(dict):  # type: ignore[type-arg]
    """A dict that counts the items popped from it (the freeing steps)."""

    popped: list[int] = []

    def popitem(self) -> Any:
        """Count, then pop."""
        CountingDict.popped.append(1)
        return super().popitem()


def test_a_replaced_snapshot_is_freed_in_steps_when_nothing_else_holds_it() -> None:
    plain = status_data(*(check(f"h{i}", "s") for i in range(100)))
    CountingDict.popped = []
    _free_in_steps([StatusData(1.0, None, CountingDict(plain.hosts), CountingDict(plain.services))])
    assert len(CountingDict.popped) == 200  # every host and service, one small step each

    CountingDict.popped = []
    kept = StatusData(1.0, None, CountingDict(plain.hosts), CountingDict(plain.services))
    _free_in_steps([kept])  # still referenced here: left alone (it goes with its last reference)
    assert CountingDict.popped == [] and len(kept.services) == 100 and len(kept.hosts) == 100


async def test_live_frees_big_replaced_data_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    import bridge.release as release_module

    monkeypatch.setattr(release_module, "RELEASE_MIN", 10)
    freed: list[str] = []
    real = release_module._free_in_steps

    def spy(box: list[StatusData]) -> None:
        freed.append(threading.current_thread().name)
        real(box)

    monkeypatch.setattr(release_module, "_free_in_steps", spy)
    live = Live(web_config())
    health = SourceHealth(stale=False, data_created=1.0)
    first = status_data(*(check(f"web-{i}", "HTTP") for i in range(20)))
    live.update(first, health)
    live.update(status_data(*(check(f"web-{i}", "HTTP") for i in range(20))), health)
    await loop_until(lambda: freed, "the replaced data handed to the release thread")
    assert freed[0] != threading.current_thread().name  # handed to a worker thread
    assert len(first.services) == 20  # but this test still holds `first`: never emptied under a reader


def test_merge_reuses_the_all_stale_key_set() -> None:
    data = status_data(check("a", "x"), check("b", "y"))
    stale = SourceHealth(stale=True, reason="old")
    one = merge([SourceView("statusdat", data, stale)]).stale_keys
    two = merge([SourceView("statusdat", data, stale)]).stale_keys
    assert one is two and one == {("a", None), ("b", None), ("a", "x"), ("b", "y")}


def test_jsonp_forms_and_headers_are_made_once_per_body() -> None:
    feed = Encoded.of({"a": 1})
    cb = feed.jsonp("cb")
    assert cb is feed.jsonp("cb") and cb.body == b'/**/cb({"a":1});' and cb.etag != feed.etag
    assert feed.headers(60) is feed.headers(60)
    assert feed.headers(60)["Content-Type"] == "application/json; charset=utf-8"
    assert cb.headers(60)["Content-Type"] == "application/javascript; charset=utf-8"
    assert cb.headers(60)["X-Content-Type-Options"] == "nosniff"
    assert "Content-Type" not in feed.headers(60, with_type=False)  # what a 304 carries
    for i in range(500):  # callbacks are client input: the memo stays bounded
        feed.jsonp(f"cb{i}")
    assert len(feed._memo) <= 64


async def test_component_docs_are_encoded_once_per_snapshot(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(Settings(web_config(), watch=False, db_path=tmp_path / "db.sqlite"))
    client = await aiohttp_client(app)
    live = app[LIVE]
    live.update(status_data(check("web-1", "HTTP"), check("db-1", "PostgreSQL")), SourceHealth(stale=False, data_created=1.0))
    first = await (await client.get("/api/v1/components")).read()
    calls: list[object] = []

    class Counting(Encoded):
        @classmethod
        def of(cls, obj: object) -> Encoded:
            calls.append(obj)
            return Encoded.of(obj)

    import bridge.views_v1 as views_v1

    monkeypatch.setattr(views_v1, "Encoded", Counting)
    for _ in range(5):
        assert await (await client.get("/api/v1/components")).read() == first
        assert (await client.get("/api/v1/status")).status == 200
    assert len(calls) == 1  # the status document once; the components one was cached already
    live.update(status_data(check("web-1", "HTTP", 2), check("db-1", "PostgreSQL")),
                SourceHealth(stale=False, data_created=2.0))
    changed = await (await client.get("/api/v1/components")).read()
    assert changed != first and len(calls) == 2  # a new snapshot: encoded afresh
    assert (await client.get("/api/v1/components?page=x")).status == 400  # errors are never cached
    assert (await client.get("/api/v1/components?page=x")).status == 400


def test_gc_does_not_walk_the_snapshot(big_file: Path) -> None:
    # Tracked objects after holding a 100k snapshot stay near the interpreter's own count.
    gc.collect()
    before = len(gc.get_objects())
    live = Live(config_100())
    data = statusdat.parse(big_file.read_bytes())
    live.prepare(data)
    live.update(data, SourceHealth(stale=False, data_created=CREATED))
    gc.collect()
    grown = len(gc.get_objects()) - before
    assert grown < 20_000, f"{grown} more objects tracked by the cyclic GC"  # ~3k measured; untracked: 200k+
    assert sys.getrefcount(data) >= 2


def test_per_data_caches_never_hold_states_alive() -> None:
    # The Matcher keeps the memo of the previous StatusData for a while: a strong list of its states
    # there kept a whole extra 100k-service snapshot in memory (measured: +40 MB RSS, +40 MB peak).
    from bridge.aggregate import explaining_times, prepare
    from bridge.model import Status

    config = config_100()
    data = statusdat.parse(synthetic(hosts=50, per_host=5))
    live = Live(config)
    states = list(data.services.values()) + list(data.hosts.values())
    before = [sys.getrefcount(s) for s in states]
    prepare(data, config, live.matcher)
    for comp in config.components():
        for status in Status:
            explaining_times(comp, data, status, live.matcher)
    assert [sys.getrefcount(s) for s in states] == before


def test_a_reload_recounts_only_what_it_changed() -> None:
    config = config_100()
    live = Live(config)
    data = statusdat.parse(synthetic(hosts=100, per_host=3))
    live.prepare(data)
    live.update(data, SourceHealth(stale=False, data_created=CREATED))
    kept = config.groups[0].components[1]
    counted = agg.component_counts(kept, data, live.matcher)
    changed = Component("c0", "C0", "g0", checks=(CheckPattern("h0000?", "svc-00[01]"),))
    groups = (Group("g0", "G0", components=(changed, *config.groups[0].components[1:])), *config.groups[1:])
    live.set_config(Config(groups=groups))
    assert agg.component_counts(kept, data, live.matcher) is counted  # not recomputed
    assert live.snapshot.groups[0].components[0].checks_matched == 10 * 2 + 0  # the new patterns apply


@pytest.mark.parametrize(
    "ttl, first, later, same_snapshot, hit",
    [
        (None, 100.0, 10_000.0, True, True),  # no ttl: valid for the snapshot however long
        (None, 100.0, 100.0, False, False),  # a new snapshot: everything re-encoded
        (60.0, 120.0, 179.9, True, True),  # the same 60 s bucket
        (60.0, 120.0, 180.0, True, False),  # the next bucket starts
        (60.0, 150.0, 119.9, True, False),  # the clock went back past the bucket's start
    ],
)
def test_doc_cache_keeps_documents_for_one_snapshot_and_time_bucket(ttl, first, later, same_snapshot, hit) -> None:
    cache, snap = DocCache(ttl), object()
    assert cache.get(snap, first, "q") is None
    doc = cache.put("q", Encoded.of({"a": 1}))
    assert cache.get(snap, first, "q") is doc and cache.get(snap, first, "other") is None
    assert (cache.get(snap if same_snapshot else object(), later, "q") is doc) == hit


class ItemsCounted(dict):  # type: ignore[type-arg]
    """A dict that counts walks over its items."""

    walks = 0

    def items(self) -> Any:
        """Count, then walk."""
        ItemsCounted.walks += 1
        return super().items()


def test_merging_pushed_results_into_a_big_source_walks_only_the_pushed_ones() -> None:
    plain = status_data(*(check(f"h{i}", "s", last_check=10, downtime_depth=i % 2) for i in range(1000)))
    big = StatusData(1.0, None, plain.hosts, ItemsCounted(plain.services))
    pushed = status_data(check("h1", "s", 2, last_check=20))
    fresh = SourceHealth(stale=False, data_created=1.0)
    views = [SourceView("statusdat", big, fresh), SourceView("passive", pushed, fresh, annotated=False)]
    merge(views)  # the first merge of this core data notes its downtimes once
    ItemsCounted.walks = 0
    merged = merge(views).data
    assert ItemsCounted.walks == 0  # copied at C speed, never walked in Python again
    assert merged is not None and len(merged.services) == 1000
    assert merged.services[("h1", "s")].current_state == 2
    assert merged.services[("h1", "s")].downtime_depth == 1  # the core's downtime still applies to the pushed result
