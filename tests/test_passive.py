"""Native passive endpoint POST /api/v1/check-results, the PassiveStore and the coalescing publisher."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.app import make_app
from bridge.keys import LIVE
from bridge.model import SourceHealth
from bridge.passive import Result, split_output
from bridge.passive_store import CheckFilter, PassiveStore
from bridge.settings import Settings
from bridge.views_passive import PASSIVE
from tests.conftest import HANG_GUARD, check, record_threads, status_data, web_config

AUTH = {"Authorization": "Bearer t"}
T0 = 1_800_000_000.0
URL = "/api/v1/check-results"


class Clock:
    """A settable clock for make_app."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(tmp_path, clock=None, tokens=("t",), **config):
    # Fuzzing sends hundreds of unauthenticated pushes from one address: here they must reach the handler
    # (rejected pushes count against the rate limit, tested in tests/test_ratelimit.py).
    config.setdefault("rate_limit", 0.0)
    settings = Settings(web_config(**config), watch=False, push_tokens=tokens, db_path=tmp_path / "db.sqlite")
    return make_app(settings, clock or Clock())


@pytest.fixture
async def client(aiohttp_client, tmp_path):
    return await aiohttp_client(make(tmp_path))


async def push(client, body, status=200, headers=AUTH) -> dict:
    resp = await client.post(URL, data=json.dumps(body), headers=headers)
    got = await resp.json()
    assert resp.status == status, got
    return got


async def feed(client) -> dict[str, dict]:
    """Component id -> its entry in /api/services.json."""
    body = await (await client.get("/api/services.json")).json()
    return {s["id"]: s for g in body["groups"] for s in g["services"]}


async def publish(client) -> None:
    await client.server.app[PASSIVE].publish()


async def until_async(probe: Callable[[], Awaitable[bool]], every: float = 0.02) -> None:
    """Await probe() every `every` s until it is true (callers bound it with a generous wait_for).

    Against an app with the default rate limit (10/s per client), poll at most 5 times a second.
    """
    while not await probe():
        await asyncio.sleep(every)


def svc(state: int, **kw) -> dict:
    return {"host": "web-1", "service": "HTTP", "state": state, **kw}


# -- the endpoint --------------------------------------------------------------------------------------------------


async def test_valid_batch_is_accepted_and_shown(client):
    got = await push(client, {"results": [svc(2, output="CRITICAL - refused"), {"host": "db-1", "service": "PostgreSQL", "state": 0}]})
    assert got == {"accepted": 2, "ignored": 0, "refused": 0, "invalid": 0, "errors": []}
    await publish(client)
    assert {k: v["status"] for k, v in (await feed(client)).items()} == {"website": "down", "database": "up"}


async def test_bare_list_and_defaults(client):
    got = await push(client, [{"host": "web-1", "service": "HTTP", "state": 1}])
    assert got["accepted"] == 1
    held = client.server.app[PASSIVE].store.services[("web-1", "HTTP")]
    assert (held.plugin_output, held.last_check, held.state_type, held.last_hard_state) == ("", int(T0), 1, 1)


ITEM_ERRORS = [
    (svc(4), "results[0].state", "out of range"),
    (svc(-1), "results[0].state", "out of range"),
    (svc("2"), "results[0].state", "integer"),
    (svc(True), "results[0].state", "integer"),
    (svc(1.5), "results[0].state", "integer"),
    ({"host": "web-1", "service": "HTTP"}, "results[0].state", "required"),
    ({"service": "HTTP", "state": 0}, "results[0].host", "non-empty string"),
    ({"host": "", "state": 0}, "results[0].host", "non-empty string"),
    ({"host": 5, "state": 0}, "results[0].host", "non-empty string"),
    ({"host": "web-1\n", "state": 0}, "results[0].host", "control"),
    ({"host": "w" * 256, "state": 0}, "results[0].host", "longer than 255"),
    ({"host": "w", "service": "s" * 256, "state": 0}, "results[0].service", "longer than 255"),
    ({"host": "web-1", "service": 7, "state": 0}, "results[0].service", "non-empty string"),
    ({"host": "web-1", "state": 3}, "results[0].state", "host states"),
    (svc(0, timestamp="yesterday"), "results[0].timestamp", "ISO-8601"),
    (svc(0, timestamp=[1]), "results[0].timestamp", "ISO-8601"),
    (svc(0, timestamp=-5), "results[0].timestamp", "between"),
    (svc(0, output=5), "results[0].output", "string"),
    ("web-1;HTTP;0", "results[0]", "object"),
]


@pytest.mark.parametrize("item, field, message", ITEM_ERRORS)
async def test_item_errors(client, item, field, message):
    got = await push(client, {"results": [item]}, status=422)
    assert got["error"]["status"] == 422 and got["error"]["field"] == field
    assert got["errors"][0]["index"] == 0 and got["errors"][0]["field"] == field
    assert message in got["errors"][0]["message"]
    assert got["accepted"] == 0 and got["invalid"] == 1


async def test_partial_batch_keeps_the_valid_items(client):
    got = await push(client, {"results": [svc(2), svc(9), {"host": "db-1", "service": "PostgreSQL", "state": 1}]})
    assert (got["accepted"], got["invalid"]) == (2, 1)
    assert got["errors"] == [{"index": 1, "field": "results[1].state", "message": "9 is out of range (service states are 0-3)"}]


async def test_timestamps_iso_and_epoch_and_future_clamped(aiohttp_client, tmp_path):
    # Results from 2026 at T0 (2027) are a year old: kept only while forget_after is longer than that.
    client = await aiohttp_client(make(tmp_path, passive_forget_after=400 * 86400.0))
    store = client.server.app[PASSIVE].store
    await push(client, [svc(1, timestamp="2026-01-01T00:00:00Z")])
    assert store.services[("web-1", "HTTP")].last_check == 1767225600
    await push(client, [svc(2, timestamp=1767225700.5)])
    assert store.services[("web-1", "HTTP")].last_check == 1767225700
    await push(client, [svc(3, timestamp=T0 + 3600)])  # a clock running ahead: taken as now
    assert store.services[("web-1", "HTTP")].last_check == int(T0)
    await push(client, [svc(0, timestamp=T0 - 1)])
    assert store.services[("web-1", "HTTP")].current_state == 3  # older than that "now" result


@pytest.mark.parametrize(
    "raw, status, field",
    [
        (b"{not json", 400, "body"),
        (b"", 400, "body"),
        (b"NaN", 400, "body"),
        (b'{"results": 5}', 400, "results"),
        (b'{"other": []}', 400, "results"),
        (b'"text"', 400, "body"),
    ],
)
async def test_body_errors(client, raw, status, field):
    resp = await client.post(URL, data=raw, headers=AUTH)
    assert resp.status == status
    assert (await resp.json())["error"]["field"] == field


async def test_empty_batch_is_fine(client):
    assert await push(client, {"results": []}) == {"accepted": 0, "ignored": 0, "refused": 0, "invalid": 0, "errors": []}


@pytest.mark.parametrize(
    "headers, status",
    [
        ({}, 401),
        ({"Authorization": "Bearer"}, 401),
        ({"Authorization": "Basic dDp0"}, 401),
        ({"Authorization": "Bearer wrong"}, 403),
        ({"Authorization": "Bearer t"}, 200),
        ({"Authorization": "bearer t"}, 200),
        ({"Authorization": "Bearer second"}, 200),
    ],
)
async def test_auth(aiohttp_client, tmp_path, headers, status):
    client = await aiohttp_client(make(tmp_path, tokens=("t", "second")))
    resp = await client.post(URL, data=b'{"results": [{"host": "web-1", "service": "HTTP", "state": 0}]}', headers=headers)
    assert resp.status == status
    if status == 401:
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    if status != 200:
        assert (await resp.json())["error"]["status"] == status
        assert len(client.server.app[PASSIVE].store) == 0


async def test_no_tokens_means_closed(aiohttp_client, tmp_path):
    client = await aiohttp_client(make(tmp_path, tokens=()))
    resp = await client.post(URL, json=[svc(0)], headers=AUTH)
    assert resp.status == 403
    assert (await resp.json())["error"]["message"] == "passive push disabled: no tokens configured"


async def test_disabled(aiohttp_client, tmp_path):
    client = await aiohttp_client(make(tmp_path, passive_enabled=False))
    resp = await client.post(URL, json=[svc(0)], headers=AUTH)
    assert resp.status == 403
    assert (await resp.json())["error"]["message"] == "passive endpoints disabled"


async def test_body_limit(aiohttp_client, tmp_path):
    client = await aiohttp_client(make(tmp_path, passive_max_body=200))
    big = json.dumps([svc(0, output="x" * 300)]).encode()
    resp = await client.post(URL, data=big, headers=AUTH)
    assert resp.status == 413 and (await resp.json())["error"]["field"] == "body"

    async def chunks():  # no Content-Length: the limit must hold while streaming too
        for _ in range(10):
            yield b" " * 100

    resp = await client.post(URL, data=chunks(), headers=AUTH)
    assert resp.status == 413
    assert (await push(client, [svc(0)]))["accepted"] == 1  # a small body still passes


async def test_unknown_checks_are_ignored_and_counted(client):
    got = await push(client, [svc(0), {"host": "nope", "service": "x", "state": 2}, {"host": "nope", "state": 1}, svc(7)])
    assert (got["accepted"], got["ignored"], got["invalid"]) == (1, 2, 1)
    assert len(client.server.app[PASSIVE].store) == 1
    text = await (await client.get("/metrics")).text()
    assert 'status_bridge_passive_results_total{result="accepted"} 1.0' in text
    assert 'status_bridge_passive_results_total{result="ignored"} 2.0' in text
    assert 'status_bridge_passive_results_total{result="invalid"} 1.0' in text
    assert "status_bridge_passive_checks 1.0" in text


async def test_host_results_count_for_service_patterns(client):
    # web-1 has no host pattern, but its host DOWN marks the website's services down.
    got = await push(client, [svc(0), {"host": "web-1", "state": 1}])
    assert got["accepted"] == 2
    await publish(client)
    assert (await feed(client))["website"]["status"] == "down"


async def test_older_result_never_overwrites_newer(client):
    await push(client, [svc(2, timestamp=T0 - 10)])
    got = await push(client, [svc(0, timestamp=T0 - 20)])
    assert (got["accepted"], got["ignored"]) == (0, 1)
    await push(client, [svc(1, timestamp=T0 - 10)])  # same time: the later arrival wins
    held = client.server.app[PASSIVE].store.services[("web-1", "HTTP")]
    assert (held.current_state, held.last_check) == (1, int(T0 - 10))


async def test_passive_and_statusdat_newest_wins_both_ways(client):
    live = client.server.app[LIVE]
    fresh = SourceHealth(stale=False, data_created=T0)
    live.update(status_data(check("web-1", "HTTP", 0, last_check=int(T0) - 100)), fresh)
    await push(client, [svc(2, timestamp=T0 - 50)])
    await publish(client)
    assert (await feed(client))["website"]["status"] == "down"  # pushed result is newer
    live.update(status_data(check("web-1", "HTTP", 0, last_check=int(T0) - 10)), fresh)
    assert (await feed(client))["website"]["status"] == "up"  # status.dat is newer now
    await push(client, [svc(2, timestamp=T0 - 30)])
    await publish(client)
    assert (await feed(client))["website"]["status"] == "up"  # a late push older than status.dat loses


async def test_per_check_staleness_with_injected_clock(aiohttp_client, tmp_path):
    clock = Clock()
    client = await aiohttp_client(make(tmp_path, clock, passive_stale_after=60))
    await push(client, [svc(0), {"host": "db-1", "service": "PostgreSQL", "state": 0}])
    await publish(client)
    assert {k: v["stale"] for k, v in (await feed(client)).items()} == {"website": False, "database": False}
    clock.now += 45
    await push(client, [svc(0)])
    clock.now += 30  # database's result is 75 s old, website's 30 s
    await publish(client)
    body = await (await client.get("/api/services.json")).json()
    assert {k: v["stale"] for k, v in (await feed(client)).items()} == {"website": False, "database": True}
    assert body["stale"] is False  # the source still has a fresh result
    assert (await feed(client))["database"]["status"] == "up"  # last known state kept, marked stale
    clock.now += 60
    await publish(client)
    body = await (await client.get("/api/services.json")).json()
    assert body["stale"] is True and "passive" in body["stale_reason"]


async def test_staleness_republished_without_new_pushes(aiohttp_client, tmp_path):
    clock = Clock()
    app = make(tmp_path, clock, passive_stale_after=60)
    app[PASSIVE].refresh = 0.05
    client = await aiohttp_client(app)
    await push(client, [svc(0)])
    clock.now += 61

    async def published_stale() -> bool:
        return (await feed(client))["website"]["stale"]

    await asyncio.wait_for(until_async(published_stale), HANG_GUARD)


async def test_a_pushed_result_is_published_at_once_not_after_a_timer(aiohttp_client, tmp_path):
    """A push after a quiet spell is published at once: with the gap and the refresh an hour long, only the push can."""
    app = make(tmp_path)
    app[PASSIVE].min_gap = app[PASSIVE].refresh = 3600.0
    client = await aiohttp_client(app)
    await push(client, [svc(2)])

    async def published_down() -> bool:
        return (await feed(client))["website"]["status"] == "down"

    await asyncio.wait_for(until_async(published_down), HANG_GUARD)


async def test_many_pushes_coalesce_into_few_rebuilds(client, monkeypatch):
    live, hub = client.server.app[LIVE], client.server.app[PASSIVE]
    calls: list[tuple[float, float]] = []  # (start, end) of each rebuild, loop time
    first_done = asyncio.Event()  # the first rebuild stays in progress until all 40 pushes are in
    original = live.publish_changes

    async def counted(*args):
        loop = asyncio.get_running_loop()
        start = loop.time()
        if not calls:
            await first_done.wait()
        await original(*args)
        calls.append((start, loop.time()))

    monkeypatch.setattr(live, "publish_changes", counted)  # what the publisher calls for each rebuild
    for i in range(40):
        await push(client, [svc(i % 4, timestamp=T0 - 100 + i)])
    first_done.set()

    async def last_one_shown() -> bool:
        return (await feed(client))["website"]["status"] == "partial"  # the last one (state 3, UNKNOWN) won

    await asyncio.wait_for(until_async(last_one_shown), HANG_GUARD)
    # Pushes during a rebuild make one more rebuild, of the newest results, once the gap after it has passed.
    assert 1 <= len(calls) <= 2
    assert all(b[0] - a[1] >= hub.min_gap for a, b in zip(calls, calls[1:]))  # a lower bound: load only adds to it


# -- pure parts ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, short, long",
    [
        ("OK", "OK", ""),
        ("OK - fine | load=1;2;3", "OK - fine", ""),
        ("WARN\nline 2\nline 3 | perf=1\nperf=2", "WARN", "line 2\nline 3"),
        ("CRIT|p=1\ndetail\n", "CRIT", "detail"),
        ("", "", ""),
    ],
)
def test_split_output(text, short, long):
    assert split_output(text) == (short, long)


def test_check_filter_globs_and_cache():
    f = CheckFilter(web_config())
    assert f.wants("web-1", "HTTP") and f.wants("web-1", "HTTPS") and f.wants("db-1", "PostgreSQL")
    assert not f.wants("web-1", "SSH") and not f.wants("web-2", "HTTP") and not f.wants("db-1", "PostgreSQL2")
    assert f.wants("web-1", None) and f.wants("db-1", None) and not f.wants("web-2", None)
    assert not f.wants("web-1\x00HTTP", None)


def test_store_keeps_last_state_change_while_state_holds():
    store = PassiveStore(web_config())
    store.submit([Result("web-1", "HTTP", 2, "a", 100.0)], 100.0)
    store.submit([Result("web-1", "HTTP", 2, "b", 200.0)], 200.0)
    assert store.services[("web-1", "HTTP")].last_state_change == 100
    store.submit([Result("web-1", "HTTP", 0, "c", 300.0)], 300.0)
    assert store.services[("web-1", "HTTP")].last_state_change == 300


def test_store_view_is_a_stable_copy():
    store = PassiveStore(web_config())
    assert store.view().data is None  # nothing pushed: claims nothing
    store.submit([Result("web-1", "HTTP", 2, "a", 100.0)], 150.0)
    first = store.view()
    assert first.data is not None and first.name == "passive" and first.annotated is False
    assert store.view().data is first.data  # unchanged store: same object (Matcher caches by identity)
    store.submit([Result("db-1", "PostgreSQL", 0, "b", 120.0)], 150.0)
    assert ("db-1", "PostgreSQL") not in first.data.services  # published data is never mutated


def test_store_stale_keys_per_check():
    store = PassiveStore(web_config(passive_stale_after=60))
    store.submit([Result("web-1", "HTTP", 0, "", 100.0), Result("db-1", "PostgreSQL", 0, "", 200.0)], 200.0)
    assert store.stale_keys(150.0) == frozenset()
    assert store.stale_keys(170.0) == {("web-1", "HTTP")}
    store.submit([Result("web-1", "HTTP", 0, "", 240.0)], 240.0)
    assert store.stale_keys(270.0) == {("db-1", "PostgreSQL")}
    assert store.view().health.stale is False
    store.submit([Result("web-1", None, 0, "", 50.0)], 270.0)  # a new check can arrive already old
    assert store.stale_keys(270.0) == {("db-1", "PostgreSQL"), ("web-1", None)}
    store.stale_keys(400.0)
    view = store.view()
    assert view.health.stale and view.health.data_created == 240.0


def test_store_scales_to_100k_keys(monkeypatch):
    """100k distinct checks: one pattern decision per check, cached for the next push; one stored state per result."""
    store = PassiveStore(web_config())
    results = [Result("web-1", f"HTTP-{i}", i % 4, "x", 100.0) for i in range(100_000)]
    # Counted rather than timed (speed is bench/ingest.py's): work per result stays constant as the store grows.
    matched = CountingPattern(store._filter._service)
    store._filter._service = matched  # type: ignore[assignment]
    stored = record_threads(monkeypatch, store, "_store")
    assert store.submit(results, 100.0) == (100_000, 0, 0)
    assert (matched.calls, len(stored)) == (100_000, 100_000)
    assert store.submit([r._replace(timestamp=200.0) for r in results], 200.0) == (100_000, 0, 0)
    assert (matched.calls, len(stored)) == (100_000, 200_000)  # cached pattern decisions
    store.take(1000.0)
    view = store.view()
    assert view.data is not None and len(view.data.services) == len(store) == 100_000
    assert store.view().data is view.data  # built once per change, not per publish


class CountingPattern:
    """A compiled pattern that counts its fullmatch calls."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern, self.calls = pattern, 0

    def fullmatch(self, text: str) -> re.Match[str] | None:
        """Count, then match."""
        self.calls += 1
        return self.pattern.fullmatch(text)


# -- never a 500 ---------------------------------------------------------------------------------------------------

KEYS = st.sampled_from(["results", "host", "service", "state", "output", "timestamp", "x"])
SCALARS = st.none() | st.booleans() | st.integers(-5, 2**70) | st.floats(allow_nan=False) | st.text(max_size=30)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5), max_leaves=25)


class Server:
    """One app on its own loop for Hypothesis (which cannot use function-scoped async fixtures)."""

    def __init__(self, tmp_path) -> None:
        self.runner = asyncio.Runner()

        async def start() -> TestClient:
            client = TestClient(TestServer(make(tmp_path)))
            await client.start_server()
            return client

        self.client = self.runner.run(start())

    def post(self, raw: bytes) -> tuple[int, object]:
        async def go() -> tuple[int, object]:
            resp = await self.client.post(URL, data=raw, headers=AUTH)
            return resp.status, await resp.json()

        return self.runner.run(go())

    def close(self) -> None:
        self.runner.run(self.client.close())
        self.runner.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("hyp"))
    yield s
    s.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=JSON | st.builds(lambda items: {"results": items}, st.lists(JSON, max_size=5)) | st.binary(max_size=40))
def test_random_bodies_never_500(server, body):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, got = server.post(raw)
    assert status in (200, 400, 422), (status, got)
    assert isinstance(got, dict)
    if status == 200:
        assert set(got) == {"accepted", "ignored", "refused", "invalid", "errors"}
    else:
        assert got["error"]["status"] == status and isinstance(got["error"]["message"], str)


def test_push_tokens_from_flag_config_or_env(tmp_path, monkeypatch, capsys):
    from bridge.cli import load_push_tokens

    monkeypatch.setenv("STATUS_BRIDGE_PUSH_TOKENS", "env-1, env-2")
    assert load_push_tokens(None, web_config()) == ("env-1", "env-2")
    configured = tmp_path / "config.tokens"
    configured.write_text("# push tokens\nfrom-config\n")
    configured.chmod(0o600)
    config = web_config(passive_tokens_file=configured)
    assert load_push_tokens(None, config) == ("from-config",)
    flag = tmp_path / "flag.tokens"
    flag.write_text("from-flag\n\n")
    flag.chmod(0o644)
    assert load_push_tokens(flag, config) == ("from-flag",)
    assert "chmod 600" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        load_push_tokens(tmp_path / "missing", config)
