"""/metrics under a flood: what it costs the server per request, and what it costs everyone else's feed.

Usage: scrape.py [--size 1k] [--duration 3] [--rounds 3] [--connections 8]

The real daemon (`python -m bridge run`, pinned to CPU 0) on a corpus status.dat with the
100-component config of bench/_common.py; wrk (pinned to CPU 1) floods one path from 8 keep-alive
connections while a "victim" client (also on CPU 1) GETs /api/services.json every 10 ms on its own
keep-alive connection. Per round, each phase lasting --duration seconds:

- quiet: the victim alone;
- feed flood: wrk on /api/services.json (a cached feed: the baseline a public GET should cost);
- metrics flood: wrk on /metrics;
- feed flood and metrics flood, rate limited: a second daemon with the default limit (10/s, burst
  20), as installed; wrk is one client and gets 429s, the victim names a fresh client in
  X-Forwarded-For each time (loopback is a trusted proxy).

Printed: wrk's requests/s and the server's CPU per request (from /proc), the victim's p50/p99 per
phase, and the ratios metrics flood / feed flood measured in the same run. Then, in one process
(no HTTP, no noise from the machine), per-request time of the old handler's work
(generate_latest over the app's registry, which is also what one re-encoding per bucket costs), of
a cached /metrics (one bucket held) and of a cached feed through the app, and how many times the
collectors ran for the scrapes made on the real clock.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, config_toml, corpus_file, free_port, fresh, median, pct, pin, python, stop, wait_http  # noqa: E402
from feeds import run_wrk  # noqa: E402

FEED = "/api/services.json"


class Victim(threading.Thread):
    """GETs the feed every interval on one keep-alive connection; records each latency and status."""

    def __init__(self, port: int, interval: float = 0.01, forwarded: bool = False) -> None:
        super().__init__(daemon=True)
        self.port, self.interval, self.forwarded = port, interval, forwarded
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.done = threading.Event()

    def run(self) -> None:
        """Poll until stopped."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        i = 0
        while not self.done.is_set():
            i += 1
            headers = {"X-Forwarded-For": f"198.51.{100 + i // 250 % 50}.{i % 250 + 1}"} if self.forwarded else {}
            t = time.perf_counter()
            conn.request("GET", FEED, headers=headers)
            resp = conn.getresponse()
            resp.read()
            self.latencies.append(time.perf_counter() - t)
            self.statuses[resp.status] = self.statuses.get(resp.status, 0) + 1
            time.sleep(self.interval)
        conn.close()


def start(tmp: Path, name: str, rate_limit: bool) -> tuple[subprocess.Popen, int]:
    """The daemon on its config (rate limit off, or the default 10/s burst 20), serving real data."""
    text = (tmp / "bridge.toml").read_text()
    if rate_limit:
        text = text.replace("rate_limit = 0", "rate_limit = 10")
    (tmp / f"{name}.toml").write_text(text)
    port = free_port()
    proc = subprocess.Popen([python(), "-m", "bridge", "--log-level", "warning", "run", "-c", str(tmp / f"{name}.toml"),
                             "--db", str(tmp / f"{name}.db"), "--listen", f"127.0.0.1:{port}"], cwd=str(ROOT))
    wait_http(f"http://127.0.0.1:{port}{FEED}", 120, proc)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while True:  # the real snapshot, not the "no data" one
        conn.request("GET", FEED, headers={"X-Forwarded-For": "192.0.2.1"})
        if json.loads(conn.getresponse().read())["last_updated"] is not None:
            break
        time.sleep(0.1)
    conn.close()
    pin(proc.pid, 0)
    return proc, port


def phase(proc: subprocess.Popen, port: int, path: str | None, args: argparse.Namespace, forwarded: bool) -> dict:
    """The victim during a wrk flood of path (None: no flood, just the victim for the duration)."""
    victim = Victim(port, forwarded=forwarded)
    victim.start()
    flood = None
    if path is None:
        time.sleep(args.duration)
    else:
        flood = run_wrk(f"http://127.0.0.1:{port}{path}", args, None, proc.pid)
    victim.done.set()
    victim.join()
    lat = victim.latencies
    return {"p50": pct(lat, 50), "p99": pct(lat, 99), "n": len(lat), "statuses": victim.statuses, "flood": flood}


IN_PROCESS = r'''
import asyncio, json, sys, time
from aiohttp.test_utils import make_mocked_request
from prometheus_client import generate_latest
from bridge.app import make_app
from bridge.config_load import load_config
from bridge.keys import LIVE, REGISTRY
from bridge.model import SourceHealth
from bridge.settings import Settings
from bridge.statusdat import parse

config, statusdat, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = make_app(Settings(load_config(config), watch=False))
data = parse(open(statusdat, "rb").read())
app[LIVE].update(data, SourceHealth(stale=False, data_created=data.created))
registry = app[REGISTRY]
runs = 0
for collector in list(registry._collector_to_names):  # count every collector run, as the tests do
    def counting(real=collector.collect):
        global runs
        runs += 1
        return real()
    collector.collect = counting
collectors = len(registry._collector_to_names)


async def per_request(path, count):
    reqs = [make_mocked_request("GET", path, app=app) for _ in range(count)]
    t = time.perf_counter()
    for req in reqs:
        resp = await app._handle(req)
        assert resp.status == 200, (path, resp.status)
    return (time.perf_counter() - t) / count


async def main():
    app.freeze()
    out = {"collectors": collectors}
    try:
        from bridge.views_metrics import SCRAPE
    except ImportError:  # code from before the cache
        SCRAPE = None
    best = float("inf")
    for _ in range(5):  # what the handler did per request before the cache
        t = time.perf_counter()
        for _ in range(20):
            generate_latest(registry)
        best = min(best, (time.perf_counter() - t) / 20)
    out["uncached"] = best
    for path in ("/metrics", "/api/services.json"):
        await per_request(path, 10)
        before, start = runs, time.monotonic()
        await per_request(path, n)  # on the real clock: the collectors run once per generation and bucket
        out[path + " runs"] = (runs - before) / collectors
        out[path + " requests"] = n
        out[path + " seconds"] = time.monotonic() - start
        if SCRAPE is not None:
            app[SCRAPE].clock = lambda: 0.0  # one bucket: the per-request cost alone
        out[path] = min([await per_request(path, n) for _ in range(5)])
        if SCRAPE is not None:
            app[SCRAPE].clock = time.monotonic
    print(json.dumps(out))


asyncio.run(main())
'''


def in_process(config: Path, statusdat: Path, n: int = 2000) -> dict:
    """Per-request seconds in one process: old handler work, cached /metrics, cached feed; collector runs."""
    out = subprocess.run([python(), "-c", IN_PROCESS, str(config), str(statusdat), str(n)],
                         cwd=str(ROOT), check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    """Run the phases per round, then the in-process measurement; print medians and ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1k", choices=["1k", "10k", "100k"])
    ap.add_argument("--duration", type=int, default=3, help="seconds per phase (default 3)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, each with fresh daemons (default 3)")
    ap.add_argument("--connections", type=int, default=8, help="wrk keep-alive connections (default 8)")
    args = ap.parse_args()
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scrape-") as tmpdir:
        tmp = Path(tmpdir)
        statusdat = tmp / "status.dat"
        statusdat.write_bytes(fresh(corpus_file(args.size, tmp).read_bytes()))
        (tmp / "bridge.toml").write_text(config_toml(statusdat))
        for r in range(args.rounds):
            procs: list[subprocess.Popen] = []
            try:
                proc, port = start(tmp, f"open-{r}", rate_limit=False)
                procs.append(proc)
                for name, path in (("quiet", None), ("feed flood", FEED), ("metrics flood", "/metrics")):
                    rows.setdefault(name, []).append(phase(proc, port, path, args, forwarded=False))
                proc, port = start(tmp, f"limited-{r}", rate_limit=True)
                procs.append(proc)
                for name, path in (("feed flood, limited", FEED), ("metrics flood, limited", "/metrics")):
                    rows.setdefault(name, []).append(phase(proc, port, path, args, forwarded=True))
            finally:
                for p in procs:
                    stop(p)
        inside = in_process(tmp / "bridge.toml", statusdat)
    print(f"{args.rounds} rounds of {args.duration} s phases, wrk -t1 -c{args.connections}; medians over rounds")
    print(f"{'phase':24} {'flood req/s':>11} {'CPU us/req':>10} {'non-2xx':>8} {'victim p50':>10} {'p99':>8} {'victim n':>8}")
    for name, runs in rows.items():
        floods = [x["flood"] for x in runs if x["flood"]]
        rps = median([f["rps"] for f in floods]) if floods else float("nan")
        cpu = median([f["cpu"] / f["total"] * 1e6 for f in floods]) if floods else float("nan")
        bad = sum(f["bad"] for f in floods)
        print(f"{name:24} {rps:11,.0f} {cpu:10.1f} {bad:8d} {median([x['p50'] for x in runs]) * 1e3:8.2f}ms"
              f" {median([x['p99'] for x in runs]) * 1e3:6.2f}ms {median([x['n'] for x in runs]):8.0f}")
    for suffix in ("", ", limited"):
        feed, met = rows["feed flood" + suffix], rows["metrics flood" + suffix]
        cpu_ratio = median([m["flood"]["cpu"] / m["flood"]["total"] / (f["flood"]["cpu"] / f["flood"]["total"])
                            for m, f in zip(met, feed)])
        print(f"metrics flood / feed flood{suffix}: server CPU per request {cpu_ratio:.2f}x;"
              f" victim p50 {median([m['p50'] / f['p50'] for m, f in zip(met, feed)]):.2f}x,"
              f" p99 {median([m['p99'] / f['p99'] for m, f in zip(met, feed)]):.2f}x (paired per round)")
    print(f"in process: old handler (generate_latest per request) {inside['uncached'] * 1e6:,.0f} us;"
          f" cached /metrics {inside['/metrics'] * 1e6:.1f} us; cached feed {inside[FEED] * 1e6:.1f} us"
          f" -> cached scrape = {inside['/metrics'] / inside[FEED]:.2f}x a cached feed,"
          f" {inside['uncached'] / inside['/metrics']:,.0f}x cheaper than before")
    print(f"collectors ran {inside['/metrics runs']:.0f} times for {inside['/metrics requests']:,} scrapes"
          f" taking {inside['/metrics seconds']:.2f} s (real clock);"
          f" {inside[FEED + ' runs']:.0f} times for {inside[FEED + ' requests']:,} feed GETs")


if __name__ == "__main__":
    main()
