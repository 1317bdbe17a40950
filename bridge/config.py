"""Configuration types: the validated Config, its groups, components and check patterns, and ConfigError."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from bridge.model import Status

RULES = ("worst", "all", "quorum")
# Plugin output kept per pushed result (plugin_output plus long_plugin_output, in UTF-8 bytes): 64 KiB, what
# Nagios 4 reads from its command file at once (base/commands.c, iocache_create(65536)) and NRPE 3 carries.
# Nagios' compile-time MAX_PLUGIN_OUTPUT_LENGTH (include/nagios.h) is 8 KiB; its workers keep longer output.
OUTPUT_MAX = 65536
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# A proxy on the same machine (nginx in front of 127.0.0.1:8080) is the usual set-up: without trusting
# it, every visitor would share the proxy's one rate-limit bucket.
LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

# Keys of a component's [states] table: which monitored condition maps to which Status.
STATE_KEYS = (
    "ok",
    "warning",
    "critical",
    "unknown",
    "host_up",
    "host_down",
    "host_unreachable",
    "pending",
    "downtime",
)

DEFAULT_STATES: dict[str, Status] = {
    "ok": Status.UP,
    "warning": Status.PARTIAL,
    "critical": Status.DOWN,
    "unknown": Status.PARTIAL,
    "host_up": Status.UP,
    "host_down": Status.DOWN,
    "host_unreachable": Status.DOWN,
    "pending": Status.NODATA,
    "downtime": Status.MAINTENANCE,
}


@dataclass(frozen=True)
class CheckPattern:
    """Shell-style globs selecting checks: a host check when service is None, else services."""

    host: str
    service: str | None = None


@dataclass(frozen=True)
class Component:
    """A status-page component mapped onto one or more monitoring checks."""

    id: str
    name: str
    group_id: str
    description: str = ""
    checks: tuple[CheckPattern, ...] = ()
    rule: str = "worst"
    quorum: float = 50.0  # percent of checks that must be up, for rule="quorum"
    states: dict[str, Status] = field(default_factory=lambda: dict(DEFAULT_STATES))
    soft_states: bool = False  # count SOFT states too (default: HARD only)


@dataclass(frozen=True)
class Group:
    """A category on the page holding components."""

    id: str
    name: str
    description: str = ""
    components: tuple[Component, ...] = ()


# [http] metrics: on the public listener, on the admin listener only (needs admin_listen), or nowhere.
METRICS_MODES = ("public", "admin", "off")


@dataclass(frozen=True)
class Config:
    """The whole validated configuration file."""

    path: Path | None = None
    page_name: str = "Service status"
    page_url: str = ""
    frame_ancestors: tuple[str, ...] = ()  # CSP sources that may frame the HTML pages; () = none may
    statusdat_path: Path | None = None
    stale_after: float = 180.0
    cache_seconds: int = 60
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    admin_listen: tuple[str, int] | None = None  # admin API only on this address (404 on the public one)
    metrics: str = "public"  # where GET /metrics answers: one of METRICS_MODES
    rate_limit: float = 10.0  # requests per second per client IP; 0 = no limit
    burst: int = 20  # requests a client may make at once before the rate applies
    trusted_proxies: tuple[Network, ...] = LOOPBACK  # peers whose X-Forwarded-For names the client
    # Seconds a connection may sit without a complete request header: idle between requests, or still
    # sending its request line and headers (slowloris). A restart applies a change.
    idle_timeout: float = 10.0
    max_connections: int = 0  # open connections on the public listener; 0: the fd limit minus a reserve, at most 10,000
    max_connections_per_ip: int = 64  # per client address (IPv6: per /64); trusted proxies are exempt; 0 = no cap
    groups: tuple[Group, ...] = ()
    passive_enabled: bool = True  # POST /nrdp/ and /api/v1/check-results (a token is still required)
    passive_tokens_file: Path | None = None
    passive_stale_after: float = 900.0  # a pushed result older than this is stale (per check)
    passive_max_body: int = 1 << 20
    passive_max_checks: int = 200_000  # checks held at most; results for new checks are refused beyond
    passive_max_output: int = OUTPUT_MAX  # UTF-8 bytes of output kept per result (Nagios' 64 KiB)
    passive_max_output_total: int = 64 << 20  # bytes of memory all held outputs may take together
    passive_forget_after: float = 7 * 86400.0  # a check without a result for this long is dropped
    icinga_url: str = ""  # e.g. https://127.0.0.1:5665; empty = no Icinga 2 source
    icinga_user: str = ""
    icinga_password_file: Path | None = None
    icinga_ca_file: Path | None = None
    icinga_stale_after: float = 180.0  # stale when the event stream has been down this long

    def components(self) -> list[Component]:
        """All components in page order."""
        return [c for g in self.groups for c in g.components]


class ConfigError(Exception):
    """A configuration problem list; str() gives one 'file: key: reason' line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
