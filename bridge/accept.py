"""A listening socket served by aiohttp through our own accept loop: over-cap connections are answered 503 and
closed before any protocol exists, and running out of descriptors pauses accepting for a second, logged once."""

from __future__ import annotations

import asyncio
import errno
import socket

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from bridge.conns import ConnectionGuard, Refused
from bridge.http import error_body

ACCEPT_BATCH = 32  # accepts per readiness event: a connection flood cannot hold the loop for long
ACCEPT_RETRY = 1.0  # seconds to pause accepting when out of descriptors (asyncio waits as long)
# accept() fails with these until something closes: retrying at once would spin. (asyncio's own accept loop
# keeps going after them and schedules one retry per failure, up to the backlog: CPython gh-151615.)
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_SINK = bytearray(16384)  # what a refused client sent already: read so that closing sends a FIN, not a reset


def _reply(message: str) -> bytes:
    """A complete 503 answer in the JSON error shape, closing the connection."""
    body = error_body(503, message)
    head = ("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\nRetry-After: 5\r\nCache-Control: no-store\r\n"
            "Access-Control-Allow-Origin: *\r\nX-Content-Type-Options: nosniff\r\n\r\n")  # fmt: skip
    return head.encode() + body


REPLIES = {
    Refused.PER_IP: _reply("too many connections from your address; close some or retry later"),
    Refused.TOTAL: _reply("the server is at its connection limit; retry later"),
}


class _Counted(asyncio.Protocol):
    """aiohttp's handler for one admitted connection, giving the connection's slot back when it ends."""

    __slots__ = ("_inner", "_guard", "_key")

    def __init__(self, inner: RequestHandler, guard: ConnectionGuard, key: str) -> None:
        """inner handles everything; guard gets key back once."""
        self._inner, self._key = inner, key
        self._guard: ConnectionGuard | None = guard

    def release(self) -> None:
        """Give the slot back (once)."""
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.release(self._key)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Hand the transport to aiohttp."""
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        """Pass bytes on."""
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        """Pass EOF on; aiohttp decides whether the transport closes."""
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        """Pass flow control on."""
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        """Pass flow control on."""
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        """Free the slot, then let aiohttp clean up."""
        self.release()
        self._inner.connection_lost(exc)


class GuardedSite(web.BaseSite):
    """A bound socket served by the runner's aiohttp server, each new connection admitted by guard first."""

    __slots__ = ("_sock", "_guard", "_name", "_loop", "_retry", "_connecting")

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, guard: ConnectionGuard, backlog: int) -> None:
        """sock: bound and non-blocking; listened on at start()."""
        super().__init__(runner, backlog=backlog)
        self._sock, self._guard = sock, guard
        host, port = sock.getsockname()[:2]
        self._name = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._connecting: set[asyncio.Task[None]] = set()  # transports being set up (tasks need a reference)

    @property
    def name(self) -> str:
        """The URL served."""
        return self._name

    async def start(self) -> None:
        """Register with the runner, listen, and accept on readiness."""
        await super().start()
        self._loop = asyncio.get_running_loop()
        self._sock.listen(self._backlog)
        self._loop.add_reader(self._sock.fileno(), self._accept)

    async def stop(self) -> None:
        """Stop accepting and close the socket (new clients are refused by the kernel, not queued)."""
        if self._loop is not None and self._sock.fileno() >= 0:
            self._loop.remove_reader(self._sock.fileno())
        if self._retry is not None:
            self._retry.cancel()
        self._sock.close()
        await super().stop()

    def _accept(self) -> None:
        """Take up to ACCEPT_BATCH pending connections: refuse those over a cap, hand the rest to aiohttp."""
        guard = self._guard
        for _ in range(ACCEPT_BATCH):
            try:
                conn, addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                guard.accept_failed(exc)
                if exc.errno in RESOURCE_ERRNOS:
                    self._pause()
                return  # others (e.g. ENETDOWN, which accept(2) says to treat as EAGAIN): the next readiness
            conn.setblocking(False)
            key = guard.admit(addr[0])
            if isinstance(key, Refused):
                refuse(conn, REPLIES[key])
                continue
            server = self._runner.server
            assert server is not None and self._loop is not None
            task = self._loop.create_task(self._connect(conn, _Counted(server(), guard, key)))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)

    async def _connect(self, conn: socket.socket, protocol: _Counted) -> None:
        """Make the transport; a connection that dies meanwhile gives its slot back."""
        assert self._loop is not None
        try:
            await self._loop.connect_accepted_socket(lambda: protocol, conn)
        except (OSError, RuntimeError):  # reset at once, or the loop is closing
            protocol.release()
            conn.close()

    def _pause(self) -> None:
        """Out of descriptors: stop accepting for ACCEPT_RETRY (pending clients wait in the backlog)."""
        assert self._loop is not None
        self._loop.remove_reader(self._sock.fileno())
        if self._retry is None:
            self._retry = self._loop.call_later(ACCEPT_RETRY, self._resume)

    def _resume(self) -> None:
        """Accept again after a pause."""
        self._retry = None
        if self._loop is not None and self._sock.fileno() >= 0:
            self._loop.add_reader(self._sock.fileno(), self._accept)


def refuse(conn: socket.socket, reply: bytes) -> None:
    """Answer a connection we will not serve and close it at once, freeing its descriptor."""
    try:
        conn.recv_into(_SINK)
    except OSError:
        pass  # nothing sent yet (the usual case), or already reset
    try:
        conn.send(reply)
    except OSError:
        pass
    conn.close()
