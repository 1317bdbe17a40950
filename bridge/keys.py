"""Typed application keys through which handlers and background tasks share state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from sqlite_utils import Database

from bridge.db_thread import DbThread
from bridge.live import Live
from bridge.model import SourceHealth
from bridge.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
LIVE = web.AppKey("live", Live)
REGISTRY = web.AppKey("registry", CollectorRegistry)
# Health at a given time: the tailer's when it runs, else whatever the live inputs say.
HEALTH = web.AppKey("health", Callable[[float], SourceHealth])
# The loop's own connection: start-up only (migrations, the first notices) and the history recorder's in-memory
# fallback. Requests and the scheduler never use it: they go through WRITER and READER.
DB = web.AppKey("db", Database)
# The one thread that writes notices and overrides (admin API, scheduler), on its own connection.
WRITER = web.AppKey("db_writer", DbThread)
# The thread that serves reads for requests (history, admin lists), on a read-only connection of its own.
READER = web.AppKey("db_reader", DbThread)
# Await after any write to the DB: reloads notices/overrides (in WRITER), reschedules, republishes.
REFRESH = web.AppKey("refresh", Callable[[], Awaitable[None]])
