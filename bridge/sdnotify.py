"""The sd_notify protocol (READY, RELOADING, STOPPING, STATUS, WATCHDOG) over the stdlib socket module."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger("bridge.sdnotify")


def _address(env: Mapping[str, str]) -> str | bytes | None:
    """$NOTIFY_SOCKET as a socket address: a path, or an abstract name ('@' becomes a leading NUL)."""
    value = env.get("NOTIFY_SOCKET", "")
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    # systemd only ever hands out absolute paths or abstract names; anything else (vsock URLs) we skip.
    return value if value.startswith("/") else None


def under_systemd(env: Mapping[str, str] | None = None) -> bool:
    """True when systemd started us as a unit: it sets $INVOCATION_ID for every unit it runs."""
    return bool((os.environ if env is None else env).get("INVOCATION_ID"))


def notify(message: str, env: Mapping[str, str] | None = None) -> bool:
    """Send one notification datagram; False (never an exception) when not under systemd or on failure."""
    address = _address(os.environ if env is None else env)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError as e:
        # The manager may be restarting; a missed notification must never take the service down.
        log.debug("sd_notify %r failed: %s", message.split("\n", 1)[0], e)
        return False


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of $WATCHDOG_USEC), None when no watchdog is asked of us."""
    env = os.environ if env is None else env
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    # WATCHDOG_PID names the process systemd watches: a child that inherited the variables must stay quiet.
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 2_000_000


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, as RELOADING=1 wants it in MONOTONIC_USEC."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """The daemon's side of the protocol: readiness, reload, stop, STATUS lines and watchdog pings."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        """Read the environment once: NOTIFY_SOCKET and WATCHDOG_* belong to this process only."""
        self.env = dict(os.environ if env is None else env)
        self.enabled = _address(self.env) is not None
        self.interval = watchdog_interval(self.env) if self.enabled else None
        self._status: str | None = None

    def send(self, *fields: str) -> bool:
        """Send fields (e.g. "READY=1", "STATUS=...") in one datagram."""
        return self.enabled and notify("\n".join(fields), self.env)

    def ready(self, status: str) -> None:
        """Tell systemd start-up (or a reload) is complete."""
        self._status = status
        self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        """Tell systemd a reload started (it waits for the next READY=1)."""
        self.send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}", "STATUS=reloading configuration")

    def stopping(self) -> None:
        """Tell systemd we are shutting down on purpose."""
        self.send("STOPPING=1", "STATUS=stopping: finishing requests")

    def status(self, text: str) -> None:
        """Update the STATUS= line shown by `systemctl status`, only when it changed."""
        if text != self._status:
            self._status = text
            self.send(f"STATUS={text}")

    async def watchdog(self, status: Callable[[], str] | None = None) -> None:
        """Ping WATCHDOG=1 from the event loop every interval, so a stuck loop stops the pings; until cancelled."""
        if self.interval is None:
            return
        while True:
            self.send("WATCHDOG=1")
            if status is not None:
                try:
                    self.status(status())
                except Exception:  # a status line is decoration: never stop the pings over it
                    log.exception("building the STATUS= line failed")
            await asyncio.sleep(self.interval)
