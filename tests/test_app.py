"""make_app wiring over a real status.dat: first snapshot served at start-up, staleness by age."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from bridge.app import make_app
from bridge.settings import Settings
from tests.conftest import MINI_STATUSDAT, web_config


async def test_first_snapshot_is_served_at_startup(aiohttp_client, tmp_path):
    path = tmp_path / "status.dat"
    path.write_bytes(MINI_STATUSDAT % int(time.time()))
    config = dataclasses.replace(web_config(), statusdat_path=path, stale_after=60)
    client = await aiohttp_client(make_app(Settings(config)))
    body = await (await client.get("/api/services.json")).json()
    assert body["stale"] is False
    assert body["groups"][0]["services"][0]["status"] == "down"  # web-1/HTTP is CRITICAL in the file


async def test_goes_stale_by_age_without_file_events(aiohttp_client, tmp_path):
    path = tmp_path / "status.dat"
    path.write_bytes(MINI_STATUSDAT % int(time.time()))
    # 3 s: long enough to see it fresh first even on a loaded CI machine, short enough to wait for.
    config = dataclasses.replace(web_config(), statusdat_path=path, stale_after=3)
    client = await aiohttp_client(make_app(Settings(config)))
    assert (await (await client.get("/api/services.json")).json())["stale"] is False
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        body = await (await client.get("/api/services.json")).json()
        if body["stale"]:
            break
        await asyncio.sleep(0.2)
    assert body["stale"] is True
    assert "old" in body["stale_reason"]
    assert body["groups"][0]["services"][0]["status"] == "down"  # last good state kept, not invented
    health = await (await client.get("/healthz")).json()
    assert health["stale"] is True
