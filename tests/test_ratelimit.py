"""Per-client rate limiting (token buckets, X-Forwarded-For from trusted proxies) and the admin listener split."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bridge.app import make_app
from bridge.config_load import parse_config
from bridge.daemon import bind
from bridge.front import LISTENERS
from bridge.keys import LIVE
from bridge.ratelimit import RateLimiter, client_ip
from bridge.settings import Settings
from tests.conftest import free_port, stop_rate_clock

NETS = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        """Start at 1000 s."""
        self.now = 1000.0

    def __call__(self) -> float:
        """The current time."""
        return self.now


def test_bucket_allows_burst_then_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(10, 20, clock=clock)
    assert [limiter.take("a") for _ in range(20)] == [0.0] * 20
    wait = limiter.take("a")
    assert wait == pytest.approx(0.1)  # one token every 1/10 s
    clock.now += 0.1
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    assert limiter.take("b") == 0.0  # another client has its own bucket
    assert limiter.limited_total == 2


def test_bucket_refills_only_to_burst_and_reconfigures() -> None:
    clock = Clock()
    limiter = RateLimiter(1, 3, clock=clock)
    for _ in range(3):
        limiter.take("a")
    clock.now += 3600
    assert [limiter.take("a") for _ in range(4)][-1] == pytest.approx(1.0)
    limiter.configure(0, 3)  # 0 = off
    assert limiter.take("a") == 0.0 and limiter.wait("a") == 0.0


def test_buckets_are_memory_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(1, 5, max_clients=100, clock=clock)
    for i in range(1000):
        limiter.take(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) <= 100
    # Buckets idle long enough to be full again are dropped as new clients come: a fresh one is the same.
    clock.now += 10
    for i in range(60):
        limiter.take(f"new-{i}")
    assert len(limiter) == 60


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),  # untrusted peer: its header is made up
        ("127.0.0.1", [], "127.0.0.1"),
        ("127.0.0.1", ["198.51.100.1"], "198.51.100.1"),
        ("127.0.0.1", ["6.6.6.6, 198.51.100.1, 10.1.2.3"], "198.51.100.1"),  # right-most untrusted
        ("127.0.0.1", ["6.6.6.6", "198.51.100.1, 10.1.2.3"], "198.51.100.1"),  # repeated headers
        ("127.0.0.1", ["10.9.9.9, 10.1.2.3"], "10.9.9.9"),  # all trusted: the left-most
        ("127.0.0.1", ["198.51.100.1:4711"], "198.51.100.1"),
        ("127.0.0.1", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("::ffff:127.0.0.1", ["198.51.100.1"], "198.51.100.1"),  # dual-stack peer notation
        ("127.0.0.1", ["unknown"], "unknown"),
        (None, ["198.51.100.1"], "unknown"),
    ],
)
def test_client_ip(peer: str | None, xff: list[str], expected: str) -> None:
    assert client_ip(peer, xff, NETS) == expected


def config(http: str) -> Settings:
    """Settings with only an [http] section; no background sources."""
    return Settings(parse_config(f"[http]\n{http}\n"), watch=False, push_tokens=("push-ok",), admin_tokens=("adm-ok",))


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    """Rate 0.1/s (its clock stopped: no refill during a test), burst 20, loopback 127.0.0.1 trusted as a proxy."""
    app = stop_rate_clock(make_app(config('rate_limit = 0.1\nburst = 20\ntrusted_proxies = ["127.0.0.1"]')))
    async with TestServer(app, host="127.0.0.1") as srv:
        yield srv


async def _get(session: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one GET."""
    async with session.get(url, headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def test_burst_then_429_with_retry_after(server: TestServer) -> None:
    url = str(server.make_url("/api/services.json"))
    async with aiohttp.ClientSession() as session:
        answers = await asyncio.gather(*(_get(session, url) for _ in range(30)))
        statuses = sorted(a[0] for a in answers)
        assert statuses == [200] * 20 + [429] * 10
        for status, headers, body in answers:
            if status == 429:
                assert int(headers["Retry-After"]) == 10  # a token every 10 s at 0.1/s
                err = json.loads(body)["error"]
                assert err["status"] == 429 and "too many requests" in err["message"]
        # Another client behind the trusted proxy has its own bucket.
        assert (await _get(session, url, **{"X-Forwarded-For": "198.51.100.7"}))[0] == 200
        # Probes are exempt; /metrics is charged like any public GET (a scraper is another client here).
        assert (await _get(session, str(server.make_url("/healthz"))))[0] == 200
        assert (await _get(session, str(server.make_url("/metrics"))))[0] == 429
        scraper = {"X-Forwarded-For": "198.51.100.9"}
        metrics = (await _get(session, str(server.make_url("/metrics")), **scraper))[2].decode()
        assert "status_bridge_http_rate_limited_total 11.0" in metrics


async def test_untrusted_peer_cannot_pick_its_bucket(server: TestServer) -> None:
    url = str(server.make_url("/api/services.json"))
    # 127.0.0.2 is loopback too, but not a trusted proxy: a fresh X-Forwarded-For per request changes nothing.
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        statuses = [(await _get(session, url, **{"X-Forwarded-For": f"198.51.100.{i}"}))[0] for i in range(21)]
    assert statuses == [200] * 20 + [429]


async def test_pushes_with_a_good_token_are_never_limited(server: TestServer) -> None:
    url = str(server.make_url("/api/v1/check-results"))
    body = {"results": [{"host": "h", "service": "s", "state": 0, "output": "OK"}]}
    async with aiohttp.ClientSession() as session:
        for _ in range(25):
            async with session.post(url, json=body, headers={"Authorization": "Bearer push-ok"}) as resp:
                assert resp.status == 200
        # Guessing tokens is limited like any public request.
        bad = []
        for _ in range(22):
            async with session.post(url, json=body, headers={"Authorization": "Bearer guess"}) as resp:
                bad.append(resp.status)
        assert bad == [403] * 20 + [429] * 2
        # The guessing address is blocked until its bucket refills; other senders are not.
        async with session.post(url, json=body, headers={"Authorization": "Bearer push-ok"}) as resp:
            assert resp.status == 429
        headers = {"Authorization": "Bearer push-ok", "X-Forwarded-For": "198.51.100.7"}
        async with session.post(url, json=body, headers=headers) as resp:
            assert resp.status == 200


async def test_admin_requests_with_a_good_token_are_never_limited(server: TestServer) -> None:
    # A script posting incident updates during an outage must not meet a 429; token guessing must.
    url = str(server.make_url("/api/v1/admin/notices"))
    async with aiohttp.ClientSession() as session:
        assert [(await _get(session, url, Authorization="Bearer adm-ok"))[0] for _ in range(25)] == [200] * 25
        bad = [(await _get(session, url, Authorization="Bearer guess"))[0] for _ in range(22)]
        assert bad == [403] * 20 + [429] * 2
        assert (await _get(session, url, Authorization="Bearer adm-ok"))[0] == 429
        # The public feed is charged to its own bucket, untouched by the admin requests.
        assert (await _get(session, str(server.make_url("/api/services.json"))))[0] == 200


UNACCEPTED = [
    ("POST", "/nrdp/?cmd=hello", 200),  # NRDP's hello needs no token: never an accepted submission
    ("GET", "/nrdp/?cmd=hello", 200),
    ("GET", "/nrdp/?cmd=submitcheck&token=guess", 200),  # NRDP answers BAD TOKEN with HTTP 200
    ("GET", "/api/v1/check-results", 405),
    ("GET", "/api/v1/admin/x", 404),
    ("POST", "/api/v1/admin/x", 404),
]


@pytest.mark.parametrize("method, path, status", UNACCEPTED, ids=[f"{m} {p}" for m, p, _ in UNACCEPTED])
async def test_token_paths_charge_every_request_that_is_not_accepted(server: TestServer, method: str, path: str,
                                                                     status: int) -> None:  # fmt: skip
    """Not only 401/403: hello, NRDP's HTTP-200 refusals, 404 and 405 under the token paths use up the bucket."""
    async with aiohttp.ClientSession() as session:
        got = []
        for _ in range(22):
            async with session.request(method, str(server.make_url(path))) as resp:
                await resp.read()
                got.append(resp.status)
    assert got == [status] * 20 + [429] * 2


NRDP_JSON = json.dumps({"checkresults": [{"checkresult": {"type": "service"}, "hostname": "h", "servicename": "s",
                                          "state": "0", "output": "OK"}]})  # fmt: skip


async def test_nrdp_submissions_with_a_good_token_are_never_limited(server: TestServer) -> None:
    """A Nagios sending NRDP results (POST, or GET as send_nrdp.py does) is never throttled; token guesses are."""
    url = str(server.make_url("/nrdp/"))
    good = {"token": "push-ok", "cmd": "submitcheck", "json": NRDP_JSON}
    async with aiohttp.ClientSession() as session:
        for i in range(30):
            request = session.post(url, data=good) if i % 2 else session.get(url, params=good)
            async with request as resp:
                assert resp.status == 200 and (await resp.json())["result"]["status"] == 0
        answers = []
        for _ in range(22):
            async with session.post(url, data={**good, "token": "guess"}) as resp:
                answers.append((resp.status, await resp.text()))
    assert [s for s, _ in answers] == [200] * 20 + [429] * 2
    assert all("<message>BAD TOKEN</message>" in text for _, text in answers[:20])  # refused before the json field


async def test_rate_limit_zero_turns_it_off() -> None:
    async with TestServer(make_app(config("rate_limit = 0\nburst = 1")), host="127.0.0.1") as srv, aiohttp.ClientSession() as session:
        answers = await asyncio.gather(*(_get(session, str(srv.make_url("/api/services.json"))) for _ in range(30)))
    assert {a[0] for a in answers} == {200}


@pytest.mark.parametrize("before, after", [("rate_limit = 0.1\nburst = 2", "rate_limit = 0\nburst = 2"),
                                           ("rate_limit = 0\nburst = 2", "rate_limit = 0.1\nburst = 2")])
async def test_a_reloaded_limit_applies_from_the_next_request(before: str, after: str) -> None:
    app = stop_rate_clock(make_app(config(before)))
    async with TestServer(app, host="127.0.0.1") as srv, aiohttp.ClientSession() as session:
        url = str(srv.make_url("/api/services.json"))
        first = [(await _get(session, url))[0] for _ in range(3)]
        app[LIVE].set_config(config(after).config)  # what a SIGHUP reload does
        second = [(await _get(session, url))[0] for _ in range(3)]
    limited, free = [200, 200, 429], [200, 200, 200]
    assert (first, second) == ((limited, free) if "0.1" in before else (free, limited))


async def test_admin_listen_splits_admin_and_public() -> None:
    public, admin = free_port(), free_port()
    settings = Settings(parse_config(f'[http]\nlisten = "127.0.0.1:{public}"\nadmin_listen = "127.0.0.1:{admin}"\n'),
                        watch=False, admin_tokens=("adm",))  # fmt: skip
    app = make_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        for port in (public, admin):
            for sock in bind("127.0.0.1", port):
                await web.SockSite(runner, sock).start()
        app[LISTENERS].admin.add(("127.0.0.1", admin))
        auth = {"Authorization": "Bearer adm"}
        async with aiohttp.ClientSession() as session:
            pub, adm = f"http://127.0.0.1:{public}", f"http://127.0.0.1:{admin}"
            assert (await _get(session, f"{pub}/api/v1/admin/notices", **auth))[0] == 404
            assert (await _get(session, f"{pub}/api/v1/admin", **auth))[0] == 404
            assert (await _get(session, f"{adm}/api/v1/admin/notices", **auth))[0] == 200
            assert (await _get(session, f"{adm}/api/services.json"))[0] == 404
            status, _, body = await _get(session, f"{pub}/api/services.json")
            assert status == 200 and b"overall_status_code" in body
            # The admin socket is not rate limited (burst 20 by default).
            for _ in range(25):
                assert (await _get(session, f"{adm}/api/v1/admin/notices", **auth))[0] == 200
    finally:
        await runner.cleanup()
