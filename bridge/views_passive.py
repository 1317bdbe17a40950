"""Passive push endpoints (native JSON and NRDP) and the task that publishes pushed results, coalesced."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from urllib.parse import unquote_to_bytes

from aiohttp import BodyPartReader, web

from bridge import nrdp
from bridge.admin_input import InputError
from bridge.auth import bearer_error, token_ok
from bridge.front import route
from bridge.http import ApiError
from bridge.keys import LIVE, REGISTRY, SETTINGS
from bridge.live import Live
from bridge.metrics import PassiveCollector
from bridge.passive import ERRORS_MAX, Result, parse_batch
from bridge.passive_store import SOURCE, Outcome, PassiveStore
from bridge.tasks import cancel_and_wait

log = logging.getLogger("bridge.passive")

MIN_GAP = 0.15  # at most one snapshot rebuild per this many seconds, however fast results arrive
REFRESH = 5.0  # re-check per-check staleness this often when no results arrive
FULL_LOG_EVERY = 60.0  # seconds between two log lines saying the store is full


class TooLarge(Exception):
    """The request body exceeds the configured limit."""


class PassiveHub:
    """The passive store plus its publisher: results go in at once, Live sees them at most every min_gap."""

    def __init__(self, live: Live, min_gap: float = MIN_GAP, refresh: float = REFRESH) -> None:
        self.live = live
        self.store = PassiveStore(live.config)
        self.min_gap, self.refresh = min_gap, refresh
        self._dirty = asyncio.Event()
        self._full_logged = -math.inf

    def submit(self, results: Sequence[Result], invalid: int = 0) -> Outcome:
        """Store a validated batch. Publishing happens later, in run()."""
        self.store.set_config(self.live.config)
        outcome = self.store.submit(results, self.live.clock())
        self.store.reject(invalid)
        if outcome.refused:
            self._log_full()
        if outcome.accepted:
            self._dirty.set()
        return outcome

    def _log_full(self) -> None:
        """Say that new checks are refused, at most once a minute (a full store is hit by every push)."""
        now = time.monotonic()
        if now - self._full_logged >= FULL_LOG_EVERY:
            self._full_logged = now
            log.warning("passive: holding %d checks, the [passive] max_checks limit: results for new checks are "
                        "refused (%d so far), held checks still take results", len(self.store), self.store.refused)

    async def publish(self) -> bool:
        """Hand what changed in the store to Live (in place when few checks changed, else merged in a worker
        thread); True when something was published."""
        store = self.store
        store.set_config(self.live.config)
        if not len(store) and SOURCE not in self.live.sources:
            return False  # nothing pushed yet: the passive source claims nothing
        keys, rebuild = store.take(self.live.clock())
        if not keys and not rebuild:
            return False
        await self.live.publish_changes(store, keys, rebuild)
        return True

    async def run(self) -> None:
        """Publish after pushes (coalesced by min_gap) and every refresh seconds for staleness."""
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), self.refresh)
            self._dirty.clear()
            start = time.perf_counter()
            try:
                await self.publish()
            except Exception:
                log.exception("passive: publishing failed")
            took = time.perf_counter() - start
            # Pushes arriving meanwhile set _dirty again and are published together after the gap; on huge
            # sites (merging and preparing 100k checks takes ~0.2 s, in a thread) that is at most a third of the time.
            await asyncio.sleep(max(self.min_gap, 2 * took))


PASSIVE = web.AppKey("passive", PassiveHub)


async def read_capped(request: web.Request, limit: int) -> bytes:
    """The whole body, raising TooLarge past limit (also for chunked bodies without Content-Length)."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge
    chunks, size = [], 0
    while chunk := await request.content.read(limit + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise TooLarge
    return b"".join(chunks)


async def read_form(request: web.Request, limit: int) -> dict[str, str]:
    """URL-encoded or multipart form fields (the last of a repeated name wins, as in PHP); no temp files."""
    if not request.content_type.startswith("multipart/"):
        return parse_urlencoded(await read_capped(request, limit))
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge
    try:
        return await _read_multipart(request, limit)
    except (TooLarge, nrdp.NrdpError):
        raise
    except Exception as e:  # aiohttp's parser raises ValueError, AssertionError, ... on malformed bodies
        raise nrdp.NrdpError(400, "BAD DATA", f"malformed multipart body: {str(e)[:200]}", "body") from None


async def _read_multipart(request: web.Request, limit: int) -> dict[str, str]:
    """Multipart fields read into memory under limit (aiohttp's post() would spool files to disk)."""
    fields, size = {}, 0
    async for part in await request.multipart():
        if not isinstance(part, BodyPartReader) or not part.name:
            raise nrdp.NrdpError(400, "BAD DATA", "multipart body must hold plain named form fields", "body")
        chunks = []
        while chunk := await part.read_chunk():
            size += len(chunk)
            if size > limit:
                raise TooLarge
            chunks.append(chunk)
        fields[part.name] = b"".join(chunks).decode("utf-8", "replace")
    return fields


def parse_urlencoded(raw: bytes) -> dict[str, str]:
    """application/x-www-form-urlencoded fields; the last of a repeated name wins, as in PHP."""
    # send_nrdp.sh posts its XML with `curl -d` unencoded: raw spaces, quotes and newlines must survive.
    fields = {}
    for pair in raw.split(b"&"):
        if pair:
            name, _, value = pair.partition(b"=")
            fields[unquote(name).decode("utf-8", "replace")] = unquote(value).decode("utf-8", "replace")
    return fields


def unquote(part: bytes) -> bytes:
    """Percent- and plus-decoding of one form-encoded name or value, as urllib's unquote_to_bytes does."""
    part = part.replace(b"+", b" ")
    if b"%" not in part:
        return part
    # unquote_to_bytes loops in Python per escape: 1.4 ms for a 20 KB NRDP json field, most of a request.
    # As \xHH escapes (backslashes doubled first) the unicode_escape codec decodes them in C, 10x faster;
    # latin-1 maps its code points 0-255 back to the same bytes.
    try:
        return part.replace(b"\\", b"\\\\").replace(b"%", b"\\x").decode("unicode_escape").encode("latin-1")
    except UnicodeDecodeError:  # a "%" without two hex digits: urllib keeps it literally
        return unquote_to_bytes(part)


async def check_results(request: web.Request) -> web.Response:
    """POST /api/v1/check-results: {"results": [...]} with a bearer token -> accepted/ignored/errors."""
    live, hub = request.app[LIVE], request.app[PASSIVE]
    if not live.config.passive_enabled:
        raise ApiError(403, "passive endpoints disabled")
    denied = bearer_error(request, request.app[SETTINGS].push_tokens, "passive push", "push")
    if denied is not None:
        return denied
    limit = live.config.passive_max_body
    try:
        raw = await read_capped(request, limit)
    except TooLarge:
        raise ApiError(413, f"request body larger than {limit} bytes", "body") from None
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise ApiError(400, f"invalid JSON: {str(e)[:200]}", "body") from None
    try:
        results, errors = parse_batch(body, live.clock())
    except InputError as e:
        raise ApiError(400, e.message, e.field) from None
    done = hub.submit(results, len(errors))
    answer: dict[str, object] = {"accepted": done.accepted, "ignored": done.ignored, "refused": done.refused,
                                 "invalid": len(errors)}
    if done.refused:
        limit = request.app[LIVE].config.passive_max_checks
        answer["refused_reason"] = (f"the passive store holds its limit of {limit} checks ([passive] max_checks): "
                                    "results for new checks are refused until held ones are forgotten")
    answer["errors"] = [e._asdict() for e in errors[:ERRORS_MAX]]
    if errors and not results:
        first = errors[0]
        answer["error"] = {"status": 422, "message": f"no valid check result: {first.message}", "field": first.field}
        return web.json_response(answer, status=422, headers={"Cache-Control": "no-store"})
    return web.json_response(answer, headers={"Cache-Control": "no-store"})


def _no_constant(name: str) -> object:
    """Reject NaN/Infinity: not JSON."""
    raise ValueError(f"{name} is not valid JSON")


async def nrdp_endpoint(request: web.Request) -> web.Response:
    """POST /nrdp/: NRDP's cmd=hello and cmd=submitcheck (json/xml), answered in NRDP's shape."""
    form = dict(request.query)  # NRDP reads GET and POST fields alike; POST wins
    xml = nrdp.answers_xml(form)
    try:
        if request.method == "POST":
            limit = request.app[LIVE].config.passive_max_body
            try:
                form.update(await read_form(request, limit))
            except TooLarge:
                raise nrdp.NrdpError(413, "REQUEST TOO LARGE", f"request body larger than {limit} bytes", "body") from None
            xml = nrdp.answers_xml(form)
        if not request.app[LIVE].config.passive_enabled:
            raise nrdp.NrdpError(403, "NOT ENABLED", "passive endpoints disabled", detail=False)
        body, status = _nrdp_command(request, form, xml)
    except nrdp.NrdpError as e:
        body, status = nrdp.error_body(e, xml), e.status
    data, ctype = nrdp.render(body, xml)
    return web.Response(body=data, status=status, headers={"Content-Type": ctype, "Cache-Control": "no-store"})


def _nrdp_command(request: web.Request, form: dict[str, str], xml: bool) -> tuple[dict[str, object], int]:
    """Route cmd as NRDP does: hello needs no token, everything else does."""
    cmd = form.get("cmd", "").strip().lower()
    if cmd == "hello":
        return nrdp.hello(), 200
    _nrdp_token(request, form.get("token", "").strip())
    if request.method != "POST":
        raise nrdp.NrdpError(405, "NO REQUEST HANDLER", f"cmd={cmd or '(none)'} needs POST", "cmd")
    if cmd == "submitcmd":
        raise nrdp.NrdpError(403, "COMMANDS DISABLED", "external commands are not accepted, only check results", "cmd")
    if cmd != "submitcheck":
        raise nrdp.NrdpError(400, "NO COMMAND" if not cmd else "NO REQUEST HANDLER", "cmd must be submitcheck or hello", "cmd")
    hub = request.app[PASSIVE]
    results, errors = nrdp.parse_submission(form, hub.live.clock())
    hub.submit(results, len(errors))
    if errors and not results:
        raise nrdp.NrdpError(422, "BAD DATA", nrdp.rejected_summary(errors), errors[0].field)
    return nrdp.processed(len(results), xml, errors[:ERRORS_MAX]), 200


def _nrdp_token(request: web.Request, given: str) -> None:
    """NRDP's check_token(): NO TOKEN, NO TOKENS (none configured) or BAD TOKEN; the token is never logged."""
    tokens = request.app[SETTINGS].push_tokens
    if not tokens:
        raise nrdp.NrdpError(403, "NO TOKENS", "passive push disabled: no tokens configured", "token", detail=False)
    if not given:
        raise nrdp.NrdpError(401, "NO TOKEN", "token field required", "token", detail=False)
    if not token_ok(given, tokens):
        log.warning("nrdp: rejected token from %s", request.remote)
        raise nrdp.NrdpError(403, "BAD TOKEN", "invalid token", "token", detail=False)


async def _passive_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run the publisher for the app's lifetime."""
    task = asyncio.create_task(app[PASSIVE].run())
    yield
    await cancel_and_wait(task)


def add_passive(app: web.Application) -> None:
    """Register the passive endpoints, their metrics and the publisher (app[LIVE] and app[REGISTRY] must exist)."""
    hub = PassiveHub(app[LIVE])
    app[PASSIVE] = hub
    app[REGISTRY].register(PassiveCollector(hub.store))
    route(app, "POST", "/api/v1/check-results", check_results)
    # send_nrdp.sh posts to "$url/", so a documented url of http://host/nrdp/ arrives as /nrdp//.
    for method in ("GET", "POST"):
        route(app, method, r"/nrdp{slashes:/*}", nrdp_endpoint)
    app.cleanup_ctx.append(_passive_ctx)
