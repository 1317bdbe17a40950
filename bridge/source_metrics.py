"""Prometheus families per monitoring source (age, staleness, updates, durations) and of the Icinga 2 event stream."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bridge.icinga_health import StreamFacts
from bridge.icinga_parse import EVENT_LABELS
from bridge.live import Live
from bridge.metrics import SCRAPE_SECONDS
from bridge.model import SourceHealth

STATUSDAT = "statusdat"  # the name the status.dat tailer publishes under
# The per-source families, in the order collect() fills them.
PER_SOURCE: tuple[tuple[type[GaugeMetricFamily] | type[CounterMetricFamily], str, str], ...] = (
    (GaugeMetricFamily, "status_bridge_source_age_seconds",
     f"Age of the source's newest data (now minus the time it describes; now is when the scrape was encoded, "
     f"at most {SCRAPE_SECONDS:g} s before it); NaN before it has any."),
    (GaugeMetricFamily, "status_bridge_source_stale",
     "1 while the page treats the source's data as stale (missing, too old, stream down), else 0."),
    (CounterMetricFamily, "status_bridge_source_updates",
     "New data the page took from the source (a status.dat rewrite; an Icinga 2 sync, batch of events or heartbeat; "
     "a batch of pushed results)."),
    (GaugeMetricFamily, "status_bridge_source_parse_duration_seconds",
     "The source's own last read: the status.dat parse, or the Icinga 2 sync (object queries and mapping)."),
    (GaugeMetricFamily, "status_bridge_source_prepare_duration_seconds",
     "Preparing the source's newest published data for the page (merging, matching components, counting checks; "
     "in worker threads)."),
)  # fmt: skip


class SourceCollector(Collector):
    """Reads the sources the page is built from (Live.sources and Live.stats) each time Prometheus scrapes."""

    def __init__(self, live: Live, clock: Callable[[], float] = time.time) -> None:
        self.live = live
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        """Yield the per-source families, then status.dat's own while status.dat is a source."""
        now = self.clock()
        views = list(self.live.sources.values())
        stats = self.live.stats
        age, stale, updates, parse, prepare = (kind(name, doc, labels=["source"]) for kind, name, doc in PER_SOURCE)
        for view in views:
            label, health = [view.name], view.health
            age.add_metric(label, _age(health, now))
            stale.add_metric(label, float(health.stale))
            updates.add_metric(label, stats.updates.get(view.name, 0))
            # Durations appear once measured; pushed results have no read of their own to time.
            if health.last_parse_seconds is not None:
                parse.add_metric(label, health.last_parse_seconds)
            if view.name in stats.prepare_seconds:
                prepare.add_metric(label, stats.prepare_seconds[view.name])
        yield from (age, stale, updates, parse, prepare)
        statusdat = self.live.sources.get(STATUSDAT)
        if statusdat is not None:
            yield from _statusdat_families(statusdat.health, now)


def _age(health: SourceHealth, now: float) -> float:
    """now minus the time the source's data describes, NaN without data."""
    return now - health.data_created if health.data_created is not None else math.nan


def _statusdat_families(health: SourceHealth, now: float) -> Iterator[Metric]:
    """The status.dat families from before sources were labelled: the tailer's figures and no other source's."""
    yield GaugeMetricFamily(
        "status_bridge_statusdat_age_seconds",
        f"Age of the status.dat data (now - info.created, now being at most {SCRAPE_SECONDS:g} s before the scrape); "
        "NaN before a good read.",
        value=_age(health, now),
    )
    duration = health.last_parse_seconds if health.last_parse_seconds is not None else math.nan
    yield GaugeMetricFamily(
        "status_bridge_parse_duration_seconds", "Duration of the last status.dat parse (after reading it).",
        value=duration,
    )
    yield GaugeMetricFamily(
        "status_bridge_last_parse_error_timestamp_seconds",
        "Unix time of the last failed read or parse of status.dat (0 if none).",
        value=health.last_error_time or 0.0,
    )
    yield CounterMetricFamily("status_bridge_parses", "Successful status.dat parses.", value=health.parses_total)
    yield CounterMetricFamily(
        "status_bridge_parse_errors", "Failed status.dat reads or parses.", value=health.errors_total
    )


class StreamStats(Protocol):
    """What the Icinga 2 source exposes for metrics (bridge.icinga.IcingaSource)."""

    @property
    def facts(self) -> StreamFacts: ...
    @property
    def events(self) -> Mapping[str, int]: ...


class IcingaCollector(Collector):
    """The Icinga 2 source's own families, while an [icinga] source runs (a reload may replace or remove it)."""

    def __init__(self, source: Callable[[], StreamStats | None]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        """Yield the connection, reconnect and event families of the current Icinga source, if any."""
        source = self.source()
        if source is None:
            return
        facts = source.facts
        yield GaugeMetricFamily(
            "status_bridge_icinga_connected",
            "1 while synced with Icinga 2 and following its event stream, else 0.",
            value=float(facts.connected),
        )
        # Every failure ends in one reconnect after the backoff, so the failures are the reconnects.
        yield CounterMetricFamily(
            "status_bridge_icinga_reconnects",
            "Connections to Icinga 2 that failed or were lost, each followed by a reconnect after a backoff.",
            value=facts.errors_total,
        )
        events = CounterMetricFamily(
            "status_bridge_icinga_events",
            "Event stream lines by type (other: a type not subscribed to; invalid: not a JSON object).",
            labels=["type"],
        )
        counts = source.events
        for label in EVENT_LABELS:
            events.add_metric([label], counts.get(label, 0))
        yield events
