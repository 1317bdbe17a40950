"""Passive push endpoints (native JSON and NRDP) and the task that publishes pushed results, coalesced."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from bridge import nrdp
from bridge.admin_input import InputError
from bridge.auth import bearer_error, token_ok
from bridge.body import TooLarge, read_capped
from bridge.front import FRONT, route
from bridge.http import ApiError
from bridge.keys import LIVE, REGISTRY, SETTINGS
from bridge.live import Live
from bridge.metrics import PassiveCollector
from bridge.nrdp_form import query_fields, read_fields
from bridge.passive import ERRORS_MAX, Result, parse_batch
from bridge.passive_store import SOURCE, Outcome, PassiveStore
from bridge.tasks import cancel_and_wait

log = logging.getLogger("bridge.passive")

MIN_GAP = 0.15  # at most one snapshot rebuild per this many seconds, however fast results arrive
REFRESH = 5.0  # re-check per-check staleness this often when no results arrive
FULL_LOG_EVERY = 60.0  # seconds between two log lines saying the store is full


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
    """/nrdp/ as NRDP 2.x answers it: HTTP 200 whatever happened, the outcome in NRDP's XML or JSON body."""
    form = query_fields(request)  # NRDP reads GET and POST fields alike; POST wins
    complete = request.method != "POST"  # all fields known (NRDP reads no body but a POST's)
    try:
        if not request.app[LIVE].config.passive_enabled:
            raise nrdp.NrdpError("NOT ENABLED", "passive endpoints disabled", detail=False)
        if not complete:
            await _read_body(request, form)
            complete = True
        body = _nrdp_command(request, form)
    except nrdp.NrdpError as e:
        body = nrdp.error_body(e)
    # Refused before the body was read, the fields that choose the format may never have come: a client that
    # accepts JSON (and not XML) gets JSON then.
    json_answer = nrdp.answers_json(form) or (not complete and _wants_json(request.headers.get("Accept", "")))
    data, ctype = nrdp.render(body, json_answer, not nrdp.php_empty(form.get("pretty", "")))
    return web.Response(body=data, headers={"Content-Type": ctype, "Cache-Control": "no-store"})


def _wants_json(accept: str) -> bool:
    """True when an Accept header names JSON but no XML."""
    accept = accept.lower()
    return "json" in accept and "xml" not in accept


async def _read_body(request: web.Request, form: dict[str, str]) -> None:
    """Add the body's fields to form; a token (in the query or the body) is checked as soon as it is known, so a
    refused client never gets the rest of its body read."""

    def check(token: str) -> None:
        """Refuse a bad token at once (an empty one is only known to be missing at the end)."""
        if token.strip():
            _nrdp_token(request, token.strip())

    def on_field(name: str, value: str) -> None:
        """Keep each field as it completes (so a refusal is answered in the format known so far)."""
        form[name] = value
        if name == "token":
            check(value)

    check(form.get("token", ""))
    limit = request.app[LIVE].config.passive_max_body
    try:
        await read_fields(request, limit, on_field)
    except TooLarge:
        raise nrdp.NrdpError("REQUEST TOO LARGE", f"request body larger than {limit} bytes") from None


def _nrdp_command(request: web.Request, form: dict[str, str]) -> dict[str, object]:
    """Route cmd as NRDP does: hello needs no token, everything else does."""
    cmd = form.get("cmd", "").strip().lower()
    if cmd == "hello":
        return nrdp.hello()
    _nrdp_token(request, form.get("token", "").strip())
    if cmd in ("submitcmd", "submitrawcmd"):
        raise nrdp.NrdpError("COMMANDS DISABLED", "external commands are not accepted, only check results", detail=False)
    if cmd != "submitcheck":
        raise nrdp.NrdpError("NO COMMAND" if not cmd else "NO REQUEST HANDLER", "cmd must be submitcheck or hello")
    hub = request.app[PASSIVE]
    results, errors = nrdp.parse_submission(form, hub.live.clock())
    hub.submit(results, len(errors))
    if errors and not results:
        raise nrdp.NrdpError("BAD DATA", nrdp.rejected_summary(errors))
    request.app[FRONT].accept(request)  # a valid token and a processed submission: not charged to the rate limit
    return nrdp.processed(len(results), errors[:ERRORS_MAX])


def _nrdp_token(request: web.Request, given: str) -> None:
    """NRDP's check_token(): NO TOKEN, NO TOKENS (none configured) or BAD TOKEN; the token is never logged."""
    if not given:
        raise nrdp.NrdpError("NO TOKEN", "token field required", detail=False)
    tokens = request.app[SETTINGS].push_tokens
    if not tokens:
        raise nrdp.NrdpError("NO TOKENS", "passive push disabled: no tokens configured", detail=False)
    if not token_ok(given, tokens):
        log.warning("nrdp: rejected token from %s", request.remote)
        raise nrdp.NrdpError("BAD TOKEN", "invalid token", detail=False)


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
