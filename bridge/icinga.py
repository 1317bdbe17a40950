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
import ssl
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from bridge.config import Config, ConfigError
from bridge.icinga_parse import (
    DOWNTIME_ATTRS,
    EVENT_TYPES,
    HOST_ATTRS,
    SERVICE_ATTRS,
    IcingaState,
    StreamFacts,
    backoff_delay,
    compute_health,
)
from bridge.model import SourceHealth, StatusData

log = logging.getLogger(__name__)

MAX_LINE = 64 << 20  # one event is one line; a runaway line must not eat all memory
SYNC_TIMEOUT = 300.0  # the object queries of a 100k-service Icinga take seconds, not minutes
CONNECT_TIMEOUT = 10.0


class IcingaError(Exception):
    """Icinga 2 ended the event stream (restart, reload, shutdown) or answered something unexpected."""


def read_password(path: Path) -> str:
    """The API password from its file, without the trailing newline editors add; ConfigError when unreadable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ConfigError([f"icinga.password_file: cannot read {path}: {reason}"]) from None
    password = text.rstrip("\r\n")
    if not password:
        raise ConfigError([f"icinga.password_file: {path} is empty"])
    return password


def ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verify the server against ca_file (Icinga's own CA), else the system CAs; ConfigError when unusable."""
    try:
        ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ConfigError([f"icinga.ca_file: cannot load {ca_file}: {reason}"]) from None
    # `icinga2 pki new-ca` makes CAs without keyUsage/AKI, which Python 3.13's strict mode rejects.
    ctx.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    return ctx


def describe(exc: BaseException) -> str:
    """A short, password-free description of a connection failure for logs and /healthz."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return (f"TLS certificate not accepted ({exc.certificate_error}); icinga.url must name the host as its "
                "certificate does (Icinga's NodeName) and icinga.ca_file be Icinga's CA (certs/ca.crt)")  # fmt: skip
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status} {exc.message}".strip()
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


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
        debounce: float = 0.5,
        rand: Callable[[], float] = random.random,
        backoff_cap: float = 30.0,
    ) -> None:
        """Configure (TLS context and credentials are checked now, so a bad config fails at start)."""
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
        self.debounce = debounce
        self.rand = rand
        self.backoff_cap = backoff_cap
        self.state = IcingaState()
        self.current: StatusData | None = None
        self.facts = StreamFacts(down_since=clock())
        self.version: str | None = None
        self._dirty = asyncio.Event()
        self._last_notified: tuple[bool, StreamFacts, int] | None = None
        self._generation = 0  # bumped on every data publish

    @classmethod
    def from_config(cls, config: Config, on_change: Callable[[], None], clock: Callable[[], float] = time.time) -> IcingaSource:
        """Build from the [icinga] section, reading the password file."""
        if not config.icinga_user:
            raise ConfigError(["icinga.user: required when icinga.url is set"])
        if config.icinga_password_file is None:
            raise ConfigError(["icinga.password_file: required when icinga.url is set"])
        password = read_password(config.icinga_password_file)
        return cls(config.icinga_url, config.icinga_user, password, config.icinga_ca_file, on_change,
                   clock=clock, stale_after=config.icinga_stale_after)  # fmt: skip

    def health(self, now: float) -> SourceHealth:
        """Freshness of the Icinga data at now."""
        return compute_health(self.facts, now, self.stale_after)

    async def run(self) -> None:
        """Connect, sync, follow events; on any failure go stale after stale_after and reconnect, until cancelled."""
        connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else False)
        # No redirects: Icinga never sends one, and following it could carry the password elsewhere.
        async with aiohttp.ClientSession(connector=connector, headers=self._headers) as session:
            watchdog = asyncio.create_task(self._watch_staleness())
            try:
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
            finally:
                await _cancel(watchdog)

    async def _connect_and_follow(self, session: aiohttp.ClientSession) -> None:
        """Subscribe, sync, then apply events until the stream ends or the heartbeat fails."""
        # A queue name of our own: clients sharing a queue name share (split) its events.
        body = {"queue": f"status-bridge-{os.getpid()}-{secrets.token_hex(4)}", "types": list(EVENT_TYPES)}
        timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT, sock_read=None)
        async with session.post(self.url / "v1/events", json=body, timeout=timeout, allow_redirects=False) as resp:
            await _raise_for_status(resp)
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
        hosts = await self._query(session, "hosts", HOST_ATTRS)
        services = await self._query(session, "services", SERVICE_ATTRS)
        downtimes = await self._query(session, "downtimes", DOWNTIME_ATTRS)
        # Mapping 100k objects takes a while: keep the event loop (and the HTTP server) responsive.
        self.state = await asyncio.to_thread(IcingaState.synced, hosts, services, downtimes, self.clock())
        now = self.clock()
        self.facts = dataclasses.replace(
            self.facts,
            connected=True,
            down_since=None,
            data_as_of=now,
            last_sync_seconds=time.perf_counter() - started,
            syncs_total=self.facts.syncs_total + 1,
        )
        log.info("Icinga 2 at %s: synced %d checks", self.url, len(self.state.checks))
        self._publish()

    async def _query(self, session: aiohttp.ClientSession, kind: str, attrs: Sequence[str]) -> list[Any]:
        """GET /v1/objects/<kind> with only the attributes we map; the JSON is decoded off the event loop."""
        timeout = aiohttp.ClientTimeout(total=SYNC_TIMEOUT, connect=CONNECT_TIMEOUT)
        params = [("attrs", a) for a in attrs]
        async with session.get(self.url / "v1/objects" / kind, params=params, timeout=timeout, allow_redirects=False) as resp:
            await _raise_for_status(resp)
            raw = await resp.read()
        doc = await asyncio.to_thread(json.loads, raw)
        results = doc.get("results") if isinstance(doc, dict) else None
        if not isinstance(results, list):
            raise IcingaError(f"unexpected answer to GET /v1/objects/{kind}: no results list")
        return results

    async def _read_events(self, resp: aiohttp.ClientResponse) -> None:
        """Apply every event line; returns when Icinga closes the stream."""
        async for line in _lines(resp.content):
            try:
                event = json.loads(line.decode("utf-8", "replace"))
            except ValueError:
                log.warning("Icinga 2 sent a line that is not JSON (%d bytes); skipped", len(line))
                continue
            if isinstance(event, dict) and self.state.apply(event):
                self._dirty.set()
        raise IcingaError("event stream closed by Icinga 2")

    async def _ticker(self, session: aiohttp.ClientSession) -> None:
        """Publish changes in small batches, and probe Icinga when quiet so a dead link is noticed."""
        while True:
            try:
                await asyncio.wait_for(self._dirty.wait(), self.heartbeat)
                await asyncio.sleep(self.debounce)  # a burst of events makes one rebuild, not hundreds
            except TimeoutError:
                await self._probe(session)
            self._dirty.clear()
            self.facts = dataclasses.replace(self.facts, data_as_of=self.clock())
            self._publish()

    async def _probe(self, session: aiohttp.ClientSession) -> None:
        """A cheap authenticated query (matches nothing); raises when Icinga does not answer."""
        timeout = aiohttp.ClientTimeout(total=max(2.0, self.heartbeat), connect=CONNECT_TIMEOUT)
        params = [("attrs", "name"), ("filter", "false")]
        async with session.get(self.url / "v1/objects/hosts", params=params, timeout=timeout, allow_redirects=False) as resp:
            await _raise_for_status(resp)
            await resp.read()

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

    def _publish(self) -> None:
        """Snapshot the state for readers and tell the listener."""
        assert self.facts.data_as_of is not None
        self.current = self.state.status_data(self.facts.data_as_of, self.version)
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


async def _raise_for_status(resp: aiohttp.ClientResponse) -> None:
    """Raise ClientResponseError with Icinga's own error text (it answers JSON with a status message)."""
    if resp.status < 400:
        return
    text = (await resp.text(errors="replace"))[:300]
    try:
        message = json.loads(text).get("status") or resp.reason or ""
    except (ValueError, AttributeError):
        message = resp.reason or ""
    resp.release()
    raise aiohttp.ClientResponseError(resp.request_info, resp.history, status=resp.status, message=str(message))


async def _lines(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Non-empty lines of a byte stream of any length (aiohttp's own readline caps lines at 128 KiB)."""
    buffer = bytearray()
    async for chunk in stream.iter_any():
        buffer += chunk
        if b"\n" not in chunk:  # a long event arrives in many chunks: split only once it is complete
            if len(buffer) > MAX_LINE:
                raise ValueError(f"event line longer than {MAX_LINE} bytes")
            continue
        *lines, rest = bytes(buffer).split(b"\n")
        buffer = bytearray(rest)
        for line in lines:
            if line.strip():
                yield line
    if buffer.strip():
        yield bytes(buffer)


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel a helper task and wait for it to finish."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
