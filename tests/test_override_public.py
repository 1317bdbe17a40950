"""What of an override is public: its message on the page and the Oxford feed, its reason on no public route at all.

The public routes come from app.router (as in the reliability tests), so a surface added later is checked too.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from sqlite_utils import Database

from bridge.app import make_app
from bridge.database import migrations
from bridge.keys import LIVE
from bridge.model import SourceHealth
from bridge.settings import Settings
from tests.conftest import check, status_data, web_config
from tests.test_reliability_badinput import public_gets

AUTH = {"Authorization": "Bearer admin-token-5c1d"}
SECRET = "ticket-4711-cage-b9f2"  # distinctive: no public text contains it unless a reason leaks
MESSAGE = "Moving the website to a new provider"
FRESH = SourceHealth(stale=False, data_created=1_700_000_000.0, last_parse_seconds=0.01, parses_total=1)


def app_on(db_path: Path) -> Any:
    """The real app on a SQLite file, with fresh all-up monitoring data and an admin token."""
    settings = Settings(web_config(rate_limit=0.0), watch=False, db_path=db_path, admin_tokens=(AUTH["Authorization"][7:],))
    app = make_app(settings)
    app[LIVE].update(status_data(check("web-1", "HTTP"), check("db-1", "PostgreSQL")), FRESH)
    return app


async def admin(client: Any, method: str, path: str, body: object, status: int) -> dict[str, Any]:
    """One admin API request through the real app, asserting its status."""
    resp = await client.request(method, "/api/v1/admin" + path, data=json.dumps(body), headers=AUTH)
    text = await resp.text()
    assert resp.status == status, text
    return json.loads(text)


async def public_bodies(client: Any) -> dict[str, str]:
    """Every public GET route (parameters filled with ids that exist) -> its body; each must answer 200."""
    bodies = {}
    for path in public_gets(client.server.app):
        resp = await client.get(path)
        bodies[path] = await resp.text()
        assert resp.status == 200, (path, bodies[path][:300])
    return bodies


async def test_the_reason_is_on_no_public_route_and_the_message_is_where_overrides_show(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await aiohttp_client(app_on(tmp_path / "db.sqlite"))
    # A notice too, so /notices/{ref} and /api/v1/notices/{id} render something rather than a 404.
    await admin(client, "POST", "/notices", {"type": "unplanned", "subject": "Provider switch", "components": ["website"]}, 201)
    with_message = {"component": "website", "status": "down", "ends_at": time.time() + 3600, "message": MESSAGE, "reason": SECRET}
    await admin(client, "POST", "/overrides", with_message, 201)
    await admin(client, "POST", "/overrides", {"component": "database", "status": "partial", "reason": SECRET + "-2"}, 201)

    listed = (await admin(client, "GET", "/overrides", None, 200))["overrides"]
    assert [(o["message"], o["reason"]) for o in listed] == [(MESSAGE, SECRET), (None, SECRET + "-2")]  # administrators see both

    bodies = await public_bodies(client)
    assert {"/", "/api/services.json", "/api/v2/summary.json", "/api/v1/components", "/notices.atom", "/badge.svg"} <= set(bodies)
    leaks = [path for path, body in bodies.items() if "ticket-4711" in body]
    assert leaks == []
    services = {s["id"]: s for g in json.loads(bodies["/api/services.json"])["groups"] for s in g["services"]}
    assert services["website"]["override"]["message"] == MESSAGE
    assert services["database"]["override"] == {"status": "partial", "message": None, "ends_at": None}
    assert f"Shown: Down (override: {MESSAGE}, until " in bodies["/"]
    assert "Shown: Partial (set by an operator) – monitoring says Up" in bodies["/"]


@pytest.mark.parametrize("reason", ["Firewall work", "Rack 12 <move> & \"re-cabling\""])
async def test_upgrade_keeps_what_the_public_saw(aiohttp_client: Any, tmp_path: Path, reason: str) -> None:
    """An override stored by the previous release (reason only, which was public then) reads the same after the upgrade."""
    path = tmp_path / "old.sqlite"
    old = Database(sqlite3.connect(path))
    migrations.apply(old, stop_before="m003_override_message")
    old.conn.execute(
        "insert into overrides (component_id, status, starts_at, ends_at, reason, created_at) values (?, ?, ?, ?, ?, ?)",
        ("website", "maintenance", time.time() - 60, None, reason, time.time() - 60),
    )
    old.conn.commit()
    old.close()
    client = await aiohttp_client(app_on(path))  # opening the file migrates it
    feed = await (await client.get("/api/services.json")).json()
    assert feed["groups"][0]["services"][0]["override"] == {"status": "maintenance", "message": reason, "ends_at": None}
    page = await (await client.get("/")).text()
    escaped = reason.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;")
    assert f"Shown: Maintenance (override: {escaped}) – monitoring says Up" in page
    listed = (await admin(client, "GET", "/overrides", None, 200))["overrides"]
    assert [(o["message"], o["reason"]) for o in listed] == [(reason, reason)]
