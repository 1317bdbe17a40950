"""Monitoring sources that a reload can retarget (status.dat tailer, Icinga 2), and the SIGHUP config and token reload."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from bridge.auth import TokenFileError, TokenSet, admin_token_set, push_token_set
from bridge.config import Config, ConfigError
from bridge.config_load import load_config
from bridge.icinga import IcingaSource
from bridge.keys import LIVE, SETTINGS
from bridge.live import Live
from bridge.logs import kv
from bridge.merge import SourceView
from bridge.model import SourceHealth
from bridge.tail import StatusDatTailer
from bridge.tasks import cancel_and_wait

log = logging.getLogger("bridge.reload")

FIRST_LOAD_TIMEOUT = 30.0  # a 100k-service status.dat parses in about a second; never hang start-up
NO_SOURCE = SourceHealth(stale=True, reason="no monitoring source configured")


def _icinga_key(config: Config | None) -> tuple[object, ...] | None:
    """The settings an Icinga connection is built from: a change means reconnecting."""
    if config is None or not config.icinga_url:
        return None
    return (config.icinga_url, config.icinga_user, config.icinga_password_file, config.icinga_ca_file,
            config.icinga_stale_after)  # fmt: skip


def changed_fields(old: Config, new: Config) -> list[str]:
    """Names of the config fields that differ (for the reload log line)."""
    return [f.name for f in dataclasses.fields(Config) if getattr(old, f.name) != getattr(new, f.name)]


class Sources:
    """Owns the status.dat tailer and the Icinga source; start, retarget on reload, stop."""

    def __init__(self, live: Live, watch: bool = True) -> None:
        """watch=False: no background sources (tests feed Live directly)."""
        self.live, self.watch = live, watch
        self.config: Config | None = None
        self.tailer: StatusDatTailer | None = None
        self.icinga: IcingaSource | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._firsts: dict[str, asyncio.Event] = {}  # set by each source's first publish
        # Per source: the task publishing its changes (merged off the loop), and whether more came meanwhile.
        self._publishers: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()

    def health(self, now: float) -> SourceHealth:
        """Health for /healthz: the tailer's when it runs (it ages the data), else the merged one."""
        return self.tailer.health(now) if self.tailer is not None else self.live.health

    async def start(self, config: Config) -> None:
        """Start the configured sources; wait (bounded) for their first load; ConfigError from a bad [icinga]."""
        await self.apply(config)

    async def apply(self, config: Config) -> None:
        """Move the sources to config (first start or reload) and swap it into Live; nothing changes on ConfigError."""
        old = self.config
        icinga_changed = _icinga_key(old) != _icinga_key(config)
        icinga = None
        if self.watch and icinga_changed and config.icinga_url:
            # Reads the password file and the CA now, before anything is swapped: a bad section changes nothing.
            icinga = IcingaSource.from_config(
                config, lambda: self._icinga_changed(icinga), clock=self.live.clock, prepare=self.live.prepare
            )
        if old is not None:
            self.live.set_config(config)
        self.config = config
        if not self.watch:
            return
        firsts: list[asyncio.Event] = []
        path = config.statusdat_path
        if old is None or path != old.statusdat_path:
            await self._stop("statusdat", drop=path is None and old is not None)
            if path is not None:
                firsts.append(self._start_tailer(path, config.stale_after))
        elif self.tailer is not None and config.stale_after != self.tailer.stale_after:
            self.tailer.stale_after = config.stale_after
            await self.live.publish_source(self._view("statusdat"))  # may turn stale or fresh at once
        if icinga_changed:
            await self._stop("icinga", drop=icinga is None and old is not None)
            if icinga is not None:
                firsts.append(self._start("icinga", icinga))
        if firsts:
            with contextlib.suppress(asyncio.TimeoutError):
                # Serve the first snapshot rather than a "no data" page when the sources answer.
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in firsts)), FIRST_LOAD_TIMEOUT)

    def _start_tailer(self, path: Path, stale_after: float) -> asyncio.Event:
        """Follow path; the returned event is set by the first publish."""
        tailer = StatusDatTailer(path, stale_after, lambda: self._tailer_changed(tailer), prepare=self.live.prepare)
        self.tailer = tailer
        return self._start("statusdat", tailer)

    def _start(self, name: str, source: StatusDatTailer | IcingaSource) -> asyncio.Event:
        """Run source.run() as the task `name`; the event is set on its first change."""
        first = asyncio.Event()
        self._firsts[name] = first
        if isinstance(source, IcingaSource):
            self.icinga = source
        self._tasks[name] = asyncio.create_task(source.run())
        return first

    def _tailer_changed(self, tailer: StatusDatTailer) -> None:
        """Publish the tailer's data and health (ignoring a tailer a reload already replaced)."""
        if tailer is self.tailer:
            self._publish_soon("statusdat")

    def _icinga_changed(self, source: IcingaSource | None) -> None:
        """Publish the Icinga data and health as the "icinga" source."""
        if source is not None and source is self.icinga:
            self._publish_soon("icinga")

    def _view(self, name: str) -> SourceView:
        """The current view of a running source."""
        source = self.tailer if name == "statusdat" else self.icinga
        assert source is not None
        return SourceView(name, source.current, source.health(self.live.clock()))

    def _publish_soon(self, name: str) -> None:
        """Have the source's publisher task publish its current view; changes arriving meanwhile make one more."""
        self._dirty.add(name)
        task = self._publishers.get(name)
        if task is None or task.done():
            self._publishers[name] = asyncio.create_task(self._publisher(name))

    async def _publisher(self, name: str) -> None:
        """Publish the source's view until no change is left (merging and preparing run in a worker thread)."""
        while name in self._dirty:
            self._dirty.discard(name)
            try:
                await self.live.publish_source(self._view(name))
            except Exception:
                log.exception("publishing the %s source failed", name)
                continue
            # apply() waits for this: the first snapshot is published before the daemon listens.
            self._firsts[name].set()

    async def _stop(self, name: str, drop: bool) -> None:
        """Stop a source; with drop, remove its data from the page too (its section left the config)."""
        await cancel_and_wait(self._tasks.pop(name, None))
        self._dirty.discard(name)
        await cancel_and_wait(self._publishers.pop(name, None))
        if name == "statusdat":
            self.tailer = None
        else:
            self.icinga = None
        if drop:
            await self.live.drop_source(name, NO_SOURCE)

    async def stop(self) -> None:
        """Stop every source (shutdown)."""
        for name in list(self._tasks):
            await self._stop(name, drop=False)


SOURCES = web.AppKey("sources", Sources)


async def sources_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start the sources with the app's config (first loads included) and stop them at cleanup."""
    sources = app[SOURCES]
    await sources.start(app[SETTINGS].config)
    yield
    await sources.stop()


async def reload_config(app: web.Application, path: Path) -> bool:
    """SIGHUP: re-read the config file, then the token files; False when either kept its running version."""
    config_ok = await _reload_config_file(app, path)
    # Tokens after the config: a reloaded [passive] tokens_file is where the push tokens now come from.
    return await reload_tokens(app) and config_ok


async def _reload_config_file(app: web.Application, path: Path) -> bool:
    """Re-read and validate path; on success swap it in and retarget sources, else log and keep the old one."""
    sources, old = app[SOURCES], app[LIVE].config
    try:
        config = await asyncio.to_thread(load_config, path)
        await sources.apply(config)
    except ConfigError as e:
        log.error("reload failed, keeping the running configuration %s", kv({"file": path, "problems": len(e.problems)}))
        for line in e.problems:
            log.error("%s", line)
        return False
    changed = changed_fields(old, config)
    log.info("configuration reloaded %s", kv({"file": path, "components": len(config.components()),
                                              "changed": ",".join(changed) or "nothing"}))  # fmt: skip
    # Sockets stay open across a reload (that is the point of one): a new address needs a restart.
    if {"listen_host", "listen_port"} & set(changed):
        log.warning("http.listen changed: still listening on the old address until a restart")
    if "admin_listen" in changed:
        log.warning("http.admin_listen changed: still listening on the old address until a restart")
    if "idle_timeout" in changed:  # aiohttp takes it when the server is made (the connection caps follow at once)
        log.warning("http.idle_timeout changed: connections keep the old timeout until a restart")
    return True


async def reload_tokens(app: web.Application) -> bool:
    """Re-read the token files `run` read at start; an unreadable one keeps its running tokens (logged, False)."""
    settings = app[SETTINGS]
    files = settings.token_files
    if files is None:  # tokens given directly (tests, the demo): nothing to re-read
        return True
    config = app[LIVE].config
    admin = await _read_tokens(lambda: admin_token_set(files.admin))
    push = await _read_tokens(lambda: push_token_set(files.push, config))
    changed = []
    if admin is not None and admin != settings.admin_tokens:
        settings.admin_tokens = admin
        changed.append("admin")
    if push is not None and push != settings.push_tokens:
        settings.push_tokens = push
        changed.append("push")
    # Counts only: a token never reaches the log.
    log.info("tokens reloaded %s", kv({"admin": len(settings.admin_tokens), "push": len(settings.push_tokens),
                                       "changed": ",".join(changed) or "nothing"}))  # fmt: skip
    return admin is not None and push is not None


async def _read_tokens(read: Callable[[], TokenSet]) -> tuple[str, ...] | None:
    """The tokens read() finds (off the event loop), or None after logging why its file cannot be read."""
    try:
        found = await asyncio.to_thread(read)
    except TokenFileError as e:
        log.error("token reload failed, keeping the running %s tokens %s", e.what, kv({"file": e.path, "error": e.reason}))
        return None
    if found.too_open:
        log.warning("%s is readable by group/others; chmod 600 it", found.path)
    if (short := found.short_warning()) is not None:
        log.warning("%s", short)
    return found.tokens
