"""make_app wiring over a real status.dat: first snapshot served at start-up, staleness by age."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from types import SimpleNamespace

from bridge import views
from bridge.app import make_app
from bridge.reload import SOURCES
from bridge.settings import Settings
from tests.conftest import HANG_GUARD, MINI_STATUSDAT, web_config
from tests.test_passive import until_async


async def test_first_snapshot_is_served_at_startup(aiohttp_client, tmp_path):
    path = tmp_path / "status.dat"
    path.write_bytes(MINI_STATUSDAT % int(time.time()))
    config = dataclasses.replace(web_config(), statusdat_path=path, stale_after=60)
    client = await aiohttp_client(make_app(Settings(config)))
    body = await (await client.get("/api/services.json")).json()
    assert body["stale"] is False
    assert body["groups"][0]["services"][0]["status"] == "down"  # web-1/HTTP is CRITICAL in the file


async def test_goes_stale_by_age_without_file_events(aiohttp_client, tmp_path, monkeypatch):
    path = tmp_path / "status.dat"
    path.write_bytes(MINI_STATUSDAT % int(time.time()))
    # The daemon's clock, moved by the test: fresh first and stale later, however slowly the machine runs.
    ahead = [0.0]

    def clock() -> float:
        return time.time() + ahead[0]

    config = dataclasses.replace(web_config(), statusdat_path=path, stale_after=60)
    app = make_app(Settings(config), clock=clock)
    client = await aiohttp_client(app)
    app[SOURCES].tailer.clock = clock  # the tailer ages its data on the same clock...
    monkeypatch.setattr(views, "time", SimpleNamespace(time=clock))  # ...and so does /healthz (its only use of time)
    assert (await (await client.get("/api/services.json")).json())["stale"] is False
    ahead[0] = 3600.0  # an hour on, and the file never touched: only the tailer's periodic check can notice
    body: dict = {}

    async def stale() -> bool:
        nonlocal body
        body = await (await client.get("/api/services.json")).json()
        return body["stale"]

    await asyncio.wait_for(until_async(stale, every=0.2), HANG_GUARD)
    assert body["stale"] is True
    assert "old" in body["stale_reason"]
    assert body["groups"][0]["services"][0]["status"] == "down"  # last good state kept, not invented
    health = await (await client.get("/healthz")).json()
    assert health["stale"] is True
