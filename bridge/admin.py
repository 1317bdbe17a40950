"""Admin API under /api/v1/admin/: bearer-token auth, notices, their updates and components, overrides."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from bridge import admin_ops as ops
from bridge import database
from bridge.admin_input import InputError, known_ids, parse_components, parse_notice
from bridge.auth import admin_auth_error as _auth_error
from bridge.front import ADMIN_PREFIX, route
from bridge.http import ApiError, error_response
from bridge.keys import LIVE, READER, REFRESH, SETTINGS, WRITER
from bridge.notices import Notice, Override, timeline_state
from bridge.override_input import component_ids, parse_override
from bridge.render.sorry import iso_ms
from bridge.storage import list_notices, list_overrides

log = logging.getLogger("bridge.admin")

PREFIX = ADMIN_PREFIX  # the gate keeps it off the public listener when [http] admin_listen is set
MAX_BODY = 64 * 1024
ID = re.compile(r"[0-9]{1,15}")  # anything longer would overflow SQLite's INTEGER: answer 404, not 500
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")


def notice_json(n: Notice, now: float, recent_days: float = 7.0) -> dict[str, Any]:
    """A notice with its components and every update."""
    return {
        "id": n.id,
        "type": n.type,
        "state": n.state,
        "timeline_state": timeline_state(n, now, recent_days),
        "subject": n.subject,
        "slug": n.slug,
        "begins_at": iso_ms(n.begins_at),
        "ends_at": iso_ms(n.ends_at),
        "began_at": iso_ms(n.began_at),
        "ended_at": iso_ms(n.ended_at),
        "created_at": iso_ms(n.created_at),
        "updated_at": iso_ms(n.updated_at),
        "components": list(n.components),
        "updates": [
            {
                "id": u.id,
                "state": u.state,
                "content": u.content,
                "created_at": iso_ms(u.created_at),
                "updated_at": iso_ms(u.updated_at),
            }
            for u in n.updates
        ],
    }


def override_json(o: Override, now: float) -> dict[str, Any]:
    """An override and whether it is in force now; message is what the public sees, reason is for administrators."""
    return {
        "id": o.id,
        "component": o.component_id,
        "status": o.status.value,
        "starts_at": iso_ms(o.starts_at),
        "ends_at": iso_ms(o.ends_at),
        "message": o.message,
        "reason": o.reason,
        "created_at": iso_ms(o.created_at),
        "active": o.active(now),
    }


def admin(handler: Handler) -> Handler:
    """Require a bearer token; InputError is a 422 naming the field, NotFound a 404; no caching of admin answers."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        denied = _auth_error(request)
        if denied is not None:
            return denied
        try:
            resp = await handler(request)
        except InputError as e:
            raise ApiError(422, e.message, e.field) from None
        except ops.NotFound as e:
            raise ApiError(404, str(e), "id") from None
        except sqlite3.OperationalError as e:
            if not database.is_busy(e):
                raise
            # Another writer (the CLI, a second daemon) kept the lock past the busy timeout; the transaction
            # was rolled back, so nothing of this request is stored and a retry is safe.
            log.warning("admin: %s %s: database locked by another writer for %g s; answered 503",
                        request.method, request.path, database.BUSY_TIMEOUT)
            resp = error_response(503, f"the database is locked by another writer (waited {database.BUSY_TIMEOUT:g} s); "
                                       "nothing was written, retry", "database")
            resp.headers["Retry-After"] = "1"
        resp.headers["Cache-Control"] = "no-store"
        return resp

    return wrapper


async def read_json(request: web.Request) -> object:
    """The request body as JSON: 413 above MAX_BODY, 400 naming "body" when it does not parse."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, f"request body larger than {MAX_BODY} bytes", "body")
    chunks, size = [], 0
    while chunk := await request.content.read(MAX_BODY + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(413, f"request body larger than {MAX_BODY} bytes", "body")
    raw = b"".join(chunks)
    if not raw.strip():
        raise ApiError(400, "request body must be a JSON object", "body")
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise ApiError(400, f"invalid JSON: {str(e)[:200]}", "body") from None


def _no_constant(name: str) -> object:
    """Reject NaN/Infinity: not JSON, and not a time."""
    raise ValueError(f"{name} is not valid JSON")


def _id(request: web.Request, what: str) -> int:
    """The {id} path segment; anything but a plausible integer is simply not found."""
    raw = request.match_info["id"]
    if not ID.fullmatch(raw):
        raise ApiError(404, f"no {what} {raw[:40]!r}", "id")
    return int(raw)


def _reply(key: str, obj: dict[str, Any] | list[dict[str, Any]], status: int = 200) -> web.Response:
    """Serialise {key: obj}."""
    return web.json_response({key: obj}, status=status)


def _notice_reply(request: web.Request, notice: Notice, status: int = 200) -> web.Response:
    """One notice as {"notice": ...}."""
    body = notice_json(notice, _now(request), request.app[SETTINGS].recent_days)
    return _reply("notice", body, status)


def _now(request: web.Request) -> float:
    """The app's clock (injectable in tests), so stored times agree with the scheduler's."""
    return request.app[LIVE].clock()


async def _read(request: web.Request, fn: Callable[..., T], *args: Any) -> T:
    """fn(db, *args) in the reader thread: an admin read never waits for a writer's lock."""
    return await request.app[READER].call(fn, *args)


async def _write(request: web.Request, fn: Callable[..., T], *args: Any) -> T:
    """fn(db, *args) in the writer thread (one transaction), then republish; the loop only awaits both."""
    # Shielded: once handed over, the write and its republish finish even if the request is cancelled.
    task = asyncio.ensure_future(_write_then_refresh(request.app, fn, *args))
    task.add_done_callback(_retrieve)
    return await asyncio.shield(task)


async def _write_then_refresh(app: web.Application, fn: Callable[..., T], *args: Any) -> T:
    """The write, then REFRESH; a failed republish must not make the client retry a committed write."""
    result = await app[WRITER].call(fn, *args)
    await app[REFRESH]()  # logs its own failure; the poller retries it
    return result


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a shielded write's outcome as seen (its request may be gone): no "exception never retrieved" noise."""
    if not task.cancelled():
        task.exception()


@admin
async def notices_list(request: web.Request) -> web.Response:
    """GET /api/v1/admin/notices: every notice, newest first."""
    now, days = _now(request), request.app[SETTINGS].recent_days
    return _reply("notices", [notice_json(n, now, days) for n in await _read(request, list_notices)])


@admin
async def notices_create(request: web.Request) -> web.Response:
    """POST /api/v1/admin/notices: create a notice with its first update."""
    now = _now(request)
    spec = parse_notice(await read_json(request), known_ids(request.app[LIVE].config), now)
    notice = await _write(request, ops.add_notice, spec, now)
    log.info("admin: created notice %d (%s, %s)", notice.id, notice.type, notice.state)
    resp = _notice_reply(request, notice, 201)
    resp.headers["Location"] = f"{PREFIX}/notices/{notice.id}"
    return resp


@admin
async def notices_get(request: web.Request) -> web.Response:
    """GET /api/v1/admin/notices/{id}."""
    return _notice_reply(request, await _read(request, ops.read_notice, _id(request, "notice")))


@admin
async def notices_patch(request: web.Request) -> web.Response:
    """PATCH /api/v1/admin/notices/{id}: subject, begins_at, ends_at, components."""
    notice_id = _id(request, "notice")
    body = await read_json(request)
    known = known_ids(request.app[LIVE].config)
    patched = await _write(request, ops.patch_notice, notice_id, body, known, _now(request))
    log.info("admin: changed notice %d (%s)", notice_id, ", ".join(patched.fields))
    return _notice_reply(request, patched.notice)


@admin
async def notices_add_update(request: web.Request) -> web.Response:
    """POST /api/v1/admin/notices/{id}/updates: {state, content}; the notice moves to that state."""
    notice_id = _id(request, "notice")
    body = await read_json(request)
    updated = await _write(request, ops.post_update, notice_id, body, _now(request))
    log.info("admin: notice %d now %s", notice_id, updated.state)
    return _notice_reply(request, updated, 201)


@admin
async def notices_put_components(request: web.Request) -> web.Response:
    """PUT /api/v1/admin/notices/{id}/components: {components: [...]} replaces the links."""
    notice_id = _id(request, "notice")
    components = parse_components(await read_json(request), known_ids(request.app[LIVE].config))
    updated = await _write(request, ops.set_components, notice_id, components, _now(request))
    log.info("admin: notice %d components %s", notice_id, ",".join(components) or "(none)")
    return _notice_reply(request, updated)


@admin
async def overrides_list(request: web.Request) -> web.Response:
    """GET /api/v1/admin/overrides: every stored override (past, current and future), by start."""
    now = _now(request)
    return _reply("overrides", [override_json(o, now) for o in await _read(request, list_overrides)])


@admin
async def overrides_create(request: web.Request) -> web.Response:
    """POST /api/v1/admin/overrides: {component, status, starts_at?, ends_at?, message?, reason?}."""
    now = _now(request)
    spec = parse_override(await read_json(request), component_ids(request.app[LIVE].config), now)
    override = await _write(request, ops.add_override, spec, now)
    log.info("admin: created override %d (%s -> %s)", override.id, override.component_id, override.status.value)
    resp = _reply("override", override_json(override, _now(request)), 201)
    resp.headers["Location"] = f"{PREFIX}/overrides/{override.id}"
    return resp


@admin
async def overrides_patch(request: web.Request) -> web.Response:
    """PATCH /api/v1/admin/overrides/{id}: status, starts_at, ends_at, message, reason (null clears the texts)."""
    override_id = _id(request, "override")
    body = await read_json(request)
    override, fields = await _write(request, ops.patch_override, override_id, body, _now(request))
    log.info("admin: changed override %d (%s)", override_id, ", ".join(fields))
    return _reply("override", override_json(override, _now(request)))


@admin
async def overrides_delete(request: web.Request) -> web.Response:
    """DELETE /api/v1/admin/overrides/{id}: 204, or 404 when unknown."""
    override_id = _id(request, "override")
    await _write(request, ops.remove_override, override_id)
    log.info("admin: removed override %d", override_id)
    return web.Response(status=204)


def add_admin_routes(app: web.Application) -> None:
    """Register the admin API (every route checks the bearer token)."""
    route(app, "GET", f"{PREFIX}/notices", notices_list)
    route(app, "POST", f"{PREFIX}/notices", notices_create)
    route(app, "GET", f"{PREFIX}/notices/{{id}}", notices_get)
    route(app, "PATCH", f"{PREFIX}/notices/{{id}}", notices_patch)
    route(app, "POST", f"{PREFIX}/notices/{{id}}/updates", notices_add_update)
    route(app, "PUT", f"{PREFIX}/notices/{{id}}/components", notices_put_components)
    route(app, "GET", f"{PREFIX}/overrides", overrides_list)
    route(app, "POST", f"{PREFIX}/overrides", overrides_create)
    route(app, "PATCH", f"{PREFIX}/overrides/{{id}}", overrides_patch)
    route(app, "DELETE", f"{PREFIX}/overrides/{{id}}", overrides_delete)
