"""Health of the Icinga 2 event stream (stale only after a long outage) and the reconnect backoff (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bridge.model import SourceHealth, source_health


@dataclass(frozen=True)
class StreamFacts:
    """What the source knows about its connection to Icinga 2, independent of the current time."""

    connected: bool = False  # synced and following the event stream
    down_since: float | None = None  # when the stream was lost (or the source started); None while connected
    data_as_of: float | None = None  # the last moment our state was known to match Icinga's
    last_sync_seconds: float | None = None
    last_error: str | None = None
    last_error_time: float | None = None
    syncs_total: int = 0
    errors_total: int = 0

    # SourceHealth's names for Icinga's own facts (model.HealthFacts): a sync is this source's "parse".
    @property
    def data_created(self) -> float | None:
        """data_as_of."""
        return self.data_as_of

    @property
    def last_parse_seconds(self) -> float | None:
        """last_sync_seconds."""
        return self.last_sync_seconds

    @property
    def parses_total(self) -> int:
        """syncs_total."""
        return self.syncs_total


def iso(epoch: float) -> str:
    """Epoch seconds as an ISO 8601 UTC timestamp for messages."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stale_reason(facts: StreamFacts, now: float, stale_after: float) -> str | None:
    """Why Icinga data must be shown as stale at now (stream down longer than stale_after), or None."""
    detail = f": {facts.last_error}" if facts.last_error else ""
    if facts.data_as_of is None:
        return f"no Icinga 2 data yet{detail}"
    if facts.connected or facts.down_since is None or now - facts.down_since <= stale_after:
        return None
    return f"Icinga 2 event stream down since {iso(facts.down_since)}{detail}"


def compute_health(facts: StreamFacts, now: float, stale_after: float) -> SourceHealth:
    """The SourceHealth shown on the page and in /metrics."""
    return source_health(facts, stale_reason(facts, now, stale_after))


def backoff_delay(attempt: int, rand: float, first: float = 0.5, cap: float = 30.0, jitter: float = 0.2) -> float:
    """Seconds to wait before reconnect attempt number attempt (0-based): doubling, capped, +-jitter."""
    base = min(cap, first * 2 ** min(attempt, 32))
    return min(cap, base * (1 + jitter * (2 * rand - 1)))
