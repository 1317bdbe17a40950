"""The Atom feed of notices and the SVG badges: well-formed XML, escaping, content, per-component, headers."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from bridge.app import make_app
from bridge.config import Config
from bridge.keys import DB, LIVE, REFRESH
from bridge.model import ComponentView, GroupView, Snapshot, SourceHealth, Status
from bridge.notices import Notice, NoticeUpdate
from bridge.render import atom, badge
from bridge.settings import Settings
from bridge.storage import add_update, create_notice
from bridge.views_page import BADGE_MAX_AGE
from tests.conftest import check, snapshot_of, status_data, web_config

A = "{http://www.w3.org/2005/Atom}"
S = "{http://www.w3.org/2000/svg}"
FRESH = SourceHealth(stale=False, data_created=1_700_000_000.0)
HOSTILE = "<script>alert('x')</script> ]]> & \"quoted\" <![CDATA[ x ]]>"


async def start(aiohttp_client: Any, tmp_path: Any, config: Config | None = None) -> tuple[Any, Any]:
    """A real server over a fresh SQLite file; returns (client, app)."""
    app = make_app(Settings(config or web_config(), watch=False, db_path=tmp_path / "db.sqlite"))
    return await aiohttp_client(app), app


def empty_snapshot(notices: tuple[Notice, ...] = (), page_url: str = "https://status.example.org") -> Snapshot:
    """A snapshot with one up component and the given notices."""
    comp = ComponentView("c", "C", "g", "", Status.UP, Status.UP, 1, since=1_700_000_000.0)
    return snapshot_of((GroupView("g", "G", "", Status.UP, (comp,)),), notices, page_url=page_url)


def entries(body: bytes) -> list[ET.Element]:
    """Parse an Atom document strictly and return its entries."""
    root = ET.fromstring(body)
    assert root.tag == f"{A}feed"
    return root.findall(f"{A}entry")


# --- Atom --------------------------------------------------------------------------------------------


async def test_atom_entries_and_updates(aiohttp_client, tmp_path) -> None:
    client, app = await start(aiohttp_client, tmp_path)
    now = time.time()
    db = app[DB]
    old = create_notice(db, type="unplanned", subject="DB slow", state="investigating", content="Looking.",
                        now=now - 7200)
    add_update(db, old.id, state="identified", content="Disk full.", now=now - 3600)
    add_update(db, old.id, state="resolved", content="Cleaned up.", now=now - 60)
    maint = create_notice(db, type="planned", subject="Upgrade", state="scheduled", content="Kernel update.",
                          now=now - 1800, begins_at=now + 3600, ends_at=now + 7200)
    await app[REFRESH]()
    resp = await client.get("/notices.atom")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    body = await resp.read()
    root = ET.fromstring(body)
    assert root.findtext(f"{A}title") == "Test page: incidents and maintenance"
    assert root.findtext(f"{A}author/{A}name") == "Test page"
    assert root.findtext(f"{A}id").startswith("tag:status.example.org,")
    self_link = [el.get("href") for el in root.findall(f"{A}link") if el.get("rel") == "self"]
    assert self_link == ["https://status.example.org/notices.atom"]
    got = entries(body)
    # Newest first: the resolved incident was updated a minute ago, the maintenance half an hour ago.
    assert [e.findtext(f"{A}title") for e in got] == ["DB slow (Resolved)", "Upgrade (Scheduled)"]
    first, second = got
    assert first.findtext(f"{A}id") == f"tag:status.example.org,{atom._day(now - 7200)}:notices/{old.id}"
    assert first.findtext(f"{A}updated") == atom.iso_utc(now - 60)
    assert root.findtext(f"{A}updated") == first.findtext(f"{A}updated")
    # The notice page's canonical address (with the slug), as the Sorry and Statuspage feeds link it.
    assert first.find(f"{A}link").get("href") == f"https://status.example.org/notices/{old.id}-db-slow"
    assert first.find(f"{A}category").get("term") == "incident"
    content = first.find(f"{A}content")
    assert content.get("type") == "html"
    text = content.text or ""
    positions = [text.index(s) for s in ("Cleaned up.", "Disk full.", "Looking.")]
    assert positions == sorted(positions)  # updates listed newest first
    assert "<strong>Resolved</strong>" in text and "<strong>Investigating</strong>" in text
    assert second.find(f"{A}category").get("term") == "maintenance"
    assert second.find(f"{A}link").get("href") == f"https://status.example.org/notices/{maint.id}-upgrade"
    assert "Scheduled: " in (second.findtext(f"{A}content") or "")


async def test_atom_escapes_hostile_text(aiohttp_client, tmp_path) -> None:
    client, app = await start(aiohttp_client, tmp_path)
    n = create_notice(app[DB], type="unplanned", subject=HOSTILE, state="investigating", content=HOSTILE,
                      now=time.time())
    await app[REFRESH]()
    body = await (await client.get("/notices.atom")).read()
    assert b"<script" not in body and b"<![CDATA[" not in body
    (entry,) = entries(body)
    assert entry.findtext(f"{A}title") == f"{HOSTILE} (Investigating)"
    # The html content is escaped once more: a reader shows the text, it never runs it.
    assert "&lt;script&gt;" in (entry.findtext(f"{A}content") or "")
    assert entry.find(f"{A}link").get("href").endswith(f"/notices/{n.id}-script-alert-x-script-quoted-cdata-x")


def test_atom_drops_characters_xml_cannot_carry() -> None:
    update = NoticeUpdate(1, 1, "investigating", "bell\x07 nul\x00 esc\x1b lone\ud800 ok\t\n", 1_700_000_000.0,
                          1_700_000_000.0)
    n = Notice(1, "unplanned", "investigating", "ctl\x01\x0b\x0c <b>", "ctl", 1_700_000_000.0, None, None, None,
               1_700_000_000.0, 1_700_000_000.0, (), (update,))
    body = atom.atom_feed(empty_snapshot((n,)))
    (entry,) = entries(body)
    assert entry.findtext(f"{A}title") == "ctl\ufffd\ufffd\ufffd <b> (Investigating)"
    assert "ok\t\n" in (entry.findtext(f"{A}content") or "")


@pytest.mark.parametrize("page_url, authority", [("", "status-bridge.invalid"), ("http://[::1]:8080/", "::1"),
                                                  ("https://Status.Example.ORG/x/", "status.example.org")])
def test_atom_without_notices_and_odd_urls(page_url: str, authority: str) -> None:
    body = atom.atom_feed(empty_snapshot(page_url=page_url))
    root = ET.fromstring(body)
    assert entries(body) == []
    assert root.findtext(f"{A}id") == f"tag:{authority},{atom.FEED_TAG_DATE}:notices"
    assert root.findtext(f"{A}updated") == "2023-11-14T22:13:20Z"  # earliest known change, not the build time


def test_atom_limit_keeps_most_recently_updated() -> None:
    ns = tuple(Notice(i, "unplanned", "resolved", f"N{i}", "n", 1.0, 2.0, None, None, 1.0, 1_700_000_000.0 + i)
               for i in range(60))
    got = entries(atom.atom_feed(empty_snapshot(ns)))
    assert [e.findtext(f"{A}title") for e in got] == [f"N{i} (Resolved)" for i in range(59, 9, -1)]


async def test_atom_headers_and_etag(aiohttp_client, tmp_path) -> None:
    client, app = await start(aiohttp_client, tmp_path, web_config(cache_seconds=42))
    resp = await client.get("/notices.atom")
    assert resp.headers["Cache-Control"] == "public, max-age=42"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    etag = resp.headers["ETag"]
    again = await client.get("/notices.atom", headers={"If-None-Match": etag})
    assert again.status == 304 and again.headers["ETag"] == etag
    # Rebuilding with unchanged notices keeps the bytes (and so the ETag) the same.
    app[LIVE].update(status_data(check("web-1", "HTTP", 2)), FRESH)
    assert (await client.get("/notices.atom")).headers["ETag"] == etag
    create_notice(app[DB], type="unplanned", subject="New", state="investigating", content="x", now=time.time())
    await app[REFRESH]()
    assert (await client.get("/notices.atom", headers={"If-None-Match": etag})).status == 200


# --- badges ------------------------------------------------------------------------------------------


def svg_parts(body: bytes) -> tuple[ET.Element, str, list[str]]:
    """(root, title, texts) of a badge, asserting the accessibility attributes."""
    root = ET.fromstring(body)
    assert root.tag == f"{S}svg" and root.get("role") == "img"
    title = root.findtext(f"{S}title") or ""
    assert root.get("aria-label") == title and root[0].tag == f"{S}title"
    return root, title, [t.text or "" for t in root.iter(f"{S}text")]


@pytest.mark.parametrize("statuses, message, colour", [
    ((0, 0), "operational", badge.GREEN),
    ((1, 0), "degraded", badge.GOLD),
    ((2, 0), "partial outage", badge.ORANGE),
    ((2, 2), "major outage", badge.RED),
])
async def test_page_badge(aiohttp_client, tmp_path, statuses: tuple[int, int], message: str, colour: str) -> None:
    client, app = await start(aiohttp_client, tmp_path)
    app[LIVE].update(status_data(check("web-1", "HTTP", statuses[0]), check("db-1", "PostgreSQL", statuses[1])),
                     FRESH)
    resp = await client.get("/badge.svg")
    assert resp.status == 200 and resp.headers["Content-Type"] == "image/svg+xml; charset=utf-8"
    root, title, texts = svg_parts(await resp.read())
    assert title == f"status: {message}" and texts == ["status", message]
    assert colour in [r.get("fill") for r in root.iter(f"{S}rect")]


async def test_component_and_group_badges(aiohttp_client, tmp_path) -> None:
    client, app = await start(aiohttp_client, tmp_path)
    app[LIVE].update(status_data(check("web-1", "HTTP", 2), check("db-1", "PostgreSQL", 0)), FRESH)
    for item, title in (("website", "Website: down"), ("database", "Database: up"), ("web", "Web: down")):
        resp = await client.get(f"/badge.svg?component={item}")
        assert resp.status == 200
        assert svg_parts(await resp.read())[1] == title
    app[LIVE].update(status_data(check("web-1", "HTTP", 0), check("db-1", "PostgreSQL", 0)),
                     SourceHealth(stale=True, reason="old", data_created=1_700_000_000.0))
    _, title, _ = svg_parts(await (await client.get("/badge.svg?component=website")).read())
    assert title == "Website: up (stale)"  # said in words, not only greyed
    _, title, _ = svg_parts(await (await client.get("/badge.svg")).read())
    assert title == "status: unknown"  # every component stale: the page state is unknown


@pytest.mark.parametrize("query, status", [("component=nosuch", 404), ("component=", 404),
                                           ("component=web&component=data", 400)])
async def test_badge_bad_component(aiohttp_client, tmp_path, query: str, status: int) -> None:
    client, _ = await start(aiohttp_client, tmp_path)
    resp = await client.get(f"/badge.svg?{query}")
    assert resp.status == status and resp.headers["Access-Control-Allow-Origin"] == "*"
    error = (await resp.json())["error"]
    assert error["status"] == status and error["field"] == "component" and error["message"]


async def test_badge_headers_and_etag(aiohttp_client, tmp_path) -> None:
    client, app = await start(aiohttp_client, tmp_path, web_config(cache_seconds=600))
    resp = await client.get("/badge.svg?component=website")
    assert resp.headers["Cache-Control"] == f"public, max-age={BADGE_MAX_AGE}"
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    etag = resp.headers["ETag"]
    again = await client.get("/badge.svg?component=website", headers={"If-None-Match": etag})
    assert again.status == 304 and again.headers["ETag"] == etag
    assert (await client.get("/badge.svg")).headers["ETag"] != etag
    app[LIVE].update(status_data(check("web-1", "HTTP", 2)), FRESH)
    changed = await client.get("/badge.svg?component=website", headers={"If-None-Match": etag})
    assert changed.status == 200 and svg_parts(await changed.read())[1] == "Website: down"


def test_badge_escapes_text_and_sizes_boxes() -> None:
    body = badge.render(HOSTILE + "\x01", "a&b", badge.RED)
    assert b"<script" not in body
    root, title, texts = svg_parts(body)
    assert texts == [HOSTILE + "\ufffd", "a&b"] and title == f"{HOSTILE}\ufffd: a&b"
    width = int(root.get("width") or 0)
    assert width > badge.text_width(HOSTILE) + badge.text_width("a&b")
    short = svg_parts(badge.render("status", "up", badge.GREEN))[0]
    assert int(short.get("width") or 0) < width
