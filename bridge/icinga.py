"""Follow Icinga 2 through its REST API: sync the objects, then the event stream; reconnect with backoff."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import os
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from bridge.config import Config, ConfigError
from bridge.icinga_health import StreamFacts, backoff_delay, compute_health
from bridge.icinga_http import (
    CONNECT_TIMEOUT,
    IcingaError,
    describe,
    lines,
    probe,
    query_objects,
    raise_for_status,
    read_password,
    ssl_context,
)
from bridge.icinga_parse import (
    DOWNTIME_ATTRS,
    EVENT_TYPES,
    HOST_ATTRS,
    SERVICE_ATTRS,
    CheckKey,
    IcingaState,
    event_type,
    status_data_of,
)
from bridge.model import CheckState, SourceHealth, StatusData
from bridge.tail import loop_priority
from bridge.tasks import cancel_and_wait

log = logging.getLogger(__name__)

MIN_GAP = 0.15  # at most one rebuild per this many seconds, however fast events arrive (as for passive pushes)


class IcingaSource:
    """The only code that talks to Icinga 2: keeps the synced state current and reports its health."""

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        ca_file: Path | None,
        on_change: Callable[[], None],
        *,
        clock: Callable[[], float] = time.time,
        stale_after: float = 180.0,
        heartbeat: float = 30.0,
        min_gap: float = MIN_GAP,
        rand: Callable[[], float] = random.random,
        backoff_cap: float = 30.0,
        prepare: Callable[[StatusData], None] | None = None,
    ) -> None:
        """Configure (TLS, credentials checked now); prepare(data), e.g. Live.prepare, runs in a worker thread."""
        self.url = URL(url).with_user(None)  # credentials come from the password file only
        # Sent by hand: aiohttp.BasicAuth is deprecated in 3.14 and its replacement is missing before it.
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._headers = {"Accept": "application/json", "Authorization": f"Basic {token}"}
        self._ssl = ssl_context(ca_file) if self.url.scheme == "https" else None
        self.on_change = on_change
        self.clock = clock
        self.stale_after = stale_after
        # A probe well inside stale_after: a silently dead connection must not look fresh for long.
        self.heartbeat = max(0.2, min(heartbeat, stale_after / 3))
        self.min_gap = min_gap
        self.prepare = prepare
        self.rand = rand
        self.backoff_cap = backoff_cap
        self.state = IcingaState()
        self.current: StatusData | None = None
        self.facts = StreamFacts(down_since=clock())
        self.version: str | None = None
        self.events: Counter[str] = Counter()  # stream lines by event type ("invalid": not a JSON object)
        self._dirty = asyncio.Event()
        self._last_notified: tuple[bool, StreamFacts, int] | None = None
        self._generation = 0  # bumped on every data publish

    @classmethod
    def from_config(
        cls,
        config: Config,
        on_change: Callable[[], None],
        clock: Callable[[], float] = time.time,
        prepare: Callable[[StatusData], None] | None = None,
    ) -> IcingaSource:
        """Build from the [icinga] section, reading the password file."""
        if not config.icinga_user:
            raise ConfigError(["icinga.user: required when icinga.url is set"])
        if config.icinga_password_file is None:
            raise ConfigError(["icinga.password_file: required when icinga.url is set"])
        password = read_password(config.icinga_password_file)
        return cls(config.icinga_url, config.icinga_user, password, config.icinga_ca_file, on_change,
                   clock=clock, stale_after=config.icinga_stale_after, prepare=prepare)  # fmt: skip

    def health(self, now: float) -> SourceHealth:
        """Freshness of the Icinga data at now."""
        return compute_health(self.facts, now, self.stale_after)

    async def run(self) -> None:
        """Connect, sync, follow events; on any failure go stale after stale_after and reconnect, until cancelled."""
        connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else False)
        # loop_priority: the sync's mapping and every prepare run in threads beside the HTTP server.
        with loop_priority():
            # No redirects: Icinga never sends one, and following it could carry the password elsewhere.
            async with aiohttp.ClientSession(connector=connector, headers=self._headers) as session:
                watchdog = asyncio.create_task(self._watch_staleness())
                try:
                    await self._reconnecting(session)
                finally:
                    await cancel_and_wait(watchdog)

    async def _reconnecting(self, session: aiohttp.ClientSession) -> None:
        """Follow Icinga, reconnecting with backoff after every failure; returns only by cancellation."""
        attempt = 0
        while True:
            try:
                await self._connect_and_follow(session)
                error = "event stream closed by Icinga 2"
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError, IcingaError) as exc:
                error = describe(exc)
            except Exception as exc:  # a bug here must not end the source: log it and reconnect
                log.exception("Icinga 2 source failed")
                error = f"internal error: {type(exc).__name__}"
            if self.facts.connected:
                attempt = 0  # it worked for a while: start the backoff afresh
            self._lost(error)
            delay = backoff_delay(attempt, self.rand(), cap=self.backoff_cap)
            attempt += 1
            log.warning("Icinga 2 at %s: %s; reconnecting in %.1f s", self.url, error, delay)
            await asyncio.sleep(delay)

    async def _connect_and_follow(self, session: aiohttp.ClientSession) -> None:
        """Subscribe, sync, then apply events until the stream ends or the heartbeat fails."""
        # A queue name of our own: clients sharing a queue name share (split) its events.
        body = {"queue": f"status-bridge-{os.getpid()}-{secrets.token_hex(4)}", "types": list(EVENT_TYPES)}
        timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT, sock_read=None)
        async with session.post(self.url / "v1/events", json=body, timeout=timeout, allow_redirects=False) as resp:
            await raise_for_status(resp)
            self.version = resp.headers.get("Server")
            # Subscribed before the sync: events racing with it wait in the socket and replay harmlessly.
            await self._sync(session)
            follow = [asyncio.create_task(self._read_events(resp)), asyncio.create_task(self._ticker(session))]
            try:
                done, _ = await asyncio.wait(follow, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in follow:
                    task.cancel()
                await asyncio.gather(*follow, return_exceptions=True)
            for task in done:
                task.result()  # re-raise what ended it

    async def _sync(self, session: aiohttp.ClientSession) -> None:
        """Load every host, service and downtime, replace the state and publish."""
        started = time.perf_counter()
        hosts = await query_objects(session, self.url, "hosts", HOST_ATTRS)
        services = await query_objects(session, self.url, "services", SERVICE_ATTRS)
        downtimes = await query_objects(session, self.url, "downtimes", DOWNTIME_ATTRS)
        # Mapping and preparing 100k objects takes a while: keep the event loop (and the HTTP server) responsive.
        self.state, data = await asyncio.to_thread(self._synced, hosts, services, downtimes)
        self.facts = dataclasses.replace(
            self.facts,
            connected=True,
            down_since=None,
            last_sync_seconds=time.perf_counter() - started,
            syncs_total=self.facts.syncs_total + 1,
        )
        log.info("Icinga 2 at %s: synced %d checks", self.url, len(self.state.checks))
        self._publish(data)

    def _synced(self, hosts: list[Any], services: list[Any], downtimes: list[Any]) -> tuple[IcingaState, StatusData]:
        """The state the object queries describe and its StatusData, prepared (blocking: a worker thread runs it)."""
        state = IcingaState.synced(hosts, services, downtimes, self.clock())
        return state, self._ready(state.checks)

    def _ready(self, checks: Mapping[CheckKey, CheckState]) -> StatusData:
        """checks as a StatusData as of now, prepared for publishing (blocking: a worker thread runs it)."""
        data = status_data_of(checks, self.clock(), self.version)
        if self.prepare is not None:
            try:
                self.prepare(data)
            except Exception:  # a bug there must not drop good data: publishing does the work itself then
                log.exception("preparing Icinga 2 data for publishing failed")
        return data

    async def _read_events(self, resp: aiohttp.ClientResponse) -> None:
        """Apply every event line; returns when Icinga closes the stream."""
        async for line in lines(resp.content):
            try:
                event = json.loads(line.decode("utf-8", "replace"))
            except ValueError:
                log.warning("Icinga 2 sent a line that is not JSON (%d bytes); skipped", len(line))
                self.events["invalid"] += 1
                continue
            if not isinstance(event, dict):
                self.events["invalid"] += 1
                continue
            self.events[event_type(event)] += 1
            if self.state.apply(event):
                self._dirty.set()
        raise IcingaError("event stream closed by Icinga 2")

    async def _ticker(self, session: aiohttp.ClientSession) -> None:
        """Publish changes, at most once per min_gap; probe Icinga when quiet so a dead link is noticed."""
        while True:
            try:
                await asyncio.wait_for(self._dirty.wait(), self.heartbeat)
            except TimeoutError:
                await probe(session, self.url, max(2.0, self.heartbeat))
            self._dirty.clear()
            started = time.perf_counter()
            # A copy (one C call) so events applied while the thread works cannot change what it reads.
            self._publish(await asyncio.to_thread(self._ready, dict(self.state.checks)))
            # Events arriving meanwhile set _dirty again and are published together after the gap; at 100k
            # checks (~0.1 s to prepare) it grows so that rebuilds never take more than a third of the time.
            await asyncio.sleep(max(self.min_gap, 2 * (time.perf_counter() - started)))

    def _lost(self, error: str) -> None:
        """Record a failed or ended connection; the data stays, stale once the outage exceeds stale_after."""
        now = self.clock()
        self.facts = dataclasses.replace(
            self.facts,
            connected=False,
            down_since=self.facts.down_since if self.facts.down_since is not None else now,
            last_error=error,
            last_error_time=now,
            errors_total=self.facts.errors_total + 1,
        )
        self._notify_if_changed()

    async def _watch_staleness(self) -> None:
        """Re-evaluate health every second so going stale is published without any event."""
        while True:
            await asyncio.sleep(min(1.0, max(0.1, self.stale_after / 4)))
            self._notify_if_changed()

    def _publish(self, data: StatusData) -> None:
        """Hand data (Icinga's state as of data.created) to readers and tell the listener."""
        self.facts = dataclasses.replace(self.facts, data_as_of=data.created)
        self.current = data
        self._generation += 1
        self._notify_if_changed()

    def _notify_if_changed(self) -> None:
        """Call on_change when the data, the connection facts or the staleness changed since the last call."""
        key = (self.health(self.clock()).stale, self.facts, self._generation)
        if key == self._last_notified:
            return
        self._last_notified = key
        try:
            self.on_change()
        except Exception:  # a listener bug must not stop us following Icinga
            log.exception("on_change callback failed")
