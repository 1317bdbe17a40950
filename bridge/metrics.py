"""Prometheus metrics computed at scrape time from the current snapshot (no state of their own)."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    StateSetMetricFamily,
)
from prometheus_client.registry import Collector

from bridge import __version__
from bridge.live import Live
from bridge.model import SourceHealth, Status

if TYPE_CHECKING:
    from bridge.passive_store import PassiveStore

# GET /metrics re-reads the collectors at most this often within one published generation (bridge.views_metrics):
# counters, ages and the process figures in a scrape are at most this many seconds old.
SCRAPE_SECONDS = 1.0

# Numeric encoding of Status for alert rules (`status_bridge_component_status == 2` means down).
STATUS_CODE: dict[Status, int] = {
    Status.UP: 0,
    Status.PARTIAL: 1,
    Status.DOWN: 2,
    Status.MAINTENANCE: 3,
    Status.NODATA: 4,
}


# The page state (bridge.page_state) in the same order as the component encoding above.
PAGE_CODE: dict[str, int] = {"operational": 0, "minor": 1, "major": 2, "maintenance": 3, "unknown": 4}


class SnapshotCollector(Collector):
    """Reads the live snapshot and source health each time Prometheus scrapes."""

    def __init__(self, live: Live, health: Callable[[float], SourceHealth], clock: Callable[[], float] = time.time):
        self.live = live
        self.health = health
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family for the current generation."""
        snap = self.live.snapshot
        now = self.clock()
        health = self.health(now)
        code = GaugeMetricFamily(
            "status_bridge_component_status",
            "Shown component status: 0 up, 1 partial, 2 down, 3 maintenance, 4 no data.",
            labels=["component", "group"],
        )
        monitored = GaugeMetricFamily(
            "status_bridge_component_monitored_status",
            "Component status from monitoring alone (before overrides), same encoding.",
            labels=["component", "group"],
        )
        state = StateSetMetricFamily(
            "status_bridge_component_state", "Shown component status as a state set.", labels=["component", "group"]
        )
        group = GaugeMetricFamily(
            "status_bridge_group_status", "Group status by the Oxford rule, same encoding.", labels=["group"]
        )
        for g in snap.groups:
            group.add_metric([g.id], STATUS_CODE[g.status])
            for c in g.components:
                code.add_metric([c.id, g.id], STATUS_CODE[c.status])
                monitored.add_metric([c.id, g.id], STATUS_CODE[c.monitored_status])
                state.add_metric([c.id, g.id], {s.value: s is c.status for s in Status})
        yield from (code, monitored, state, group)
        page = GaugeMetricFamily(
            "status_bridge_page_status",
            "Page state: 0 operational, 1 minor, 2 major, 3 maintenance, 4 unknown (label state names it).",
            labels=["state"],
        )
        page.add_metric([snap.page.state], PAGE_CODE[snap.page.state])
        yield page
        yield GaugeMetricFamily("status_bridge_stale", "1 when the monitoring data is stale or missing.", value=float(health.stale))
        data = self.live.data
        checks = GaugeMetricFamily("status_bridge_checks", "Known monitoring objects.", labels=["kind"])
        checks.add_metric(["host"], len(data.hosts) if data else 0)
        checks.add_metric(["service"], len(data.services) if data else 0)
        yield checks


class PassiveCollector(Collector):
    """Counters of the passive push endpoints, read from the store at scrape time."""

    def __init__(self, store: PassiveStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        """Yield the passive result counters, the checks held and what bounds the store's memory."""
        store, config = self.store, self.store.config
        results = CounterMetricFamily(
            "status_bridge_passive_results",
            "Pushed check results: accepted (stored), ignored (no component uses the check, a newer result is held, "
            "or older than forget_after), refused (a new check while max_checks are held), invalid.",
            labels=["result"],
        )
        for label, value in (("accepted", store.accepted), ("ignored", store.ignored), ("refused", store.refused),
                             ("invalid", store.invalid)):
            results.add_metric([label], value)
        yield results
        yield GaugeMetricFamily("status_bridge_passive_checks", "Checks with a pushed result held.", value=len(store))
        yield GaugeMetricFamily("status_bridge_passive_checks_limit", "[passive] max_checks: checks held at most.",
                                value=config.passive_max_checks)
        yield CounterMetricFamily("status_bridge_passive_forgotten", "Held checks dropped: no result for forget_after.",
                                  value=store.forgotten)
        yield CounterMetricFamily("status_bridge_passive_outputs_truncated",
                                  "Results whose output was cut to max_output, or to what max_output_total had left.",
                                  value=store.truncated)
        yield GaugeMetricFamily("status_bridge_passive_output_bytes", "Memory the held outputs take.",
                                value=store.output_bytes)
        yield GaugeMetricFamily("status_bridge_passive_filter_cache_bytes",
                                "Memory counted for cached pattern decisions (host/service -> mapped?).",
                                value=store.filter_cache_bytes)


def make_registry(collector: Collector) -> CollectorRegistry:
    """A private registry per app, so tests and several apps in one process never collide."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    build = Info("status_bridge_build", "The running status-bridge and Python versions (value 1).", registry=registry)
    build.info({"version": __version__, "python": platform.python_version()})
    # The standard process_* and python_* families every Prometheus exporter has (RSS, CPU, fds, GC).
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
