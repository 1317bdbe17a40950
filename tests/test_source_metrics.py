"""/metrics per monitoring source, the Icinga 2 stream families and build info, read from the real app over HTTP;
the exposition and the shipped alert rules checked by the real promtool."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import platform
import re
import subprocess
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

import bridge.live
from bridge.app import make_app
from bridge.config import Config
from bridge.icinga_parse import EVENT_LABELS
from bridge.keys import LIVE
from bridge.merge import SourceView
from bridge.model import SourceHealth, StatusData
from bridge.settings import Settings
from bridge.views_passive import PASSIVE
from tests.conftest import REPO, Samples, by_source, check, metric_samples, require_binary, status_data, web_config
from tests.test_icinga import (  # noqa: F401 (fake: the fixture, used by name)
    CONNECTED,
    PASSWORD,
    RECONNECTS,
    T_HTTP,
    FakeIcinga,
    fake,
    http_result,
    scrape,
)
from tests.test_reliability_input import nagios_statusdat, write_atomic

RULES = REPO / "contrib" / "prometheus" / "status-bridge.rules.yml"
WAIT = 10.0  # every wait below is bounded by this many seconds
PER_SOURCE = ("status_bridge_source_age_seconds", "status_bridge_source_stale", "status_bridge_source_updates_total")
STATUSDAT_ONLY = ("status_bridge_statusdat_age_seconds", "status_bridge_parse_duration_seconds",
                  "status_bridge_last_parse_error_timestamp_seconds", "status_bridge_parses_total",
                  "status_bridge_parse_errors_total")  # fmt: skip
ICINGA_ONLY = ("status_bridge_icinga_connected", "status_bridge_icinga_reconnects_total", "status_bridge_icinga_events_total")


class Clock:
    """The app's clock, fixed at a whole second near the real time (the tailer ages status.dat by the real one)."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


def names(samples: Samples) -> set[str]:
    """The sample names present."""
    return {n for n, _ in samples}


async def until(client: Any, pred: Callable[[Samples], bool], what: str) -> Samples:
    """Scrape until pred(samples) holds; fail after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while True:
        samples = await scrape(client)
        if pred(samples):
            return samples
        if time.monotonic() > deadline:
            pytest.fail(f"/metrics never showed {what}: {sorted(s for s in samples if s[0].startswith('status_bridge_'))}")
        await asyncio.sleep(0.05)


async def push(client: Any, results: list[dict[str, Any]]) -> None:
    """Push results with the test token and publish them at once (the publisher task would, after its gap)."""
    resp = await client.post("/api/v1/check-results", json={"results": results}, headers={"Authorization": "Bearer t"})
    assert resp.status == 200, await resp.text()
    await client.server.app[PASSIVE].publish()


def sources_config(tmp_path: Path, sources: set[str], icinga_url: str) -> Config:
    """web_config with the given sources: status.dat in tmp_path, Icinga 2 at icinga_url, pushes."""
    kw: dict[str, Any] = {}
    if "statusdat" in sources:
        kw["statusdat_path"] = tmp_path / "status.dat"
    if "icinga" in sources:
        (tmp_path / "pw").write_text(PASSWORD + "\n")
        kw.update(icinga_url=icinga_url, icinga_user="bridge", icinga_password_file=tmp_path / "pw")
    return web_config(rate_limit=0.0, passive_enabled="passive" in sources, **kw)


async def start(aiohttp_client: Any, tmp_path: Path, sources: set[str], icinga_url: str = "") -> tuple[Any, Clock]:
    """The real app with those sources running and their first data published: status.dat 42 s old, a push 100 s."""
    clock = Clock()
    if "statusdat" in sources:
        write_atomic(tmp_path / "status.dat", nagios_statusdat(clock.now - 42))
    config = sources_config(tmp_path, sources, icinga_url)
    client = await aiohttp_client(make_app(Settings(config, push_tokens=("t",)), clock))  # start-up waits for the first loads
    if "passive" in sources:
        await push(client, [{"host": "db-1", "service": "PostgreSQL", "state": 0, "timestamp": clock.now - 100}])
    return client, clock


# One row per source alone: its age (the clock is fixed), whether it has a read to time, which families only it has.
@pytest.mark.parametrize(
    ("source", "age", "parses", "own_families"),
    [
        ("statusdat", 42.0, True, STATUSDAT_ONLY),
        ("icinga", 0.0, True, ICINGA_ONLY),  # Icinga's data is as of the moment it was synced
        ("passive", 100.0, False, ()),
    ],
)
async def test_each_source_reports_under_its_own_label_and_no_other_sources_families(
    source: str, age: float, parses: bool, own_families: tuple[str, ...], fake: tuple[FakeIcinga, str],
    aiohttp_client: Any, tmp_path: Path,
) -> None:  # fmt: skip
    client, _ = await start(aiohttp_client, tmp_path, {source}, fake[1])
    samples = await scrape(client)
    assert by_source(samples, "status_bridge_source_age_seconds") == {source: age}
    assert by_source(samples, "status_bridge_source_stale") == {source: 0.0}
    assert by_source(samples, "status_bridge_source_updates_total") == {source: 1.0}
    parse_seconds = by_source(samples, "status_bridge_source_parse_duration_seconds")
    assert list(parse_seconds) == ([source] if parses else []) and all(v > 0 for v in parse_seconds.values())
    prepare = by_source(samples, "status_bridge_source_prepare_duration_seconds")
    assert list(prepare) == [source] and prepare[source] > 0
    # status.dat's and Icinga's own families exist only while that source runs: never another source's figures.
    present = names(samples)
    for family in (*STATUSDAT_ONLY, *ICINGA_ONLY):
        assert (family in present) == (family in own_families), family
    if source == "statusdat":
        assert samples[("status_bridge_statusdat_age_seconds", ())] == 42.0
        assert samples[("status_bridge_parses_total", ())] == 1.0
    build = {dict(labels)["version"]: dict(labels)["python"] for (n, labels), _ in samples.items() if n == "status_bridge_build_info"}
    assert build == {version("status-bridge"): platform.python_version()}


async def test_a_stale_source_is_told_apart_from_a_fresh_one_as_on_the_page(aiohttp_client: Any, tmp_path: Path) -> None:
    client, clock = await start(aiohttp_client, tmp_path, {"statusdat", "passive"})
    samples = await scrape(client)
    assert by_source(samples, "status_bridge_source_age_seconds") == {"statusdat": 42.0, "passive": 100.0}
    assert samples[("status_bridge_statusdat_age_seconds", ())] == 42.0  # status.dat's own, not the pushes'
    assert by_source(samples, "status_bridge_source_stale") == {"statusdat": 0.0, "passive": 0.0}
    # db-1's pushed result turns 901 s old, past passive stale_after (900 s); status.dat is aged by the real clock.
    clock.now += 801
    await client.server.app[PASSIVE].publish()  # re-checks staleness, as its task does every few seconds
    samples = await scrape(client)
    assert by_source(samples, "status_bridge_source_stale") == {"statusdat": 0.0, "passive": 1.0}
    assert by_source(samples, "status_bridge_source_age_seconds")["passive"] == 901.0
    assert by_source(samples, "status_bridge_source_updates_total") == {"statusdat": 1.0, "passive": 1.0}
    # The page says the same: only the component fed by the pushes is stale.
    body = await (await client.get("/api/services.json")).json()
    assert {s["id"]: s["stale"] for g in body["groups"] for s in g["services"]} == {"website": False, "database": True}


def events(samples: Samples) -> dict[str, float]:
    """status_bridge_icinga_events_total: type -> count."""
    return {dict(labels)["type"]: v for (n, labels), v in samples.items() if n == "status_bridge_icinga_events_total"}


async def test_icinga_families_follow_the_event_stream(fake: tuple[FakeIcinga, str], aiohttp_client: Any, tmp_path: Path) -> None:
    icinga, url = fake
    client, _ = await start(aiohttp_client, tmp_path, {"icinga"}, url)
    samples = await until(client, lambda s: s.get(CONNECTED) == 1.0, "connected")
    assert events(samples) == dict.fromkeys(EVENT_LABELS, 0.0) and samples[RECONNECTS] == 0.0
    updates = by_source(samples, "status_bridge_source_updates_total")["icinga"]
    for line in ("not JSON", "[1]", json.dumps({"type": "ObjectCreated"}), json.dumps(http_result(0, T_HTTP + 1, "HTTP OK"))):
        icinga.push(line)
    counted = {**dict.fromkeys(EVENT_LABELS, 0.0), "invalid": 2.0, "other": 1.0, "CheckResult": 1.0}
    await until(client, lambda s: events(s) == counted, "the events counted by type")
    # The check result changed web-1!HTTP: the page took new data from Icinga.
    await until(client, lambda s: by_source(s, "status_bridge_source_updates_total")["icinga"] > updates, "an update")

    icinga.fail_with = 503  # Icinga restarting: the stream ends and reconnects are refused for a while
    icinga.close_streams()
    samples = await until(client, lambda s: s[CONNECTED] == 0.0 and s[RECONNECTS] >= 1.0, "the loss")
    assert by_source(samples, "status_bridge_source_stale") == {"icinga": 0.0}  # not stale before icinga stale_after
    icinga.fail_with = None
    samples = await until(client, lambda s: s[CONNECTED] == 1.0, "connected again")
    assert samples[RECONNECTS] >= 1.0 and events(samples) == counted  # the counts survive a reconnect


async def test_preparing_time_and_updates_belong_to_the_source_whose_data_changed(
    aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(Settings(web_config(), watch=False))
    live, client = app[LIVE], await aiohttp_client(app)
    core = status_data(check("web-1", "HTTP", 2))
    real_prepare, slow = bridge.live.prepare, [core]

    def prepare(data: StatusData, *args: Any, **kw: Any) -> None:
        if slow and data is slow[0]:
            slow.pop()
            time.sleep(0.2)  # as preparing a big status.dat does, once, in the tailer's thread
        real_prepare(data, *args, **kw)

    monkeypatch.setattr(bridge.live, "prepare", prepare)
    fresh = SourceHealth(stale=False, data_created=core.created)

    async def published(view: SourceView) -> tuple[dict[str, float], dict[str, float]]:
        await live.publish_source(view)
        samples = await scrape(client)
        return (by_source(samples, "status_bridge_source_prepare_duration_seconds"),
                by_source(samples, "status_bridge_source_updates_total"))  # fmt: skip

    await asyncio.to_thread(live.prepare, core)  # as the tailer does right after a parse
    prepared, updates = await published(SourceView("statusdat", core, fresh))
    core_time = prepared["statusdat"]
    assert core_time >= 0.2 and updates == {"statusdat": 1.0}  # the time in the tailer's thread counts
    pushed = status_data(check("db-1", "PostgreSQL"))
    prepared, updates = await published(SourceView("passive", pushed, fresh, annotated=False))
    assert prepared["statusdat"] == core_time and "passive" in prepared  # status.dat did not change: its time stays
    assert updates == {"statusdat": 1.0, "passive": 1.0}
    # The same object again (a new health only) is no update; a new object is, with its own time.
    prepared, updates = await published(SourceView("statusdat", core, dataclasses.replace(fresh, stale=True, reason="x")))
    assert updates["statusdat"] == 1.0 and prepared["statusdat"] == core_time
    prepared, updates = await published(SourceView("statusdat", status_data(check("web-1", "HTTP")), fresh))
    assert updates == {"statusdat": 2.0, "passive": 1.0} and prepared["statusdat"] != core_time


async def test_the_readme_names_every_family_exported_and_no_other(
    fake: tuple[FakeIcinga, str], aiohttp_client: Any, tmp_path: Path
) -> None:
    client, _ = await start(aiohttp_client, tmp_path, {"statusdat", "icinga", "passive"}, fake[1])
    exported = {n for n in names(await scrape(client)) if n.startswith("status_bridge_")}
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Metrics\n") : readme.index("## Benchmarks\n")]
    assert set(re.findall(r"status_bridge_\w+", section)) == exported
    assert "job_name: status-bridge" in section and 'job="status-bridge"' in RULES.read_text()


async def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """A short command (in a thread, beside the app), its output captured as text."""
    return await asyncio.to_thread(subprocess.run, args, input=stdin, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.real
async def test_promtool_accepts_the_exposition_with_every_family(
    fake: tuple[FakeIcinga, str], aiohttp_client: Any, tmp_path: Path
) -> None:
    promtool = require_binary("promtool")
    client, _ = await start(aiohttp_client, tmp_path, {"statusdat", "icinga", "passive"}, fake[1])
    text = await (await client.get("/metrics")).text()
    samples = metric_samples(text)
    every = {*PER_SOURCE, *STATUSDAT_ONLY, *ICINGA_ONLY, "status_bridge_build_info",
             "status_bridge_source_parse_duration_seconds", "status_bridge_source_prepare_duration_seconds"}  # fmt: skip
    assert every <= names(samples), every - names(samples)
    assert set(by_source(samples, "status_bridge_source_age_seconds")) == {"statusdat", "icinga", "passive"}
    done = await run(promtool, "check", "metrics", stdin=text)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


TARGET = {"instance": "bridge:8080", "job": "status-bridge"}  # the labels Prometheus adds to every scraped series


def stale_alert(source: str) -> dict[str, Any]:
    """The StatusBridgeSourceStale alert promtool should see firing for source."""
    return {
        "exp_labels": {**TARGET, "severity": "warning", "source": source},
        "exp_annotations": {
            "summary": f"status-bridge on bridge:8080: the {source} source is stale",
            "description": "The page shows the checks this source feeds with their last known status, marked stale.",
        },
    }


DOWN_ALERT = {
    "exp_labels": {**TARGET, "severity": "critical"},
    "exp_annotations": {
        "summary": "status-bridge on bridge:8080 does not answer",
        "description": "Prometheus cannot scrape /metrics: the public status page is probably unreachable too.",
    },
}


@pytest.mark.real
async def test_the_shipped_alert_rules_pass_promtool_and_fire_on_the_bridges_own_series(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    promtool = require_binary("promtool")
    checked = await run(promtool, "check", "rules", str(RULES))
    assert checked.returncode == 0 and "SUCCESS: 2 rules found" in checked.stdout, checked.stdout + checked.stderr
    client, clock = await start(aiohttp_client, tmp_path, {"statusdat", "passive"})
    clock.now += 801  # the pushed result turns stale, status.dat stays fresh
    await client.server.app[PASSIVE].publish()
    samples = await scrape(client)
    used = set(re.findall(r"status_bridge_\w+", RULES.read_text()))
    assert used and used <= names(samples), used - names(samples)  # every family a rule reads is exported
    stale = by_source(samples, "status_bridge_source_stale")
    assert stale == {"statusdat": 0.0, "passive": 1.0}
    # Ten minutes of what the bridge exports now, with a scrape target that stops answering after the first.
    labels = ",".join(f'{k}="{v}"' for k, v in TARGET.items())
    series = [{"series": f'status_bridge_source_stale{{{labels},source="{s}"}}', "values": f"{v:.0f}x10"} for s, v in stale.items()]
    series.append({"series": f"up{{{labels}}}", "values": "1 0x9"})
    checks = [
        {"eval_time": "4m", "alertname": "StatusBridgeSourceStale", "exp_alerts": []},  # still within `for: 5m`
        {"eval_time": "6m", "alertname": "StatusBridgeSourceStale", "exp_alerts": [stale_alert("passive")]},
        {"eval_time": "2m", "alertname": "StatusBridgeDown", "exp_alerts": []},
        {"eval_time": "3m", "alertname": "StatusBridgeDown", "exp_alerts": [DOWN_ALERT]},
    ]
    unit = {"rule_files": [str(RULES)], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": checks}]}  # fmt: skip
    (tmp_path / "rules_test.json").write_text(json.dumps(unit))  # JSON is YAML
    done = await run(promtool, "test", "rules", str(tmp_path / "rules_test.json"))
    assert done.returncode == 0, done.stdout + done.stderr
