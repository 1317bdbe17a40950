"""Attacks on the push endpoints' bodies, against a real server on 127.0.0.1: every body byte counts against
[passive] max_body, a refused token stops the reading, and nothing kept grows with the body.

Each attack streams its body (bounded: at most CAP bytes, then it ends the body properly so that a server that reads
everything answers too) and counts the bytes the server let it send before answering or closing. Small socket
buffers on both ends keep the bytes in flight (kernel buffers, aiohttp's read buffer) under SLACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import tracemalloc
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web

from tests.test_passive import make
from tests.test_reliability_badinput import nrdp_result

LIMIT = 4 << 20  # [passive] max_body of the server under attack
SLACK = 1 << 20  # bytes in flight when the server stops reading: socket buffers of 128 KiB each, aiohttp's buffer
CAP = 24 << 20  # the most any attack sends
BUFFER = 64 << 10  # SO_RCVBUF / SO_SNDBUF asked for (Linux doubles it)
ANSWER_TIMEOUT = 30.0  # a hang bound, not a speed claim: the old code needs seconds of CPU for CAP bytes
NAME = "n" * 1000  # ~1 KB part names, as in the reported attack


@pytest.fixture
async def port(tmp_path) -> AsyncIterator[int]:
    """The real app (push token "t", max_body LIMIT, no rate limit) on a socket with a small receive buffer."""
    runner = web.AppRunner(make(tmp_path, passive_max_body=LIMIT))
    await runner.setup()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)  # accepted connections inherit it
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        yield sock.getsockname()[1]
    finally:
        await runner.cleanup()


class Flood(asyncio.Protocol):
    """Client side of one attack: records what the server answers, and whether it still lets us write."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.answered = asyncio.Event()  # the server said something or closed
        self.closed = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.set_write_buffer_limits(high=0)  # pause as soon as the kernel takes no more
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += data
        self.answered.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.answered.set()
        self.closed.set()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()


async def attack(port: int, head: bytes, body: Iterator[bytes], end: bytes = b"") -> tuple[int, int, bytes]:
    """Send head, then body pieces until the server answers (or CAP, then end): (bytes of body sent, HTTP status, body)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    transport, flood = await loop.create_connection(Flood, sock=sock)
    sent = 0
    try:
        transport.write(head)
        for piece in body:
            await asyncio.wait_for(_either(flood.writable, flood.answered), ANSWER_TIMEOUT)
            if flood.answered.is_set() or transport.is_closing() or sent >= CAP:
                break
            transport.write(piece)
            sent += len(piece)
        if not flood.answered.is_set() and not transport.is_closing():
            transport.write(end)
        await asyncio.wait_for(flood.answered.wait(), ANSWER_TIMEOUT)
        # The whole answer: a server that leaves a body unread closes after it (checked below); one that read it
        # all may keep the connection, and has sent its short answer in one write by now.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(flood.closed.wait(), 1.0)
    finally:
        transport.close()
    head_out, _, answer = bytes(flood.received).partition(b"\r\n\r\n")
    assert head_out, f"no answer after {sent} bytes"
    if sent:  # a body was left unread: the connection must not stay open for the rest of it
        assert b"\r\nConnection: close" in head_out, head_out
    return sent, int(head_out.split(b" ", 2)[1]), answer


async def _either(a: asyncio.Event, b: asyncio.Event) -> None:
    """Wait until either event is set."""
    if a.is_set() or b.is_set():
        return
    waiters = [asyncio.create_task(a.wait()), asyncio.create_task(b.wait())]
    _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def chunked(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Transfer-Encoding: chunked framing of each piece."""
    for piece in pieces:
        yield b"%x\r\n%s\r\n" % (len(piece), piece)


def repeat(piece: bytes, size: int = 64 << 10) -> Iterator[bytes]:
    """The same ~size-byte block of whole pieces, forever."""
    block = piece * max(1, size // len(piece))
    while True:
        yield block


def post(target: str, ctype: str, extra: str = "Transfer-Encoding: chunked\r\n") -> bytes:
    """The head of a POST."""
    return f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n{extra}\r\n".encode()


MULTIPART = "multipart/form-data; boundary=b0undary"
EMPTY_PART = f'--b0undary\r\nContent-Disposition: form-data; name="{NAME}"\r\n\r\n\r\n'.encode()


def distinct_empty_parts(size: int = 64 << 10) -> Iterator[bytes]:
    """Blocks of empty parts, each named differently (a server keeping names would hold them all)."""
    count = 0
    while True:
        block = []
        for _ in range(size // len(EMPTY_PART)):
            count += 1
            block.append(EMPTY_PART.replace(b'name="nnnnnnnn', b'name="%08d' % count, 1))
        yield b"".join(block)

MULTIPART_TAIL = b"%x\r\n--b0undary--\r\n\r\n0\r\n\r\n" % len(b"--b0undary--\r\n")  # last boundary, end of body


async def test_multipart_flood_of_empty_parts_stops_at_max_body(port):
    """The reported attack: chunked, no token, hello, endless empty parts with 1 KB names. Every byte counts: the
    server stops reading at max_body, answers NRDP's REQUEST TOO LARGE, and keeps no part name (memory stays flat)."""
    tracemalloc.start()
    try:
        sent, status, answer = await attack(port, post("/nrdp/?cmd=hello", MULTIPART), chunked(distinct_empty_parts()),
                                            MULTIPART_TAIL)  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert LIMIT < sent <= LIMIT + SLACK, f"the server let {sent} bytes in (max_body {LIMIT})"
    assert (status, nrdp_result(answer)) == (200, (-1, "REQUEST TOO LARGE"))
    # Everything this process allocated meanwhile, both ends of the connection: buffers, not the 4,000 part names.
    assert peak < LIMIT + SLACK, f"peak {peak} bytes allocated while {sent} were sent"


async def test_urlencoded_flood_stops_at_max_body(port):
    """The same with a chunked urlencoded body of endless unknown fields."""
    sent, status, answer = await attack(port, post("/nrdp/?cmd=hello", "application/x-www-form-urlencoded"),
                                        chunked(repeat(NAME.encode() + b"=&")), b"0\r\n\r\n")  # fmt: skip
    assert LIMIT < sent <= LIMIT + SLACK, sent
    assert (status, nrdp_result(answer)) == (200, (-1, "REQUEST TOO LARGE"))


@pytest.mark.parametrize("kind", ["urlencoded", "multipart"])
async def test_a_bad_token_first_in_the_body_ends_the_reading(port, kind):
    """A body whose first field is a bad token is refused as soon as that field is complete: the endless rest is
    never read (no slower than a byte-capped read could tell: well under max_body goes in)."""
    if kind == "urlencoded":
        head, first = post("/nrdp/", "application/x-www-form-urlencoded"), b"token=guess&cmd=submitcheck&xml="
        rest = repeat(b"x" * 1024)
    else:
        head = post("/nrdp/", MULTIPART)
        first = b'--b0undary\r\nContent-Disposition: form-data; name="token"\r\n\r\nguess\r\n'
        rest = repeat(EMPTY_PART)
    sent, status, answer = await attack(port, head, chunked(_then(first, rest)), b"0\r\n\r\n")
    assert sent <= SLACK, f"{sent} bytes went in after a bad token"
    assert (status, nrdp_result(answer)) == (200, (-1, "BAD TOKEN"))


def _then(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    """first, then rest."""
    yield first
    yield from rest


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_a_bad_token_in_the_query_is_refused_before_any_body_byte(port, method):
    """The token in the query string is checked first: a declared 1 MiB body is never waited for."""
    head = f"{method} /nrdp/?token=guess&cmd=submitcheck HTTP/1.1\r\nHost: x\r\n" \
           "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1048576\r\n\r\n".encode()  # fmt: skip
    sent, status, answer = await attack(port, head, iter(()))
    assert sent == 0 and (status, nrdp_result(answer)) == (200, (-1, "BAD TOKEN"))


async def test_a_declared_oversize_body_is_refused_unread(port):
    """Content-Length over max_body: refused at once, nothing of it read."""
    head = post("/nrdp/", "application/x-www-form-urlencoded", f"Content-Length: {LIMIT + 1}\r\n")
    sent, status, answer = await attack(port, head, iter(()))
    assert sent == 0 and (status, nrdp_result(answer)) == (200, (-1, "REQUEST TOO LARGE"))


@pytest.mark.parametrize("auth", ["Bearer guess", "Bearer t"])
async def test_native_endpoint_refusals_stop_reading(port, auth):
    """POST /api/v1/check-results: a bad token is refused before the body, an oversize body at max_body; either
    way the connection closes instead of aiohttp reading on (and discarding) for up to 10 s."""
    head = post("/api/v1/check-results", "application/json", f"Transfer-Encoding: chunked\r\nAuthorization: {auth}\r\n")
    sent, status, answer = await attack(port, head, chunked(repeat(b" " * 1024)), b"0\r\n\r\n")
    if auth == "Bearer t":
        assert status == 413 and LIMIT < sent <= LIMIT + SLACK, (status, sent)
    else:
        assert status == 403 and sent <= SLACK, (status, sent)


@pytest.mark.parametrize("path", ["/nrdp/", "/api/v1/check-results"])
async def test_a_client_leaving_mid_body_is_not_an_error(port, path, caplog):
    """A client that sends half a body and goes (or whose body the HTTP parser refuses half way, which leaves the
    reader waiting for the client to go): one DEBUG line, no ERROR traceback a client could repeat at will."""
    caplog.set_level(logging.DEBUG, logger="bridge.http")
    head = post(path, "application/x-www-form-urlencoded", "Transfer-Encoding: chunked\r\nAuthorization: Bearer t\r\n")
    for rest in (b"5\r\ntoken", b"1;\r\nx\r\n"):  # cut off; a chunk extension llhttp refuses
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        await writer.drain()
        await asyncio.sleep(0.2)  # the handler is reading the body now
        writer.write(rest)
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()
        await writer.wait_closed()
    for _ in range(50):  # until the server has seen both disconnections
        if sum("client disconnected" in r.getMessage() for r in caplog.records) == 2:
            break
        await asyncio.sleep(0.1)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert sum("client disconnected" in r.getMessage() for r in caplog.records) == 2
