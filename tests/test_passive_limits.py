"""Issue 15 item 3: what a push-token holder can make the passive store hold is bounded (counts and bytes, not RSS)."""

from __future__ import annotations

import gc
import json
import logging
import sys
import tracemalloc

import pytest

import bridge.passive_store as passive_store
from bridge.keys import LIVE
from bridge.passive import cap_output
from bridge.passive_ages import SLACK
from bridge.views_passive import PASSIVE
from tests.test_passive import Clock, client, feed, make, publish, push  # noqa: F401 (client: a fixture)

LONG = "n" * 255  # the longest name allowed


def _results(n: int, host: str = "web-1", prefix: str = "HTTP", output: str = "ok", state: int = 0) -> list[dict]:
    """n service results on one host, services prefix-0, prefix-1, ..."""
    return [{"host": host, "service": f"{prefix}-{i}", "state": state, "output": output} for i in range(n)]


async def push_all(client, results: list[dict], per_request: int) -> dict[str, int]:
    """Push results in requests of per_request; the answers' counts added up."""
    total = {"accepted": 0, "ignored": 0, "refused": 0, "invalid": 0}
    for i in range(0, len(results), per_request):
        got = await push(client, {"results": results[i : i + per_request]})
        for k in total:
            total[k] += got[k]
    return total


def _output_bytes(store) -> int:
    """What the held outputs really take, counted afresh."""
    return sum(passive_store._size(c.plugin_output) + passive_store._size(c.long_plugin_output)
               for table in (store.hosts, store.services) for c in table.values())


# -- output and names --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, kept", [
    ("x" * 70_000, 65_536),  # ASCII: cut at 64 KiB
    ("é" * 40_000, 65_536),  # 2 bytes each: 32,768 characters
    ("€" * 30_000, 65_535),  # 3 bytes each: never half a character (21,845 of them)
    ("a" + "😀" * 20_000, 65_533),  # 4 bytes each after one ASCII byte
    ("\ud800" * 30_000, 65_535),  # lone surrogates (JSON allows them) count 3 bytes and survive
    ("short", 5),
])
def test_output_is_cut_at_64_kib_of_utf8_on_a_character_boundary(text: str, kept: int) -> None:
    out = cap_output(text)
    assert len(out.encode("utf-8", "surrogatepass")) == kept
    assert text.startswith(out)


async def test_a_pushed_output_keeps_at_most_64_kib(aiohttp_client, tmp_path) -> None:
    client = await aiohttp_client(make(tmp_path, passive_max_body=1 << 21))
    first = "CRITICAL - " + "x" * 100
    got = await push(client, [{"host": "web-1", "service": "HTTP", "state": 2,
                               "output": first + "\n" + "detail line\n" * 10_000 + "| perf=1"}])
    assert got["accepted"] == 1
    store = client.server.app[PASSIVE].store
    held = store.services[("web-1", "HTTP")]
    assert held.plugin_output == first  # the first line survives the cut; the long output is cut
    assert len(held.plugin_output.encode()) + len(held.long_plugin_output.encode()) <= 65_536
    assert held.long_plugin_output.startswith("detail line\ndetail line")
    assert store.truncated == 1
    text = await (await client.get("/metrics")).text()
    assert "status_bridge_passive_outputs_truncated_total 1.0" in text


async def test_names_are_at_most_255_characters(client) -> None:
    await push(client, [{"host": LONG, "service": "HTTP", "state": 0}])  # at the limit: fine (not mapped)
    for item in ({"host": LONG + "n", "state": 0}, {"host": "web-1", "service": LONG + "n", "state": 0}):
        got = await push(client, [item], status=422)
        assert "longer than 255 characters" in got["error"]["message"]


# -- the number of checks held ------------------------------------------------------------------------------------


async def test_new_checks_past_max_checks_are_refused_with_a_reason_a_metric_and_one_log_line(
        aiohttp_client, tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, "bridge.passive")
    client = await aiohttp_client(make(tmp_path, passive_max_checks=1_000))
    got = await push_all(client, _results(1_500), per_request=300)
    assert (got["accepted"], got["refused"]) == (1_000, 500)
    store = client.server.app[PASSIVE].store
    assert len(store) == 1_000
    answer = await push(client, _results(1_200, state=1))  # held checks still update; new ones still refused
    assert (answer["accepted"], answer["refused"]) == (1_000, 200)
    assert "max_checks" in answer["refused_reason"] and "1000" in answer["refused_reason"]
    assert store.services[("web-1", "HTTP-7")].current_state == 1 and ("web-1", "HTTP-1100") not in store.services
    full = [r for r in caplog.records if "max_checks" in r.getMessage()]
    assert len(full) == 1  # seven refusing pushes, one line (at most one a minute)
    text = await (await client.get("/metrics")).text()
    assert 'status_bridge_passive_results_total{result="refused"} 700.0' in text
    assert "status_bridge_passive_checks 1000.0" in text and "status_bridge_passive_checks_limit 1000.0" in text


async def test_nrdp_counts_refused_checks_as_processed(aiohttp_client, tmp_path) -> None:
    client = await aiohttp_client(make(tmp_path, passive_max_checks=1))
    checks = [{"checkresult": {"type": "service"}, "hostname": "web-1", "servicename": f"HTTP-{i}", "state": "0",
               "output": "OK"} for i in range(3)]
    resp = await client.post("/nrdp/", data={"token": "t", "cmd": "submitcheck",
                                             "json": json.dumps({"checkresults": checks})})
    body = await resp.json()
    assert resp.status == 200 and body["result"]["meta"]["output"].startswith("3 checks processed")
    assert len(client.server.app[PASSIVE].store) == 1


# -- forgetting ---------------------------------------------------------------------------------------------------


async def test_a_check_turns_stale_then_is_forgotten_and_shows_no_data_never_down(aiohttp_client, tmp_path) -> None:
    clock = Clock()
    client = await aiohttp_client(make(tmp_path, clock, passive_stale_after=60, passive_forget_after=600))
    await push(client, [{"host": "web-1", "service": "HTTP", "state": 2}, {"host": "db-1", "service": "PostgreSQL",
                                                                           "state": 0}])
    await publish(client)
    assert (await feed(client))["website"] == {**(await feed(client))["website"], "status": "down"}
    clock.now += 300
    await push(client, [{"host": "db-1", "service": "PostgreSQL", "state": 0}])
    await publish(client)
    website = (await feed(client))["website"]
    assert website["status"] == "down" and website["stale"] is True  # stale first: the last known state
    clock.now += 301  # the website's result is 601 s old now
    await publish(client)
    store = client.server.app[PASSIVE].store
    assert ("web-1", "HTTP") not in store.services and len(store) == 1 and store.forgotten == 1
    website = (await feed(client))["website"]
    assert website["status"] == "nodata"  # then "No data", never Down
    text = await (await client.get("/metrics")).text()
    assert "status_bridge_passive_forgotten_total 1.0" in text
    # A result older than forget_after is not taken at all.
    got = await push(client, [{"host": "web-1", "service": "HTTP", "state": 2, "timestamp": clock.now - 700}])
    assert (got["accepted"], got["ignored"]) == (0, 1)
    # Everything forgotten: the passive source claims nothing, the page says why it knows nothing.
    clock.now += 601
    await publish(client)
    assert len(store) == 0 and client.server.app[LIVE].data is None
    assert {s["status"] for s in (await feed(client)).values()} == {"nodata"}


# -- the attack, scaled down ----------------------------------------------------------------------------------------


async def test_the_passive_memory_attack_stays_within_the_caps(aiohttp_client, tmp_path, monkeypatch) -> None:
    """Issue 15: 100k unique services, then 20k with 1 KB names and 40 KB outputs, then 520k unmapped checks
    grew RSS from 62 MiB to 1.98 GiB. Here 1/20 of it, against 1/100 of the default caps."""
    budget = 1 << 20
    monkeypatch.setattr(passive_store, "FILTER_CACHE_BYTES", 256 << 10)
    client = await aiohttp_client(make(tmp_path, passive_max_checks=2_000, passive_max_output_total=budget,
                                       passive_max_body=1 << 21, passive_forget_after=10**9))
    store = client.server.app[PASSIVE].store
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        big = "x" * 40_000  # long names and big outputs (web-1 HTTP* is mapped)
        await push_all(client, _results(1_000, prefix="HTTP" + LONG[4:248], output=big), per_request=20)
        await push_all(client, _results(5_000), per_request=1_000)  # unique services: 1,000 fit, the rest refused
        await push_all(client, _results(1_000, output=big), per_request=20)  # held ones refreshed with big outputs
        for i in range(5):  # 26k unmapped checks with the longest names
            await push_all(client, _results(5_200, host=f"{i}{LONG[1:]}", prefix=LONG[:240]), per_request=1_300)
        await publish(client)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(store) == 2_000  # max_checks
    assert store.output_bytes == _output_bytes(store) <= budget  # max_output_total, counted honestly
    assert all(len(c.plugin_output) + len(c.long_plugin_output) <= 65_536 for c in store.services.values())
    cache = store._filter._cache
    real = sum(passive_store.ENTRY_BYTES + sys.getsizeof(h) + sys.getsizeof(s) for h, s in cache)
    assert store.filter_cache_bytes == real <= 256 << 10  # bounded by bytes, not by entries
    assert not any(k[0].endswith(LONG[1:]) for k in store.services)  # unmapped checks are never held
    assert len(store._ages) <= 2 * len(store) + 2 * SLACK
    # Held checks (names, states, keys, time order) plus the two byte budgets, with room for the app's own
    # buffers: the unbounded store held ~20 MB of cached names and ~40 MB of outputs here.
    assert grown < 2_000 * 2_048 + budget + (256 << 10) + (8 << 20), grown
    text = await (await client.get("/metrics")).text()
    assert metric(text, "status_bridge_passive_output_bytes") == store.output_bytes
    assert metric(text, "status_bridge_passive_filter_cache_bytes") == store.filter_cache_bytes


def metric(text: str, name: str) -> float:
    """The value of an unlabelled sample in Prometheus text."""
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))


def test_filter_cache_is_bounded_by_bytes_and_keeps_deciding() -> None:
    from tests.conftest import web_config

    f = passive_store.CheckFilter(web_config(), budget=64 << 10)
    for i in range(5_000):
        assert not f.wants(f"{i}{LONG}", LONG)
        assert f.cache_bytes <= 64 << 10
    assert 0 < len(f) < 5_000
    assert f.wants("web-1", "HTTP") and not f.wants("web-2", "HTTP")  # decisions stay right after clearing
