"""Request bodies read under a byte cap: every body byte taken from the connection is counted, none past the cap."""

from __future__ import annotations

from aiohttp import web

CHUNK = 64 << 10  # bytes asked for per read: aiohttp's own buffer size


class TooLarge(Exception):
    """The request body exceeds the configured limit."""


class Budget:
    """Reads one request body in chunks and counts each byte; TooLarge as soon as more than limit have come in.

    Reads never ask for more than the bytes left under the cap (plus one, to tell "exactly limit" from "more"),
    so a body without Content-Length (chunked) is cut off at the cap like any other.
    """

    def __init__(self, request: web.Request, limit: int) -> None:
        """TooLarge at once when the declared Content-Length is already over limit (nothing is read then)."""
        if request.content_length is not None and request.content_length > limit:
            raise TooLarge
        self.stream, self.limit, self.used = request.content, limit, 0

    async def read(self) -> bytes:
        """The next chunk of the body; b"" at its end."""
        chunk = await self.stream.read(min(CHUNK, self.limit + 1 - self.used))
        self.used += len(chunk)
        if self.used > self.limit:
            raise TooLarge
        return chunk


async def read_capped(request: web.Request, limit: int) -> bytes:
    """The whole body, raising TooLarge past limit (also for chunked bodies without Content-Length)."""
    budget = Budget(request, limit)
    chunks = []
    while chunk := await budget.read():
        chunks.append(chunk)
    return b"".join(chunks)


def body_unread(request: web.BaseRequest) -> bool:
    """True while part of the request body has not even arrived: answering it must close the connection."""
    # aiohttp would otherwise keep reading (and discarding) the rest for up to 10 s after the answer
    # ("lingering close"): megabytes a second from a client whose request was just refused.
    return not request.content.is_eof()
