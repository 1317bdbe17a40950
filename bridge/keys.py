"""Typed application keys through which handlers and background tasks share state."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from sqlite_utils import Database

from bridge.live import Live
from bridge.model import SourceHealth
from bridge.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
LIVE = web.AppKey("live", Live)
REGISTRY = web.AppKey("registry", CollectorRegistry)
# Health at a given time: the tailer's when it runs, else whatever the live inputs say.
HEALTH = web.AppKey("health", Callable[[float], SourceHealth])
DB = web.AppKey("db", Database)
# Call after any write to the DB: reloads notices/overrides, reschedules, republishes.
REFRESH = web.AppKey("refresh", Callable[[], None])
