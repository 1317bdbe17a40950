"""GET /metrics is encoded once per generation and time bucket, rate limited like any public GET, and can be kept to
the admin listener ([http] metrics); every test runs the real app over HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from bridge.app import make_app
from bridge.config_load import parse_config
from bridge.daemon import bind
from bridge.front import LISTENERS
from bridge.keys import LIVE, REGISTRY
from bridge.model import SourceHealth
from bridge.settings import Settings
from bridge.views_passive import PASSIVE
from bridge.metrics import SCRAPE_SECONDS
from bridge.views_metrics import SCRAPE
from tests.conftest import check, free_port, metric_samples, status_data, web_config

FRESH = SourceHealth(stale=False, data_created=1_700_000_000.0)
# What the app registers: the page, its sources, Icinga, the limiter, passive pushes, connections, build info, process/platform/GC.
COLLECTORS = {"SnapshotCollector", "SourceCollector", "IcingaCollector", "LimiterCollector", "PassiveCollector", "ConnectionsCollector",
              "Info", "ProcessCollector", "PlatformCollector", "GCCollector"}  # fmt: skip
# Families whose values move by themselves between two encodings (CPU time, RSS, GC counts).
MOVING = ("process_", "python_gc_")


class Clock:
    """A settable clock for the scrape buckets (and, where given to make_app, the app)."""

    def __init__(self, now: float = 1_700_000_060.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def count_collects(registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Wrap every real collector of registry so each run is counted by class name."""
    runs: Counter[str] = Counter()
    for collector in list(registry._collector_to_names):  # what registry.collect() iterates

        def counted(real: Any = collector.collect, name: str = type(collector).__name__) -> Iterator[Any]:
            runs[name] += 1
            return real()

        monkeypatch.setattr(collector, "collect", counted)
    found = {type(c).__name__ for c in registry._collector_to_names}
    assert COLLECTORS <= found, COLLECTORS - found  # the count below covers every collector, or the test is void
    return runs


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value in a scrape."""
    return metric_samples(text)[(name, tuple(sorted(labels.items())))]


async def scrape(client: Any, who: str = "198.51.100.1") -> str:
    """One GET /metrics as client `who` (loopback is a trusted proxy), which must succeed."""
    resp = await client.get("/metrics", headers={"X-Forwarded-For": who})
    assert resp.status == 200, await resp.text()
    return await resp.text()


async def test_scrapes_in_one_generation_and_bucket_run_the_collectors_once(
    aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(Settings(web_config(rate_limit=0), watch=False))
    app[SCRAPE].clock = Clock()  # one time bucket for the whole test
    runs = count_collects(app[REGISTRY], monkeypatch)
    client = await aiohttp_client(app)
    app[LIVE].update(status_data(check("web-1", "HTTP", 2)), FRESH)
    bodies = await asyncio.gather(*(scrape(client) for _ in range(40)))  # concurrent scrapes share one encoding
    bodies += [await scrape(client) for _ in range(10)]
    assert len(set(bodies)) == 1
    assert metric(bodies[0], "status_bridge_component_status", component="website", group="web") == 2
    assert runs == {name: 1 for name in COLLECTORS}, runs


async def test_a_new_generation_or_bucket_is_encoded_afresh(aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(Settings(web_config(rate_limit=0.1, burst=1), watch=False))
    clock = app[SCRAPE].clock = Clock()
    runs = count_collects(app[REGISTRY], monkeypatch)
    client = await aiohttp_client(app)
    live = app[LIVE]
    live.update(status_data(check("web-1", "HTTP", 0)), FRESH)
    assert metric(await scrape(client, "198.51.100.1"), "status_bridge_component_status", component="website", group="web") == 0
    # A new generation shows at once, in the same bucket.
    live.update(status_data(check("web-1", "HTTP", 2)), FRESH)
    text = await scrape(client, "198.51.100.2")
    assert metric(text, "status_bridge_component_status", component="website", group="web") == 2
    assert runs["SnapshotCollector"] == 2
    # A counter that moves without a new generation (a 429 here) shows once the bucket has passed.
    for _ in range(2):
        await client.get("/api/services.json", headers={"X-Forwarded-For": "203.0.113.5"})
    assert metric(await scrape(client, "198.51.100.3"), "status_bridge_http_rate_limited_total") == 0  # at most a bucket old
    clock.now += SCRAPE_SECONDS
    assert metric(await scrape(client, "198.51.100.4"), "status_bridge_http_rate_limited_total") == 1
    assert runs == {name: 3 for name in COLLECTORS}, runs


async def test_the_cached_body_is_what_generate_latest_gives_for_the_same_state(aiohttp_client: Any) -> None:
    now = Clock()
    app = make_app(Settings(web_config(rate_limit=0), watch=False, push_tokens=("t",)), now)  # ages by a fixed clock
    app[SCRAPE].clock = Clock()
    client = await aiohttp_client(app)
    app[LIVE].update(status_data(check("web-1", "HTTP", 1), check("db-1", "PostgreSQL", 2)), FRESH)
    resp = await client.post("/api/v1/check-results", headers={"Authorization": "Bearer t"},
                             json={"results": [{"host": "web-1", "service": "HTTP", "state": 2, "output": "x"}]})  # fmt: skip
    assert resp.status == 200, await resp.text()
    await app[PASSIVE].publish()  # now, not after the publisher's gap (which could fall between the two reads)
    cached = await scrape(client)
    fresh = generate_latest(app[REGISTRY]).decode()

    def split(text: str) -> tuple[list[str], list[str]]:
        """Lines that must match exactly, and the moving families' lines without their values."""
        lines = text.splitlines()
        fixed = [x for x in lines if not x.lstrip("# HELPTYPE").startswith(MOVING)]
        moving = [x.rsplit(" ", 1)[0] for x in lines if x not in fixed]
        return fixed, moving

    assert split(cached) == split(fresh)
    assert "status_bridge_passive_results_total" in cached and "process_cpu_seconds_total" in cached


async def _serve_split(settings: Settings) -> tuple[web.AppRunner, str, str]:
    """The app on a public and an admin socket, as the daemon binds them: (runner, public URL, admin URL)."""
    assert settings.config.admin_listen is not None
    public, admin = settings.config.listen_port, settings.config.admin_listen[1]
    app = make_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    for port in (public, admin):
        for sock in bind("127.0.0.1", port):
            await web.SockSite(runner, sock).start()
    app[LISTENERS].admin.add(("127.0.0.1", admin))
    return runner, f"http://127.0.0.1:{public}", f"http://127.0.0.1:{admin}"


async def _status(session: aiohttp.ClientSession, url: str) -> int:
    """The status of one GET."""
    async with session.get(url) as resp:
        await resp.read()
        return resp.status


@pytest.mark.parametrize(("mode", "public", "admin"), [("public", 200, 404), ("admin", 404, 200), ("off", 404, 404)])
async def test_http_metrics_picks_the_listener(mode: str, public: int, admin: int) -> None:
    toml = (f'[http]\nlisten = "127.0.0.1:{free_port()}"\nadmin_listen = "127.0.0.1:{free_port()}"\n'
            f'metrics = "{mode}"\nrate_limit = 0.1\nburst = 30\n')  # fmt: skip
    runner, pub, adm = await _serve_split(Settings(parse_config(toml), watch=False))
    try:
        async with aiohttp.ClientSession() as session:
            assert (await _status(session, f"{pub}/metrics"), await _status(session, f"{adm}/metrics")) == (public, admin)
            assert await _status(session, f"{pub}/api/services.json") == 200  # the rest of the split is unchanged
            if mode == "admin":  # the admin listener is never rate limited (burst 30 on the public one)
                assert {await _status(session, f"{adm}/metrics") for _ in range(40)} == {200}
    finally:
        await runner.cleanup()


async def test_admin_metrics_without_the_admin_socket_is_not_served_publicly(aiohttp_client: Any) -> None:
    """A single listener (no admin socket bound, as `status-bridge get` runs the app): "admin" means 404, not public."""
    config = parse_config('[http]\nadmin_listen = "127.0.0.1:8081"\nmetrics = "admin"\n')
    client = await aiohttp_client(make_app(Settings(config, watch=False)))
    assert (await client.get("/metrics")).status == 404
    assert (await client.get("/api/services.json")).status == 200


async def test_a_metrics_flood_is_charged_like_any_public_get(aiohttp_client: Any) -> None:
    """One client past its burst gets 429s from /metrics too; another client (a scraper) still gets its scrape."""
    client = await aiohttp_client(make_app(Settings(web_config(rate_limit=0.1, burst=5), watch=False)))
    statuses = [(await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.5"})).status for _ in range(8)]
    assert statuses == [200] * 5 + [429] * 3
    await scrape(client, "198.51.100.1")  # 200


async def test_a_reload_changes_where_metrics_answers_from_the_next_request(aiohttp_client: Any) -> None:
    app = make_app(Settings(web_config(rate_limit=0), watch=False))
    client = await aiohttp_client(app)
    assert (await client.get("/metrics")).status == 200
    app[LIVE].set_config(web_config(rate_limit=0, metrics="off"))  # what a SIGHUP reload does
    assert (await client.get("/metrics")).status == 404
