"""Configuration types and the TOML loader with validation that names file, key path and reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bridge.model import Status

RULES = ("worst", "all", "quorum")

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


@dataclass(frozen=True)
class Config:
    """The whole validated configuration file."""

    path: Path | None = None
    page_name: str = "Service status"
    page_url: str = ""
    statusdat_path: Path | None = None
    stale_after: float = 180.0
    cache_seconds: int = 60
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    groups: tuple[Group, ...] = ()

    def components(self) -> list[Component]:
        """All components in page order."""
        return [c for g in self.groups for c in g.components]


class ConfigError(Exception):
    """A configuration problem list; str() gives one 'file: key: reason' line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
