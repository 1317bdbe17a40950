"""Per-client rate limiting: token buckets keyed by client IP (X-Forwarded-For from trusted proxies only)."""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from bridge.config import Network
from bridge.http import error_response

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_CLIENTS = 50_000  # buckets kept at most (~250 B each): a flood of new addresses cannot grow memory

class RateLimiter:
    """Token buckets: `rate` tokens/s up to `burst`, one per request; LRU-bounded, idle full buckets dropped."""

    def __init__(
        self, rate: float, burst: int, max_clients: int = MAX_CLIENTS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """rate 0 turns limiting off."""
        self.rate, self.burst = rate, burst
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[object, list[float]] = OrderedDict()  # key -> [tokens, last update]
        self.limited_total = 0

    def configure(self, rate: float, burst: int) -> None:
        """New limits (on reload); existing buckets keep their tokens, capped at the new burst."""
        self.rate, self.burst = rate, burst

    def __len__(self) -> int:
        """Buckets currently held."""
        return len(self._buckets)

    def _bucket(self, key: object, now: float) -> list[float]:
        """key's bucket refilled to now, moved to the young end of the LRU order."""
        bucket = self._buckets.get(key)
        if bucket is None:
            # Only a new key can grow the table, so only then is it trimmed.
            self._evict(now)
            bucket = self._buckets[key] = [float(self.burst), now]
        else:
            bucket[0] = min(float(self.burst), bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
            self._buckets.move_to_end(key)
        return bucket

    def _evict(self, now: float) -> None:
        """Drop the oldest buckets when at the cap, or when they have refilled (a fresh one is the same)."""
        full_after = self.burst / self.rate if self.rate > 0 else 0.0
        for _ in range(2):  # amortised: two per new key keeps up with any arrival rate
            if not self._buckets:
                return
            oldest = next(iter(self._buckets.values()))
            if len(self._buckets) < self.max_clients and now - oldest[1] < full_after:
                return
            self._buckets.popitem(last=False)

    def take(self, key: object) -> float:
        """Spend one token: 0.0 when allowed, else the seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        bucket = self._bucket(key, now)
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return 0.0
        self.limited_total += 1
        return (1.0 - bucket[0]) / self.rate

    def wait(self, key: object) -> float:
        """Seconds until key may spend a token (0.0 = now), spending nothing."""
        if self.rate <= 0 or key not in self._buckets:
            return 0.0
        bucket = self._bucket(key, self.clock())
        return 0.0 if bucket[0] >= 1.0 else (1.0 - bucket[0]) / self.rate


def parse_ip(text: str) -> Address | None:
    """An address from a header hop: '1.2.3.4', '1.2.3.4:567', '[::1]:80' or '::1'; None when not one."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d: one client, one bucket.
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


class TrustedProxies:
    """Finds the client behind trusted proxies; remembers what each address string is (parsing costs µs)."""

    def __init__(self, networks: Sequence[Network]) -> None:
        """networks: the proxies whose X-Forwarded-For is believed."""
        self.networks = tuple(networks)
        self._known: dict[str, tuple[str | None, bool]] = {}

    def classify(self, text: str) -> tuple[str | None, bool]:
        """(normalised address, or None when text is not one; whether it is a trusted proxy)."""
        found = self._known.get(text)
        if found is None:
            if len(self._known) >= 4096:
                self._known.clear()  # bounded: a flood of made-up addresses cannot grow it
            addr = parse_ip(text)
            found = (None, False) if addr is None else (str(addr), any(addr in net for net in self.networks))
            self._known[text] = found
        return found

    def client(self, peer: str | None, forwarded: Iterable[str]) -> str:
        """The peer, or behind trusted proxies the right-most X-Forwarded-For hop that is not one."""
        addr, is_proxy = self.classify(peer) if peer else (None, False)
        if addr is None:
            return peer or "unknown"
        if not is_proxy:
            return addr  # its X-Forwarded-For is whatever the client made up
        hops = [h.strip()[:64] for header in forwarded for h in header.split(",") if h.strip()]
        for hop in reversed(hops):
            hop_addr, hop_is_proxy = self.classify(hop)
            if not hop_is_proxy:
                # Proxies append the peer they saw, so the first untrusted hop from the right is the client.
                return hop_addr if hop_addr is not None else hop
        # Every hop is a trusted proxy (or there is none): the left-most one is as close as we get.
        return (self.classify(hops[0])[0] or addr) if hops else addr


_PROXIES: dict[int, tuple[Sequence[Network], TrustedProxies]] = {}


def proxies(trusted: Sequence[Network]) -> TrustedProxies:
    """The TrustedProxies for a config's tuple (one per tuple object, so its cache survives between requests)."""
    entry = _PROXIES.get(id(trusted))
    if entry is None or entry[0] is not trusted:
        if len(_PROXIES) > 8:
            _PROXIES.clear()  # reloads make new tuples: keep only a few
        entry = _PROXIES[id(trusted)] = (trusted, TrustedProxies(trusted))
    return entry[1]


def client_ip(peer: str | None, forwarded: Iterable[str], trusted: Sequence[Network]) -> str:
    """The client a request comes from: the peer, or behind trusted proxies the right-most untrusted hop."""
    return proxies(trusted).client(peer, forwarded)


def request_client(request: web.Request, trusted: Sequence[Network]) -> str:
    """The client IP of a request (used for limiting and the access log)."""
    return client_ip(request.remote, request.headers.getall("X-Forwarded-For", ()), trusted)


def too_many(wait: float, rate: float, burst: int) -> web.Response:
    """429 in the JSON error shape with Retry-After in whole seconds (at least 1)."""
    retry = max(1, math.ceil(wait))
    resp = error_response(
        429, f"too many requests: at most {rate:g} per second per client (burst {burst}); retry after {retry} s"
    )
    resp.headers["Retry-After"] = str(retry)
    return resp


class LimiterCollector:
    """Prometheus view of the limiter: requests refused and buckets held."""

    def __init__(self, limiter: RateLimiter) -> None:
        """Read limiter at every scrape."""
        self.limiter = limiter

    def describe(self) -> list[Metric]:
        """Nothing up front: the registry needs no names to check for clashes here."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The two metrics as of now."""
        refused = CounterMetricFamily("status_bridge_http_rate_limited", "Requests answered 429 by the per-client rate limit")
        refused.add_metric([], self.limiter.limited_total)
        yield refused
        yield GaugeMetricFamily("status_bridge_http_rate_limit_clients", "Clients with a rate-limit bucket in memory",
                                value=len(self.limiter))  # fmt: skip
