"""The status page and widget in a real headless Chromium (Debian's chromium + chromium-driver, via Selenium)."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import aiohttp_jinja2
import pytest
from aiohttp import web

from bridge.keys import DB, LIVE, REFRESH
from bridge.storage import create_notice, create_override
from tests.conftest import REPO, require_binary, require_real
from tests.page_states import SCENARIOS
from tests.test_page import BANNERS, feed, new_app

pytestmark = pytest.mark.real
ARTIFACTS = REPO / "test-artifacts"
T = TypeVar("T")
LAUNCH_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run")


class Servers:
    """aiohttp apps served on 127.0.0.1 from one background event loop (the browser blocks the test thread)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runners: list[web.AppRunner] = []
        self.paths: list[str] = []  # every path+query requested, in order

    def call(self, fn: Callable[[], T]) -> T:
        """Run fn on the loop's thread (where the app lives) and return its result."""
        done: Future[T] = Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except Exception as e:  # handed back to the test thread
                done.set_exception(e)

        self.loop.call_soon_threadsafe(run)
        return done.result(10)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run coro on the loop (where the app lives) and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def serve(self, app: web.Application) -> str:
        """Start app on a free loopback port; returns its base URL."""

        async def record(request: web.Request, response: web.StreamResponse) -> None:
            self.paths.append(request.path_qs)

        app.on_response_prepare.append(record)

        async def start() -> str:
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.runners.append(runner)
            port = runner.addresses[0][1]
            return f"http://127.0.0.1:{port}"

        return asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)

    def close(self) -> None:
        """Stop every app and the loop."""
        for runner in self.runners:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Debian Chromium with a fresh profile; never downloads a browser or driver."""
    chromium, chromedriver = require_binary("chromium"), require_binary("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        require_real("selenium (pip install .[test])", False)
        raise
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for downloads
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (*LAUNCH_ARGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
                "--window-size=1280,1000"):
        options.add_argument(arg)
    drv = webdriver.Chrome(options=options, service=Service(chromedriver))
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


@pytest.fixture
def servers() -> Iterator[Servers]:
    """A fresh background loop for this test's servers."""
    s = Servers()
    yield s
    s.close()


def wait_for(drv: Any, script: str, timeout: float = 10.0) -> Any:
    """Poll a JavaScript expression until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = drv.execute_script("return " + script)
        if value or time.monotonic() > deadline:
            assert value, f"timed out waiting for: {script}"
            return value
        time.sleep(0.1)


def status_app(servers: Servers, state: str, tmp_path: Path) -> tuple[web.Application, str]:
    """The real app with data for `state`, served; returns (app, base URL)."""
    app = servers.call(lambda: new_app(tmp_path=tmp_path))  # built where it will run
    base = servers.serve(app)
    servers.call(lambda: feed(app, state))
    return app, base


def set_scheme(drv: Any, scheme: str) -> None:
    """Emulate prefers-color-scheme."""
    drv.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]})


# The page's light palette (page.css) and widget.js's colours, by page state.
STATE_RGB = {"operational": "rgb(26, 127, 55)", "minor": "rgb(154, 103, 0)", "major": "rgb(207, 34, 46)",
             "maintenance": "rgb(9, 105, 218)", "unknown": "rgb(89, 99, 110)"}


def widget_host(servers: Servers, base: str, mode: str = "jsonp") -> str:
    """Another origin serving a page that embeds base's widget into #status; returns its URL."""
    host = web.Application()
    html = ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Host</title></head><body>"
            "<h1>Another site</h1><div id=status></div>"
            f'<script src="{base}/widget.js" data-target="#status" data-mode="{mode}" async></script></body></html>')

    async def host_page(request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    host.router.add_get("/", host_page)
    host_base = servers.serve(host)
    assert host_base != base  # another origin (port)
    return host_base + "/"


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_page_and_widget_per_state(driver: Any, servers: Servers, tmp_path: Path, name: str) -> None:
    scenario = SCENARIOS[name]
    app = servers.call(lambda: new_app(tmp_path=tmp_path))
    base = servers.serve(app)
    servers.run(scenario.apply(app))
    driver.get(base + "/")
    assert driver.find_element("css selector", ".banner strong").text == scenario.headline
    assert driver.title == f"Test page: {scenario.headline}"
    colour = driver.execute_script("return getComputedStyle(document.querySelector('.banner')).backgroundColor")
    assert colour == STATE_RGB[scenario.state]
    driver.get(widget_host(servers, base))
    wait_for(driver, "document.querySelectorAll('#status li').length === 2")
    head = driver.find_element("css selector", "#status a > span")
    assert head.text.endswith(scenario.headline)
    assert head.value_of_css_property("color") in (STATE_RGB[scenario.state], STATE_RGB[scenario.state].replace(
        "rgb(", "rgba(").replace(")", ", 1)"))


def test_groups_expand_and_collapse(driver: Any, servers: Servers, tmp_path: Path) -> None:
    _app, base = status_app(servers, "partial", tmp_path)
    driver.get(base + "/")
    web_group, data_group = (driver.find_element("id", i) for i in ("g-web", "g-data"))
    assert web_group.get_property("open") and not data_group.get_property("open")  # the problem is open
    row = data_group.find_element("css selector", "li.c")
    assert not row.is_displayed()
    data_group.find_element("tag name", "summary").click()
    assert data_group.get_property("open") and row.is_displayed()
    assert "Database" in row.text and "Up" in row.text
    data_group.find_element("tag name", "summary").click()
    assert not data_group.get_property("open") and not row.is_displayed()


def test_auto_refresh_updates_in_place(driver: Any, servers: Servers, tmp_path: Path) -> None:
    app, base = status_app(servers, "up", tmp_path)
    aiohttp_jinja2.get_env(app).globals["refresh"] = 1  # seconds, instead of a minute
    driver.get(base + "/")
    driver.execute_script("window.__notReloaded = true")
    driver.find_element("css selector", "#g-data summary").click()  # the reader opens a healthy group
    servers.call(lambda: feed(app, "down"))
    wait_for(driver, f"document.querySelector('.banner strong').textContent === {BANNERS['down']!r}")
    assert driver.execute_script("return window.__notReloaded === true")  # swapped in place, not reloaded
    assert driver.find_element("id", "g-data").get_property("open")  # the reader's choice survived
    assert driver.title == f"Test page: {BANNERS['down']}"


@pytest.mark.parametrize("mode", ["jsonp", "cors"])
def test_widget_loads_cross_origin(driver: Any, servers: Servers, tmp_path: Path, mode: str) -> None:
    _app, base = status_app(servers, "partial", tmp_path)
    driver.get(widget_host(servers, base, mode))
    wait_for(driver, "document.querySelectorAll('#status li').length === 2")
    box = driver.find_element("id", "status")
    assert box.find_element("css selector", "a").text.endswith(BANNERS["partial"])
    assert box.find_element("css selector", "a").get_attribute("href") == base + "/"
    items = [li.text for li in box.find_elements("css selector", "li")]
    assert items[0].startswith("Web") and items[0].endswith("Down")
    assert items[1].startswith("Data") and items[1].endswith("Up")
    if mode == "jsonp":
        assert any(p.startswith("/api/services.json?callback=statusBridge_") for p in servers.paths)
    else:
        assert "/api/services.json" in servers.paths  # plain JSON, read cross-origin through CORS
    leftovers = driver.execute_script("return Object.keys(window).filter(k => k.startsWith('statusBridge'))")
    assert leftovers == []  # the callback removed itself
    assert driver.execute_script("return document.querySelectorAll('script[src*=callback]').length") == 0
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"widget-{mode}.png"))


def test_todays_bar_says_its_status_and_uptime(driver: Any, servers: Servers, tmp_path: Path) -> None:
    app, base = status_app(servers, "partial", tmp_path)  # the website has been down for ten minutes
    recorder = app[LIVE].recorder
    assert recorder is not None
    asyncio.run_coroutine_threadsafe(recorder.flush(), servers.loop).result(10)  # the history is written off the loop
    driver.get(base + "/")
    today = driver.find_elements("css selector", "#g-web .bars span")[-1]
    title = today.get_attribute("title")
    assert re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2} \(today, so far\): down for [^,]+, 0\.00% uptime.*", title), title
    assert today.get_attribute("class") == "s-down"
    assert today.accessible_name == title  # what a screen reader announces for the bar
    group = driver.find_element("css selector", "#g-web .bars")
    assert group.accessible_name.startswith("Last 90 days: 0.00% uptime (")


def test_stale_warning_is_shown(driver: Any, servers: Servers, tmp_path: Path) -> None:
    app = servers.call(lambda: new_app(tmp_path=tmp_path))
    base = servers.serve(app)
    servers.call(lambda: feed(app, "up", stale=True))
    driver.get(base + "/")
    alert = driver.find_element("css selector", "[role=alert]")
    assert alert.is_displayed() and alert.text.startswith("Warning: the status of these services is not known right now.")
    assert driver.find_element("css selector", ".banner strong").text == "Status unknown: monitoring data is stale"
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "status-page-stale.png"))


def test_screenshots_light_dark_and_phone(driver: Any, servers: Servers, tmp_path: Path) -> None:
    app, base = status_app(servers, "partial", tmp_path)

    def notices() -> None:
        now = time.time()
        create_notice(app[DB], type="unplanned", subject="Website unreachable", state="identified",
                      content="A failed load balancer; traffic is moving to the spare.", now=now - 900,
                      components=["website"])
        create_notice(app[DB], type="planned", subject="Database upgrade", state="scheduled",
                      content="PostgreSQL 16.", now=now - 900, begins_at=now + 86400, ends_at=now + 90000,
                      components=["database"])
        create_override(app[DB], component_id="database", status="partial", starts_at=now - 60, ends_at=None,
                        message="Replica rebuild", now=now)

    servers.call(notices)
    servers.run(app[REFRESH]())
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        set_scheme(driver, "light")
        driver.get(base + "/")
        assert "Shown: Partial (override: Replica rebuild)" in driver.page_source
        driver.save_screenshot(str(ARTIFACTS / "status-page.png"))

        set_scheme(driver, "dark")
        driver.get(base + "/")
        bg = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
        assert bg == "rgb(13, 17, 23)"
        fg = driver.execute_script("return getComputedStyle(document.querySelector('.banner')).color")
        assert fg == "rgb(13, 17, 23)"  # dark text on the bright status colour
        driver.save_screenshot(str(ARTIFACTS / "status-page-dark.png"))

        set_scheme(driver, "light")
        driver.set_window_size(320, 900)
        driver.get(base + "/")
        width = driver.execute_script("return document.documentElement.clientWidth")
        assert driver.execute_script("return document.documentElement.scrollWidth") <= width  # no sideways scroll
        main_bottom = driver.execute_script("return document.querySelector('main').getBoundingClientRect().bottom")
        aside_top = driver.execute_script("return document.querySelector('aside').getBoundingClientRect().top")
        assert aside_top >= main_bottom  # announcements stack below on a phone
        driver.save_screenshot(str(ARTIFACTS / "status-page-320.png"))
    finally:
        driver.set_window_size(1280, 1000)
        set_scheme(driver, "light")
    assert (ARTIFACTS / "status-page.png").stat().st_size > 10_000


def test_notice_page_and_404(driver: Any, servers: Servers, tmp_path: Path) -> None:
    app, base = status_app(servers, "up", tmp_path)

    def notice() -> None:
        create_notice(app[DB], type="unplanned", subject="Slow logins", state="investigating", content="Looking.",
                      now=time.time(), components=["website"])

    servers.call(notice)
    servers.run(app[REFRESH]())
    driver.get(base + "/")
    driver.find_element("link text", "Slow logins").click()
    assert driver.current_url == base + "/notices/1-slow-logins"
    assert driver.find_element("tag name", "h2").text == "Slow logins"
    driver.get(base + "/notices/42")
    assert driver.find_element("tag name", "h2").text == "Not found"
