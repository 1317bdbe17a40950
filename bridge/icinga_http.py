"""HTTP edges of the Icinga 2 API: credentials, TLS, error text, object queries and event-stream lines."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from bridge.config import ConfigError

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


async def query_objects(session: aiohttp.ClientSession, base: URL, kind: str, attrs: Sequence[str]) -> list[Any]:
    """GET /v1/objects/<kind> with only the attributes we map; the JSON is decoded off the event loop."""
    timeout = aiohttp.ClientTimeout(total=SYNC_TIMEOUT, connect=CONNECT_TIMEOUT)
    params = [("attrs", a) for a in attrs]
    async with session.get(base / "v1/objects" / kind, params=params, timeout=timeout, allow_redirects=False) as resp:
        await raise_for_status(resp)
        raw = await resp.read()
    doc = await asyncio.to_thread(json.loads, raw)
    results = doc.get("results") if isinstance(doc, dict) else None
    if not isinstance(results, list):
        raise IcingaError(f"unexpected answer to GET /v1/objects/{kind}: no results list")
    return results


async def probe(session: aiohttp.ClientSession, base: URL, seconds: float) -> None:
    """A cheap authenticated query (matches nothing); raises when Icinga does not answer within seconds."""
    timeout = aiohttp.ClientTimeout(total=seconds, connect=CONNECT_TIMEOUT)
    params = [("attrs", "name"), ("filter", "false")]
    async with session.get(base / "v1/objects/hosts", params=params, timeout=timeout, allow_redirects=False) as resp:
        await raise_for_status(resp)
        await resp.read()


async def raise_for_status(resp: aiohttp.ClientResponse) -> None:
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


async def lines(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Non-empty lines of a byte stream of any length (aiohttp's own readline caps lines at 128 KiB)."""
    buffer = bytearray()
    async for chunk in stream.iter_any():
        buffer += chunk
        if b"\n" not in chunk:  # a long event arrives in many chunks: split only once it is complete
            if len(buffer) > MAX_LINE:
                raise ValueError(f"event line longer than {MAX_LINE} bytes")
            continue
        *complete, rest = bytes(buffer).split(b"\n")
        buffer = bytearray(rest)
        for line in complete:
            if line.strip():
                yield line
    if buffer.strip():
        yield bytes(buffer)
