"""The HTML status page, notice pages and widget: validity, accessibility, contrast, escaping, weight, caching."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from datetime import date
from html.parser import HTMLParser
from importlib import resources
from itertools import pairwise
from typing import Any

import html5lib
import pytest
from aiohttp import web

from bridge import views_html
from bridge.app import make_app
from bridge.config import CheckPattern, Component, Config, Group
from bridge.config_load import load_config
from bridge.demo.simulator import demo_objects
from bridge.demo.statusdat_writer import render_statusdat
from bridge.history import EFFECTIVE, Record, append_records
from bridge.keys import DB, LIVE, REFRESH
from bridge.model import SourceHealth
from bridge.render import html as page_html
from bridge.uptime_days import midnight
from bridge.settings import Settings
from bridge.statusdat import parse
from bridge.storage import add_update, create_notice, create_override
from tests.conftest import check, status_data, web_config

HOSTILE = "<script>alert('x')</script> & \"q\" <img src=x onerror=alert(1)>"
BANNERS = {"up": "Systems running smoothly", "partial": "Some problems reported", "down": "Major problems reported"}
PAGE_BUDGET = 30 * 1024  # bytes of the demo page


def feed(app: web.Application, state: str, now: float | None = None, stale: bool = False) -> None:
    """Publish monitoring data for web_config(): 'up' (all OK), 'partial' (web down) or 'down' (all down)."""
    now = time.time() if now is None else now
    web_state = 0 if state == "up" else 2
    db_state = 2 if state == "down" else 0
    changed = int(now) - 600
    data = status_data(check("web-1", "HTTP", web_state, last_state_change=changed),
                       check("db-1", "PostgreSQL", db_state, last_state_change=changed), created=now - 5)
    reason = "data older than 180 s" if stale else None
    app[LIVE].update(data, SourceHealth(stale=stale, reason=reason, data_created=now - 5))


def new_app(config: Config | None = None, tmp_path: Any = None) -> web.Application:
    """The real application without tailers, over a fresh SQLite file (or in memory)."""
    db = None if tmp_path is None else tmp_path / "db.sqlite"
    return make_app(Settings(config or web_config(), watch=False, db_path=db))


async def get_page(client: Any, path: str = "/", **headers: str) -> tuple[Any, str]:
    """GET a page; returns (response, text)."""
    resp = await client.get(path, headers=headers)
    return resp, await resp.text()


def strict_parse(text: str) -> Any:
    """Parse as HTML5 strictly: any parse error (bad nesting, stray end tag, bad doctype) raises."""
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(text)


class Outline(HTMLParser):
    """Collects what the accessibility checks need from the markup."""

    def __init__(self) -> None:
        super().__init__()
        self.lang: str | None = None
        self.headings: list[int] = []
        self.svgs: list[dict[str, str | None]] = []
        self.imgs: list[dict[str, str | None]] = []
        self.forms: list[str] = []
        self.scripts = 0
        self._status: list[str] | None = None
        self.status_texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Record headings, images, icons, form controls and status labels."""
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang")
        elif re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        elif tag == "svg":
            self.svgs.append(a)
        elif tag == "img":
            self.imgs.append(a)
        elif tag in ("form", "input", "select", "textarea", "button"):
            self.forms.append(tag)
        elif tag == "script":
            self.scripts += 1
        if tag == "span" and "st" in (a.get("class") or "").split():
            self._status = []

    def handle_endtag(self, tag: str) -> None:
        """Close a status label."""
        if tag == "span" and self._status is not None:
            self.status_texts.append("".join(self._status).strip())
            self._status = None

    def handle_data(self, data: str) -> None:
        """Text inside a status label."""
        if self._status is not None:
            self._status.append(data)


def outline(text: str) -> Outline:
    """The page's outline."""
    o = Outline()
    o.feed(text)
    return o


# --- contrast -----------------------------------------------------------------------------------------


def palettes() -> dict[str, dict[str, str]]:
    """The CSS custom properties of the light (:root) and dark (prefers-color-scheme) palettes."""
    css = resources.files("bridge").joinpath("templates/page.css").read_text("utf-8")
    light = re.search(r":root\{([^}]*)\}", css)
    dark = re.search(r"prefers-color-scheme:\s*dark\)\s*\{\s*:root\{([^}]*)\}", css)
    assert light and dark
    return {name: dict(re.findall(r"--([a-z]+):\s*(#[0-9a-fA-F]{6})", m.group(1))) for name, m in
            (("light", light), ("dark", dark))}


def luminance(hex_colour: str) -> float:
    """WCAG relative luminance of #rrggbb."""
    channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_status_colours_meet_wcag_aa(scheme: str) -> None:
    p = palettes()[scheme]
    statuses = ("up", "partial", "down", "maintenance", "nodata")
    for text in ("fg", "muted", "link", *statuses):
        for background in ("bg", "card"):
            assert contrast(p[text], p[background]) >= 4.5, (scheme, text, background)
    for s in statuses:
        # The banner: --on text over the status colour.
        assert contrast(p["on"], p[s]) >= 4.5, (scheme, "banner", s)


def test_palettes_define_the_same_properties() -> None:
    p = palettes()
    assert set(p["light"]) == set(p["dark"])


# --- the page -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["up", "partial", "down"])
async def test_banner_and_groups(aiohttp_client: Any, state: str) -> None:
    app = new_app()
    client = await aiohttp_client(app)
    feed(app, state)
    resp, text = await get_page(client)
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert f"<strong>{BANNERS[state]}</strong>" in text
    assert f'class="banner s-{state}"' in text
    assert f"<title>Test page: {BANNERS[state]}</title>" in text
    # Groups with a problem are open by default, healthy ones closed.
    web_open = '<details id="g-web" open>' in text
    data_open = '<details id="g-data" open>' in text
    assert (web_open, data_open) == {"up": (False, False), "partial": (True, False), "down": (True, True)}[state]
    assert 'class="alert" role="alert"' not in text  # fresh data: no stale warning
    assert '<noscript><meta http-equiv="refresh" content="60"></noscript>' in text  # refreshes without JS too


async def test_page_is_valid_html5_and_accessible(aiohttp_client: Any, tmp_path: Any) -> None:
    app = new_app(tmp_path=tmp_path)
    client = await aiohttp_client(app)
    now = time.time()
    feed(app, "partial", now)
    create_notice(app[DB], type="unplanned", subject="Web outage", state="investigating", content="Looking.",
                  now=now - 60, components=["website"])
    create_notice(app[DB], type="planned", subject="DB upgrade", state="scheduled", content="New version.",
                  now=now - 60, begins_at=now + 3600, ends_at=now + 7200, components=["database"])
    await app[REFRESH]()
    for path in ("/", "/notices/1", "/notices/2-db-upgrade", "/notices/99"):
        text = (await get_page(client, path))[1]
        strict_parse(text)  # raises on any parse error
        o = outline(text)
        assert o.lang == "en", path
        assert o.headings[0] == 1 and o.headings.count(1) == 1, path
        # Never skip a level going down (h2 -> h4).
        assert all(b <= a + 1 for a, b in pairwise(o.headings)), (path, o.headings)
        assert all(s.get("aria-hidden") == "true" for s in o.svgs), path  # icons are decoration beside text
        assert all(i.get("alt") is not None for i in o.imgs), path
        assert o.forms == [], path
        assert o.scripts == 1, path
        assert all(o.status_texts), path  # every status has words, never colour or icon alone
    text = (await get_page(client, "/"))[1]
    assert set(outline(text).status_texts) == {"Up", "Down"}
    assert 'aria-label="Last 90 days:' in text  # the bars say in words what they show


async def test_escapes_hostile_names_and_notices(aiohttp_client: Any, tmp_path: Any) -> None:
    comp = Component(id="evil", name=HOSTILE, group_id="g", description=HOSTILE, checks=(CheckPattern("web-1", "HTTP*"),))
    config = web_config(groups=(Group(id="g", name=HOSTILE, description=HOSTILE, components=(comp,)),), page_name=HOSTILE)
    app = new_app(config, tmp_path)
    client = await aiohttp_client(app)
    now = time.time()
    feed(app, "up", now)
    create_notice(app[DB], type="unplanned", subject=HOSTILE, state="investigating", content=HOSTILE, now=now,
                  components=["evil"])
    create_override(app[DB], component_id="evil", status="down", starts_at=now - 1, ends_at=None, message=HOSTILE, now=now)
    await app[REFRESH]()
    for path in ("/", "/notices/1"):
        text = (await get_page(client, path))[1]
        assert "<script>alert" not in text and "<img" not in text, path
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;q&#34;" in text, path
        assert outline(text).scripts == 1, path
        strict_parse(text)


async def test_demo_page_weight(aiohttp_client: Any, tmp_path: Any) -> None:
    config = load_config(resources.files("bridge").joinpath("demo/demo.toml"))  # type: ignore[arg-type]
    app = new_app(config, tmp_path)
    client = await aiohttp_client(app)
    now = int(time.time())
    data = parse(render_statusdat(demo_objects(now), now))
    app[LIVE].update(data, SourceHealth(stale=False, data_created=data.created))
    create_notice(app[DB], type="unplanned", subject="Slow logins", state="identified", content="A busy LDAP server.",
                  now=now - 600, components=["sso"])
    await app[REFRESH]()
    resp = await client.get("/")
    body = await resp.read()
    assert len(body) < PAGE_BUDGET, len(body)
    assert body.count(b'class="c"') == 9  # every demo component is on the page


async def test_etag_304_and_cache_headers(aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    app = new_app()
    client = await aiohttp_client(app)
    feed(app, "up")
    renders = []
    real = page_html.render_page
    monkeypatch.setattr(page_html, "render_page", lambda *a, **k: renders.append(1) or real(*a, **k))
    first = await client.get("/")
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "public, max-age=60"
    assert first.headers["Access-Control-Allow-Origin"] == "*"
    assert "script-src 'sha256-" in first.headers["Content-Security-Policy"]
    again = await client.get("/", headers={"If-None-Match": etag})
    assert again.status == 304 and await again.read() == b""
    assert len(renders) == 1  # pre-rendered once per snapshot generation, then served as bytes
    feed(app, "down")
    changed = await client.get("/", headers={"If-None-Match": etag})
    assert changed.status == 200 and changed.headers["ETag"] != etag
    assert len(renders) == 2


async def test_history_is_read_once_per_render_and_off_the_loop(aiohttp_client: Any, tmp_path: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    app = new_app(tmp_path=tmp_path)
    client = await aiohttp_client(app)
    feed(app, "up")
    reads: list[int] = []
    real = views_html.read_histories
    monkeypatch.setattr(views_html, "read_histories", lambda *a: reads.append(threading.get_ident()) or real(*a))
    pages = await asyncio.gather(*(client.get("/") for _ in range(5)))
    assert [p.status for p in pages] == [200] * 5
    assert len({p.headers["ETag"] for p in pages}) == 1
    # The readers that arrived during the read waited for that render instead of reading again.
    assert len(reads) == 1 and reads[0] != threading.get_ident()


async def test_stale_data_is_never_shown_as_current(aiohttp_client: Any) -> None:
    app = new_app()
    client = await aiohttp_client(app)
    feed(app, "up", stale=True)
    text = (await get_page(client))[1]
    assert 'class="alert" role="alert"' in text and "Warning: the status of these services is not known" in text
    assert "data older than 180 s" in text
    assert "<strong>Status unknown: monitoring data is stale</strong>Last known: Systems running smoothly\n" in text
    assert "<strong>Systems running smoothly</strong>" not in text
    assert 'class="banner s-nodata"' in text
    assert "Last known status: the monitoring data for this is stale." in text
    assert "Up (last known)</span>" in text
    assert "Test page: Status unknown: monitoring data is stale</title>" in text


async def test_no_data_yet(aiohttp_client: Any) -> None:
    client = await aiohttp_client(new_app())
    text = (await get_page(client))[1]
    assert "<strong>Status unknown: no monitoring data yet</strong>" in text and "Last updated never" in text
    assert 'class="banner s-nodata" data-state="unknown"' in text
    assert "No monitoring data has been received yet" in text


async def test_last_updated_is_the_data_time(aiohttp_client: Any) -> None:
    app = new_app()
    client = await aiohttp_client(app)
    now = time.time()
    feed(app, "up", now - 7200 + 5)  # the data was written two hours ago
    text = (await get_page(client))[1]
    assert f"Last updated <time datetime=\"{page_html.iso_utc(now - 7200)}\"" in text
    assert ">2 hours ago</time> (" + page_html.utc_text(now - 7200) + ")" in text


async def test_override_and_maintenance_show_the_monitored_state(aiohttp_client: Any, tmp_path: Any) -> None:
    app = new_app(tmp_path=tmp_path)
    client = await aiohttp_client(app)
    now = time.time()
    feed(app, "up", now)
    create_override(app[DB], component_id="website", status="down", starts_at=now - 10, ends_at=None,
                    message="Firewall work", reason="Ticket 4711", now=now)
    create_notice(app[DB], type="planned", subject="DB upgrade", state="underway", content="Started.", now=now - 60,
                  began_at=now - 60, begins_at=now - 60, ends_at=now + 3600, components=["database"])
    await app[REFRESH]()
    text = (await get_page(client))[1]
    assert "Shown: Down (override: Firewall work) – monitoring says Up" in text and "Ticket 4711" not in text
    assert ('Shown: Maintenance (maintenance: <a href="/notices/1-db-upgrade">DB upgrade</a>) – monitoring says Up'
            in text)
    assert "<h3>Maintenance underway</h3>" in text
    assert '<details id="g-web" open>' in text and '<details id="g-data" open>' in text


async def test_notice_page_timeline(aiohttp_client: Any, tmp_path: Any) -> None:
    app = new_app(tmp_path=tmp_path)
    client = await aiohttp_client(app)
    now = time.time()
    n = create_notice(app[DB], type="unplanned", subject="Mail delays", state="investigating", content="Looking.",
                      now=now - 3600, components=["website", "data"])
    add_update(app[DB], n.id, state="resolved", content="A full disk.\nCleaned up.", now=now - 60)
    await app[REFRESH]()
    for path in (f"/notices/{n.id}", f"/notices/{n.id}-mail-delays", f"/notices/{n.id}-an-old-slug"):
        resp, text = await get_page(client, path)
        assert resp.status == 200 and "ETag" in resp.headers, path
        assert "<h2>Mail delays</h2>" in text and "<strong>Incident</strong> · Resolved" in text
        assert "Affects: Website, Data" in text
        assert text.index("A full disk.") < text.index("Looking.")  # newest update first
        assert f'<link rel="canonical" href="/notices/{n.id}-mail-delays">' in text
    home = (await get_page(client))[1]
    assert "Mail delays" not in home  # resolved: not a current announcement


@pytest.mark.parametrize("path", ["/notices/99", "/notices/abc", "/notices/99-x", "/notices/1234567890123456789012"])
async def test_unknown_notice_is_an_html_404_or_json(aiohttp_client: Any, path: str) -> None:
    client = await aiohttp_client(new_app())
    resp, text = await get_page(client, path)
    assert resp.status == 404 and resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<h2>Not found</h2>" in text
    strict_parse(text)
    resp = await client.get(path, headers={"Accept": "application/json"})
    assert resp.status == 404
    body = await resp.json()
    assert body["error"]["status"] == 404 and body["error"]["field"] == "id"


async def test_announcements_sections(aiohttp_client: Any, tmp_path: Any) -> None:
    app = new_app(tmp_path=tmp_path)
    client = await aiohttp_client(app)
    text = (await get_page(client))[1]
    assert "No current incidents or planned maintenance." in text
    now = time.time()
    create_notice(app[DB], type="planned", subject="Later", state="scheduled", content="", now=now,
                  begins_at=now + 7200, ends_at=now + 9000)
    create_notice(app[DB], type="planned", subject="Sooner", state="scheduled", content="", now=now,
                  begins_at=now + 3600, ends_at=now + 5400)
    create_notice(app[DB], type="unplanned", subject="Outage", state="identified", content="Cause found.", now=now)
    await app[REFRESH]()
    text = (await get_page(client))[1]
    assert text.index("Current incidents") < text.index("Outage") < text.index("Upcoming maintenance")
    assert text.index("Sooner") < text.index("Later")
    assert '<a href="/notices/3-outage">Outage</a>' in text


BAR = re.compile(r'<span class="s-([a-z]+)" role="img" style="flex-grow:([0-9]+)" title="([^"]*)"></span>')
NOON = midnight(date(2026, 12, 2)) + 12 * 3600  # the stopped clock: 12:00 UTC, half of today so far
MIDNIGHT = NOON - 12 * 3600
# Per history: the runs of the website's bars (colour, days, title) from the newest back, and the uptime line.
HISTORIES = {
    "two minutes": ([(NOON - 120, "up")],
                    [("up", 1, "2026-12-02 (today, so far): up, 100.00% uptime (2 min of data)"),
                     ("nodata", 89, "2026-09-04 to 2026-12-01 (89 days), each: no data")],
                    "100.00% uptime (2 min of data)"),
    "degraded today": ([(MIDNIGHT - 100 * 86400, "up"), (MIDNIGHT + 3600, "partial"), (MIDNIGHT + 4320, "up")],
                       [("partial", 1, "2026-12-02 (today, so far): degraded for 12 min (not downtime), 100.00% uptime"),
                        ("up", 89, "2026-09-04 to 2026-12-01 (89 days), each: up, 100.00% uptime")],
                       "100.00% uptime"),
    "a day down in ten": ([(MIDNIGHT - 10 * 86400, "up"), (MIDNIGHT - 3 * 86400, "down"),
                           (MIDNIGHT - 2 * 86400, "up")],
                          [("up", 1, "2026-12-02 (today, so far): up, 100.00% uptime"),
                           ("up", 2, "2026-11-30 to 2026-12-01 (2 days), each: up, 100.00% uptime"),
                           ("down", 1, "2026-11-29: down for 1 day, 0.00% uptime"),
                           ("up", 7, "2026-11-22 to 2026-11-28 (7 days), each: up, 100.00% uptime"),
                           ("nodata", 79, "2026-09-04 to 2026-11-21 (79 days), each: no data")],
                          # One day down in the 10.5 days monitored; the 79 days before are not counted as up.
                          "90.47% uptime (10 days 12 h of data)"),
}


@pytest.mark.parametrize("case", HISTORIES)
async def test_uptime_bars_come_from_the_history(aiohttp_client: Any, tmp_path: Any, case: str) -> None:
    rows, newest_first, line = HISTORIES[case]
    app = make_app(Settings(web_config(), watch=False, db_path=tmp_path / "db.sqlite"), clock=lambda: NOON)
    client = await aiohttp_client(app)
    append_records(app[DB], [Record("website", EFFECTIVE, s, at) for at, s in rows])
    feed(app, "up", NOON)
    await app[LIVE].recorder.flush()
    text = (await get_page(client))[1]
    website = text[text.index(">Website<"):text.index("</li>", text.index(">Website<"))]
    assert [(c, int(n), t) for c, n, t in BAR.findall(website)][::-1] == newest_first
    assert f'<div class="bars" role="group" aria-label="Last 90 days: {line}">' in website
    assert f"<span>{line}</span>" in website
    # The Sorry metrics of the same 90 days give the same number as the page.
    body = await (await client.get("/api/v1/components/website/metrics?timeframe_start=2026-09-04")).json()
    assert line.startswith(body["percentage_uptime"]["words"] + " uptime")


def test_relative_time() -> None:
    assert page_html.relative(1000.0, 1010.0) == "just now"
    assert page_html.relative(1000.0, 1000.0 + 61) == "1 minute ago"
    assert page_html.relative(1000.0, 1000.0 + 7300) == "2 hours ago"
    assert page_html.relative(1000.0 + 3 * 86400 + 5, 1000.0) == "in 3 days"
    assert page_html.relative(None, 1.0) == "never"


async def test_widget_js_is_served_and_builds_dom_safely(aiohttp_client: Any) -> None:
    client = await aiohttp_client(new_app())
    resp = await client.get("/widget.js")
    body = await resp.text()
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/javascript; charset=utf-8"
    assert resp.headers["Access-Control-Allow-Origin"] == "*" and "ETag" in resp.headers
    assert (await client.get("/widget.js", headers={"If-None-Match": resp.headers["ETag"]})).status == 304
    assert "innerHTML" not in body and "jQuery" not in body and "document.write" not in body
    assert "textContent" in body and "api/services.json?callback=" in body
    assert "delete window[name]" in body  # the JSONP callback does not outlive its answer


async def test_since_comes_from_the_monitoring_data(aiohttp_client: Any, tmp_path: Any) -> None:
    app = new_app(tmp_path=tmp_path)
    client = await aiohttp_client(app)
    now = time.time()
    feed(app, "partial", now)  # the website went down 600 s before now, says Nagios
    await app[LIVE].recorder.flush()  # the history is written off the loop
    text = (await get_page(client))[1]
    assert f"Since <time datetime=\"{page_html.iso_utc(int(now) - 600)}\"" in text
    assert ">10 minutes ago</time>" in text  # not "just now": this daemon only saw it now
