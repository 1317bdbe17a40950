"""The long-running server: sockets, systemd notification, SIGHUP reload and graceful SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from pathlib import Path

from aiohttp import web

from bridge.accept import GuardedSite
from bridge.conns import CONNECTIONS
from bridge.fdlimit import describe, raise_nofile
from bridge.front import INFLIGHT, LISTENERS
from bridge.keys import LIVE
from bridge.logs import AccessLogger, access_log
from bridge.reload import reload_config
from bridge.sdnotify import Notifier
from bridge.server import BridgeRunner

log = logging.getLogger("bridge.daemon")

SHUTDOWN_TIMEOUT = 10.0  # after SIGTERM, in-flight requests get this long (the unit's TimeoutStopSec is 30 s)
CUT_OFF = 1.0  # then what is still running gets this long to notice its cancellation
BACKLOG = 512  # the kernel caps it at net.core.somaxconn


def bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for every address host resolves to (bound now, so a busy port fails before loading)."""
    socks: list[socket.socket] = []
    try:
        for family, kind, proto, _, addr in socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                               flags=socket.AI_PASSIVE):  # fmt: skip
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                # "[::]" means IPv6 only, as in nginx; list 0.0.0.0 separately for both.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
            sock.setblocking(False)
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks


def url(host: str, port: int) -> str:
    """http://host:port/ with IPv6 brackets."""
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def status_line(app: web.Application, where: str) -> str:
    """The STATUS= text for `systemctl status`: what is served and whether the data is fresh."""
    snap = app[LIVE].snapshot
    count = sum(len(g.components) for g in snap.groups)
    fresh = f"data stale: {snap.stale_reason}" if snap.stale else "data fresh"
    return f"serving {count} components on {where}; {fresh}"


class Daemon:
    """Runs one app until SIGTERM/SIGINT; SIGHUP re-reads config_path (coalesced, never two at once)."""

    def __init__(self, app: web.Application, config_path: Path | None, notifier: Notifier | None = None) -> None:
        """config_path None (the demo): SIGHUP has nothing to re-read."""
        self.app, self.config_path = app, config_path
        self.notifier = notifier or Notifier()
        self.stop = asyncio.Event()
        self.where = ""
        self._ready = False
        self._again = False
        self._reload: asyncio.Task[None] | None = None

    def hangup(self) -> None:
        """SIGHUP: start a reload, or queue one behind the running one (or behind start-up)."""
        if not self._ready or (self._reload is not None and not self._reload.done()):
            self._again = True
            return
        self._reload = asyncio.create_task(self._reload_loop())

    async def _reload_loop(self) -> None:
        """Reload until no SIGHUP arrived meanwhile; READY=1 after each, as the notify protocol wants."""
        self._again = True
        while self._again:
            self._again = False
            self.notifier.reloading()
            if self.config_path is None:
                log.info("SIGHUP: no configuration file to reload (demo)")
            else:
                await reload_config(self.app, self.config_path)
            self.notifier.ready(status_line(self.app, self.where))

    async def run(self, public: tuple[str, int], admin: tuple[str, int] | None, access: bool,
                  shutdown_timeout: float = SHUTDOWN_TIMEOUT) -> int:  # fmt: skip
        """Serve until stopped; 0 on a clean stop, 1 when a socket cannot be bound; ConfigError propagates."""
        socks: list[socket.socket] = []
        admin_socks: list[socket.socket] = []
        for address, into in ((public, socks), (admin, admin_socks)):
            try:
                into += bind(*address) if address else []
            except OSError as e:
                assert address is not None
                log.error("cannot listen on %s: %s", url(*address), e.strerror or e)
                for sock in socks:
                    sock.close()
                return 1
        self._limit_connections()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.hangup)
        # aiohttp closes a connection that has no complete request header this long after it opened or after
        # its last answer: idle keep-alive connections and slowloris alike (a changed value needs a restart).
        timeouts = {"shutdown_timeout": CUT_OFF, "keepalive_timeout": self.app[LIVE].config.idle_timeout}
        if access:
            runner = BridgeRunner(self.app, access_log_class=AccessLogger, access_log=access_log, **timeouts)
        else:  # no per-request lines: the state changes are what the journal is for
            runner = BridgeRunner(self.app, access_log=None, **timeouts)
        watchdog = asyncio.create_task(self.notifier.watchdog(lambda: status_line(self.app, self.where)))
        self.notifier.status("starting: loading monitoring data")
        try:
            await runner.setup()  # on_startup: the scheduler and every source's first load
            if not self.stop.is_set():  # a SIGTERM during a slow first load: never start serving
                await self._serve(runner, socks, admin_socks, public, admin)
            self.notifier.stopping()
            await self._drain(runner, shutdown_timeout)
        finally:
            for task in (watchdog, self._reload):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            # Closes idle connections, stops the sources and the scheduler, closes the DB.
            await runner.cleanup()
            for sock in socks + admin_socks:
                sock.close()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        log.info("stopped")
        return 0

    async def _serve(self, runner: web.AppRunner, socks: list[socket.socket], admin_socks: list[socket.socket],
                     public: tuple[str, int], admin: tuple[str, int] | None) -> None:  # fmt: skip
        """Start accepting, tell systemd, and wait for SIGTERM/SIGINT."""
        guards = self.app[CONNECTIONS]
        for sock in socks:
            await GuardedSite(runner, sock, guards.public, BACKLOG).start()
        for sock in admin_socks:
            await GuardedSite(runner, sock, guards.admin, BACKLOG).start()
        self.app[LISTENERS].admin.update(sock.getsockname()[:2] for sock in admin_socks)
        self.where = url(*public) + (f" (admin API on {url(*admin)})" if admin else "")
        log.info("serving on %s", self.where)
        # Start-up objects (modules, routes, templates, config) live as long as the process: frozen, they
        # leave every later full collection, each of which would otherwise walk them on the loop (20-45 ms).
        gc.collect()
        gc.freeze()
        # Only now: the first snapshot is built and the sockets accept, so "active" means serving.
        self._ready = True
        self.notifier.ready(status_line(self.app, self.where))
        if self._again:
            self.hangup()
        await self.stop.wait()

    def _limit_connections(self) -> None:
        """Raise the open-file limit, tell the guards what it is, and log the caps that follow."""
        limit = raise_nofile()
        guards = self.app[CONNECTIONS]
        for guard in guards:
            guard.fd_limit = limit.soft
        config = self.app[LIVE].config
        per_ip = config.max_connections_per_ip or "no cap"
        # WARNING when the limit could not be raised: the caps are then lower than they could be.
        log.log(logging.WARNING if limit.error else logging.INFO,
                "connections: at most %d open (per client address: %s, trusted proxies exempt), idle timeout %g s; "
                "file descriptor limit %s", guards.public.caps()[1], per_ip, config.idle_timeout, describe(limit))

    async def _drain(self, runner: web.AppRunner, timeout: float) -> None:
        """Stop accepting, then let the requests being handled finish (bounded by timeout)."""
        for site in list(runner.sites):
            await site.stop()
        inflight = self.app[INFLIGHT]
        inflight.draining = True
        log.info("stopping: %d requests in flight (waiting at most %g s)", inflight.count, timeout)
        # aiohttp's own shutdown drops request bodies still arriving; so wait before handing over to it.
        if not await inflight.wait_idle(timeout):
            log.warning("stopping: %d requests still running after %g s are cut off", inflight.count, timeout)
