"""Core value types shared by the parser, the sources, aggregation and renderers."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from bridge.notices import Notice, Override


class HostState(enum.IntEnum):
    """Nagios host ``current_state`` values."""

    UP = 0
    DOWN = 1
    UNREACHABLE = 2


class ServiceState(enum.IntEnum):
    """Nagios service ``current_state`` values."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


class Status(str, enum.Enum):
    """What the page claims about a check, component or group."""

    UP = "up"
    PARTIAL = "partial"
    DOWN = "down"
    MAINTENANCE = "maintenance"
    NODATA = "nodata"


class CheckState(NamedTuple):
    """One host or service as the monitoring last reported it (service is None for a host)."""

    host: str
    service: str | None
    current_state: int
    state_type: int  # 0 SOFT, 1 HARD
    last_hard_state: int
    has_been_checked: bool
    acknowledged: bool
    downtime_depth: int
    flapping: bool
    last_check: int
    last_state_change: int
    plugin_output: str
    long_plugin_output: str


@dataclass(frozen=True)
class StatusData:
    """A complete, successfully parsed status.dat (or equivalent source state)."""

    created: float
    version: str | None
    hosts: dict[str, CheckState] = field(default_factory=dict)
    services: dict[tuple[str, str], CheckState] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceHealth:
    """Freshness of the monitoring input as seen by the tailer (all times are epoch seconds)."""

    stale: bool
    reason: str | None = None  # why stale, e.g. "status.dat missing", "data older than 180 s"
    data_created: float | None = None  # info.created of the snapshot in use
    last_parse_seconds: float | None = None
    last_error: str | None = None
    last_error_time: float | None = None
    parses_total: int = 0
    errors_total: int = 0


class HealthFacts(Protocol):
    """What a source knows about its reads, under SourceHealth's names (a source maps its own at its edge)."""

    @property
    def data_created(self) -> float | None: ...
    @property
    def last_parse_seconds(self) -> float | None: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def last_error_time(self) -> float | None: ...
    @property
    def parses_total(self) -> int: ...
    @property
    def errors_total(self) -> int: ...


def source_health(facts: HealthFacts, reason: str | None) -> SourceHealth:
    """The SourceHealth shown on the page and in /metrics: a source's facts plus its verdict (None = fresh)."""
    return SourceHealth(
        stale=reason is not None,
        reason=reason,
        data_created=facts.data_created,
        last_parse_seconds=facts.last_parse_seconds,
        last_error=facts.last_error,
        last_error_time=facts.last_error_time,
        parses_total=facts.parses_total,
        errors_total=facts.errors_total,
    )


@dataclass(frozen=True)
class ComponentView:
    """A component's computed state; status is what the page shows, monitored_status what monitoring says."""

    id: str
    name: str
    group_id: str
    description: str
    status: Status
    monitored_status: Status
    checks_matched: int
    since: float | None = None  # when the shown status last changed (as seen by this daemon), set by Live
    stale: bool = False  # some matched check's state comes from a stale source, set by Live


@dataclass(frozen=True)
class GroupView:
    """A group's computed state by the Oxford rule, with its components."""

    id: str
    name: str
    description: str
    status: Status
    components: tuple[ComponentView, ...]


@dataclass(frozen=True)
class PageState:
    """What the whole page claims, and why; `state` is one of bridge.page_state.STATES."""

    state: str
    headline: str  # the banner: "Systems running smoothly", "Status unknown: monitoring data is stale", ...
    cause: str | None = None  # unknown only: "no_data" (never had any), "stale", "unchecked" or "empty"
    reason: str | None = None  # unknown only: the source's own words ("status.dat missing")
    last_known: str | None = None  # unknown because stale: the headline the last known statuses would give
    stale_components: int = 0  # components shown with their last known status (stale data)
    components: int = 0

    @property
    def partly_stale(self) -> bool:
        """Some, not all, components show a last known status: the page says that part of the data is stale."""
        return self.state != "unknown" and self.stale_components > 0


@dataclass(frozen=True)
class Snapshot:
    """Everything the renderers need, computed at one instant; never mutated after build."""

    page_name: str
    page_url: str
    generated_at: float  # the `now` the snapshot was built for
    data_created: float | None  # info.created of the monitoring data, None when never had any
    stale: bool
    stale_reason: str | None
    page: PageState  # the one page state every surface renders (bridge.page_state)
    groups: tuple[GroupView, ...]
    health: SourceHealth
    notices: tuple[Notice, ...] = ()  # every stored notice, newest first
    overrides: tuple[Override, ...] = ()  # every stored override (active or not)
    sorry_state: str = "operational"  # Sorry v1 page.state, from notices only: operational | degraded | under_maintenance
