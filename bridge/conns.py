"""Connection caps: open connections per listener, per client address and in total; refusals and accept failures
counted, logged at most once per interval, and exported as metrics."""

from __future__ import annotations

import enum
import ipaddress
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from bridge.fdlimit import ADMIN_MAX_CONNECTIONS, RESERVED_FDS, max_connections
from bridge.front import HasConfig
from bridge.logs import kv
from bridge.ratelimit import proxies

log = logging.getLogger("bridge.http")

LOG_INTERVAL = 10.0  # seconds between two lines about refusals or accept failures: an attacker sets their rate


class Refused(enum.Enum):
    """Why a new connection was turned away."""

    PER_IP = "per_ip"
    TOTAL = "total"


class Every:
    """Says yes at most once per interval."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        """The first call is always due."""
        self.interval, self.clock = interval, clock
        self._last = -interval

    def due(self) -> bool:
        """True when the interval has passed since the last True."""
        now = self.clock()
        if now - self._last < self.interval:
            return False
        self._last = now
        return True


class ConnectionGuard:
    """Counts one listener's open connections per client address and in total, and admits or refuses new ones."""

    def __init__(self, live: HasConfig, listener: str, clock: Callable[[], float] = time.monotonic) -> None:
        """listener: "public" (capped by http.max_connections) or "admin" (ADMIN_MAX_CONNECTIONS)."""
        self.live, self.listener = live, listener
        self.fd_limit = 1024  # the daemon sets the limit in force before it accepts
        self.open = 0
        self.per_client: dict[str, int] = {}  # only clients with a connection open: bounded by the total cap
        self.refused = {reason: 0 for reason in Refused}
        self.accept_errors = 0
        self._config: object = None
        self._caps = (0, 0)
        self._log_refusals, self._log_errors = Every(LOG_INTERVAL, clock), Every(LOG_INTERVAL, clock)
        self._unlogged = {reason: 0 for reason in Refused}
        self._unlogged_errors = 0
        self._last_refused = ""

    def caps(self) -> tuple[int, int]:
        """(connections per client address, 0 = no cap; connections in all), as the current config says."""
        config = self.live.config
        if config is not self._config:  # start, or the first connection after a reload
            self._config = config
            total, lowered = max_connections(config.max_connections, self.fd_limit)
            if self.listener != "public":
                total = ADMIN_MAX_CONNECTIONS
            elif lowered:
                log.warning("http.max_connections %d is more than the file descriptor limit %d leaves room for "
                            "(%d are kept for everything else): using %d", config.max_connections, self.fd_limit,
                            RESERVED_FDS, total)  # fmt: skip
            self._caps = (config.max_connections_per_ip, total)
        return self._caps

    def client_key(self, host: str) -> str:
        """The address a connection counts against: "" for a trusted proxy (it carries many clients), an IPv6
        client's /64 (one host commonly holds a whole /64)."""
        addr, trusted = proxies(self.live.config.trusted_proxies).classify(host)
        if trusted:
            return ""
        if addr is None:
            return host
        return str(ipaddress.IPv6Network((addr, 64), strict=False)) if ":" in addr else addr

    def admit(self, host: str) -> str | Refused:
        """Take a slot for a new connection from host: the key to release() when it closes, or why not."""
        per_ip, total = self.caps()
        if self.open >= total:
            return self._refuse(Refused.TOTAL, host)
        key = self.client_key(host) if per_ip else ""
        if key:
            held = self.per_client.get(key, 0)
            if held >= per_ip:
                return self._refuse(Refused.PER_IP, host)
            self.per_client[key] = held + 1
        self.open += 1
        return key

    def release(self, key: str) -> None:
        """Give back the slot admit() returned key for."""
        self.open -= 1
        if key:
            held = self.per_client.pop(key) - 1
            if held:
                self.per_client[key] = held

    def _refuse(self, reason: Refused, host: str) -> Refused:
        """Count a refusal; log the refusals since the last line when LOG_INTERVAL has passed."""
        self.refused[reason] += 1
        self._unlogged[reason] += 1
        self._last_refused = host
        if self._log_refusals.due():
            per_ip, total = self._caps
            fields = {"listener": self.listener, "over_per_ip_cap": self._unlogged[Refused.PER_IP],
                      "over_total_cap": self._unlogged[Refused.TOTAL], "last_client": host,
                      "max_connections_per_ip": per_ip, "max_connections": total}  # fmt: skip
            log.warning("refusing connections (counts since the last such line) %s", kv(fields))
            self._unlogged = {r: 0 for r in Refused}
        return reason

    def accept_failed(self, exc: OSError) -> None:
        """Count an accept() failure; log the failures since the last line when LOG_INTERVAL has passed."""
        self.accept_errors += 1
        self._unlogged_errors += 1
        if self._log_errors.due():
            log.error("cannot accept connections: %s %s", exc.strerror or exc,
                      kv({"listener": self.listener, "failures": self._unlogged_errors, "open": self.open,
                          "fd_limit": self.fd_limit}))  # fmt: skip
            self._unlogged_errors = 0


class ConnectionsCollector:
    """Prometheus view of the guards: open connections, caps, refusals and accept failures per listener."""

    def __init__(self, guards: Sequence[ConnectionGuard]) -> None:
        """Read the guards at every scrape."""
        self.guards = guards

    def describe(self) -> list[Metric]:
        """Nothing up front: the registry needs no names to check for clashes here."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The four families as of now."""
        open_ = GaugeMetricFamily("status_bridge_http_connections", "Open client connections", labels=["listener"])
        caps = GaugeMetricFamily("status_bridge_http_connections_max", "Connections a listener admits in all",
                                 labels=["listener"])  # fmt: skip
        refused = CounterMetricFamily("status_bridge_http_connections_refused",
                                      "New connections answered 503 and closed at accept: over the per-client or the "
                                      "total cap", labels=["listener", "reason"])  # fmt: skip
        errors = CounterMetricFamily("status_bridge_http_accept_errors", "accept() failures (e.g. out of descriptors)",
                                     labels=["listener"])  # fmt: skip
        for guard in self.guards:
            open_.add_metric([guard.listener], guard.open)
            caps.add_metric([guard.listener], guard.caps()[1])
            for reason, count in guard.refused.items():
                refused.add_metric([guard.listener, reason.value], count)
            errors.add_metric([guard.listener], guard.accept_errors)
        yield from (open_, caps, refused, errors)


class Guards(NamedTuple):
    """The guard of each listener."""

    public: ConnectionGuard
    admin: ConnectionGuard


CONNECTIONS = web.AppKey("connections", Guards)
