"""Connection floods for tests: idle and slowloris connections from loopback source addresses, and what the server
did with each (answered 503, closed without an answer, reset, or left open). Run as a module it is a separate
attacker process: `python -m tests.connflood PORT SOURCE IDLE SLOWLORIS SECONDS`, a JSON summary on stdout."""

from __future__ import annotations

import errno
import json
import selectors
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

# A request line and headers that never end: one more header line every TRICKLE seconds (slowloris).
SLOW_START = b"GET /api/services.json HTTP/1.1\r\nHost: status.example.org\r\n"
SLOW_LINE = b"X-Slow: 1\r\n"
TRICKLE = 0.5


@dataclass(eq=False)
class Conn:
    """One client connection and what became of it."""

    sock: socket.socket
    source: str
    slow: bool
    opened: float  # monotonic
    received: bytes = b""
    closed: float | None = None  # monotonic time the server closed or reset it
    reset: bool = False
    next_send: float = 0.0
    sent_lines: int = 0

    @property
    def refused(self) -> bool:
        """Answered with the daemon's 503 at accept."""
        return self.received.startswith(b"HTTP/1.1 503")


@dataclass
class Flood:
    """Connections to 127.0.0.1:port, watched until the server closes them or a deadline passes."""

    port: int
    conns: list[Conn] = field(default_factory=list)

    def open(self, count: int, source: str, slow: bool = False) -> list[Conn]:
        """Open count connections from source (slow: a never-ending request header, trickled while watched)."""
        new = [self._connect(source, slow) for _ in range(count)]
        self.conns += new
        return new

    def _connect(self, source: str, slow: bool) -> Conn:
        """A non-blocking connection from source (the kernel completes the handshake even while the server does
        not accept, as long as its backlog has room)."""
        sock = socket.socket()
        sock.bind((source, 0))
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", self.port))  # EINPROGRESS; a failure shows when reading
        now = time.monotonic()
        return Conn(sock, source, slow, opened=now, next_send=now)

    def watch(self, until: float, done: Callable[[], bool] = lambda: False, reopen_after: float | None = None) -> None:
        """Read what the server sends, trickle the slow headers, note each close; stop at until (monotonic), when
        done() holds or when all are closed. reopen_after: replace each closed connection after that long."""
        sel = selectors.DefaultSelector()
        open_ = [c for c in self.conns if c.closed is None and c.sock.fileno() >= 0]  # not closed by either side
        for conn in open_:
            sel.register(conn.sock, selectors.EVENT_READ, conn)
        slow = {c for c in open_ if c.slow}
        reopen: deque[tuple[float, Conn]] = deque()
        try:
            while time.monotonic() < until and (sel.get_map() or reopen) and not done():
                now = time.monotonic()
                for conn in [c for c in slow if c.next_send <= now]:
                    self._trickle(conn, now)
                while reopen and reopen[0][0] <= now:
                    old = reopen.popleft()[1]
                    conn = self._connect(old.source, old.slow)
                    self.conns.append(conn)
                    sel.register(conn.sock, selectors.EVENT_READ, conn)
                    if conn.slow:
                        slow.add(conn)
                for key, _ in sel.select(timeout=0.05):
                    conn = key.data
                    if self._read(conn):
                        sel.unregister(conn.sock)
                        conn.sock.close()
                        slow.discard(conn)
                        if reopen_after is not None:
                            reopen.append((time.monotonic() + reopen_after, conn))
        finally:
            sel.close()

    @staticmethod
    def _trickle(conn: Conn, now: float) -> None:
        """Send the next piece of a slow connection's header: the request line first, then a header line."""
        conn.next_send = now + TRICKLE
        try:
            conn.sock.send(SLOW_LINE if conn.sent_lines else SLOW_START)
            conn.sent_lines += 1
        except OSError:
            pass  # not connected yet (sent next time), or closed by the server (the read side notices)

    @staticmethod
    def _read(conn: Conn) -> bool:
        """Read what is there; True once the server closed or reset the connection."""
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return False
        except OSError as exc:
            conn.reset = exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNREFUSED)
            conn.closed = time.monotonic()
            return True
        if data:
            conn.received += data
            return False
        conn.closed = time.monotonic()
        return True

    def close(self) -> None:
        """Close whatever is still open."""
        for conn in self.conns:
            conn.sock.close()

    def closed(self, source: str | None = None) -> int:
        """Connections (from source) the server has closed."""
        return sum(c.closed is not None for c in self.conns if source in (None, c.source))

    def summary(self, source: str | None = None) -> dict[str, int]:
        """Counts by outcome, of the connections from source (None: all)."""
        conns = [c for c in self.conns if source in (None, c.source)]
        closed = [c for c in conns if c.closed is not None]
        return {
            "opened": len(conns),
            "refused_503": sum(c.refused for c in closed),
            "closed_unanswered": sum(not c.received and not c.reset for c in closed),
            "reset": sum(c.reset for c in closed),
            "other_answer": sum(bool(c.received) and not c.refused for c in closed),
            "still_open": len(conns) - len(closed),
        }


def main(argv: list[str]) -> int:
    """Attack 127.0.0.1:PORT from SOURCE with IDLE idle and SLOWLORIS slow connections for SECONDS, reopening each
    connection the server closes half a second later; print "open" once they are, then the summary as JSON."""
    port, source, idle, slow, seconds = int(argv[0]), argv[1], int(argv[2]), int(argv[3]), float(argv[4])
    flood = Flood(port)
    flood.open(idle, source)
    flood.open(slow, source, slow=True)
    print("open", flush=True)
    flood.watch(time.monotonic() + seconds, reopen_after=0.5)
    print(json.dumps(flood.summary()), flush=True)
    flood.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
