"""Feed serving: requests/s and latency of the hot public GETs, bridge vs a bare aiohttp handler, with wrk.

Usage: feeds.py [--size 1k] [--duration 2] [--rounds 7] [--connections 8]

In one run, all on 127.0.0.1, each server a child process pinned to CPU 0 and wrk pinned to
CPU 1 (when there are two CPUs):

- the bridge: the real daemon (`python -m bridge run`) on a corpus status.dat with a
  100-component config, rate limiting off (wrk is one client IP);
- bare: an aiohttp app whose handlers return the bytes the bridge served for the same paths,
  with the same Content-Type and nothing else: only aiohttp's own per-request cost;
- bare+hdr: the same, plus the headers the feed contract requires (ETag, Cache-Control, CORS,
  nosniff), to show what they cost by themselves.

Endpoints: /api/services.json, its JSONP form (?callback=cb), /api/v1/components, and
/api/services.json revalidated with If-None-Match (the bridge answers 304; the baselines'
figure for it is their plain 200). Each round starts the three servers afresh (one process of
the very same server can be 10-20 % faster or slower than the next: memory layout, hash seeds)
and runs them back to back on each endpoint, so a noisy moment on a shared machine hits all
three alike; ratios are taken per round and their median reported. For a count that noise
cannot reach, see feeds_ir.py (instructions per request under callgrind). Besides wall-clock requests/s the bench reads each server's
CPU time from /proc: requests per CPU-second is the steadier figure when other work shares
the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    ROOT,
    config_toml,
    corpus_file,
    free_port,
    fresh,
    median,
    pin,
    python,
    stop,
    wait_http,
)

TARGET = 0.85  # bridge throughput / bare handler throughput
ENDPOINTS = [
    ("services.json", "/api/services.json", None),
    ("services.json JSONP", "/api/services.json?callback=cb", None),
    ("v1/components", "/api/v1/components", None),
    ("services.json 304", "/api/services.json", "etag"),
]


BARE = r'''
import json, os, sys
from aiohttp import web
spec = json.load(open(sys.argv[1]))
port, with_headers = int(sys.argv[2]), sys.argv[3] == "headers"
if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
    os.sched_setaffinity(0, {0})
KEEP = ("Content-Type",) + (("ETag", "Cache-Control", "Access-Control-Allow-Origin", "X-Content-Type-Options")
                            if with_headers else ())
answers = {path: (bytes.fromhex(body), {k: v for k, v in headers.items() if k in KEEP})
           for path, (body, headers) in spec.items()}

def handler_for(path):
    plain, jsonp = answers[path], answers.get(path + "?callback=cb")
    async def handler(request):
        # One path serves JSON and JSONP: the least a server can do is look at the raw query.
        body, headers = jsonp if jsonp is not None and request.query_string else plain
        return web.Response(body=body, headers=headers)
    return handler

app = web.Application()
for path in {p for p in answers if "?" not in p}:
    app.router.add_get(path, handler_for(path))
web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
'''


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (0 where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def _seconds(text: str) -> float:
    """wrk's '1.23ms' as seconds."""
    m = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def run_wrk(url: str, args: argparse.Namespace, header: str | None, server_pid: int) -> dict:
    """One wrk run; requests/s, latency percentiles, non-2xx/3xx count, server CPU seconds."""
    cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--latency"]
    if header:
        cmd += ["-H", header]
    if (os.cpu_count() or 1) > 1 and shutil.which("taskset"):
        cmd = ["taskset", "-c", "1", *cmd]
    before = cpu_seconds(server_pid)
    out = subprocess.run([*cmd, url], check=True, capture_output=True, text=True).stdout
    cpu = cpu_seconds(server_pid) - before
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    total = int(re.search(r"([0-9]+) requests in", out).group(1))
    lat = {p: _seconds(v) for p, v in re.findall(r"^\s+(50|90|99)%\s+(\S+)", out, re.M)}
    bad = re.search(r"Non-2xx or 3xx responses:\s+([0-9]+)", out)
    return {"rps": rps, "total": total, "cpu": cpu, "per_cpu": total / cpu if cpu else float("nan"),
            "p50": lat.get("50", float("nan")), "p99": lat.get("99", float("nan")),
            "bad": int(bad.group(1)) if bad else 0}


def fetch(url: str, etag: str | None = None) -> tuple[int, bytes, dict[str, str]]:
    """One GET: status, body, headers."""
    req = urllib.request.Request(url, headers={"If-None-Match": etag} if etag else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:  # 304 arrives as an HTTPError
        return e.code, e.read(), dict(e.headers)


APP_LEVEL = r'''
import asyncio, gc, json, sys, time
from pathlib import Path
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from bridge.app import make_app
from bridge.config_load import load_config
from bridge.keys import LIVE
from bridge.model import SourceHealth
from bridge.settings import Settings
from bridge.statusdat import parse

config, statusdat, paths = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
app = make_app(Settings(load_config(config), watch=False))
data = parse(statusdat.read_bytes())
app[LIVE].update(data, SourceHealth(stale=False, data_created=data.created))
answers = {}


async def main():
    for path in paths:  # the bridge's own answers, so the baseline returns the same bytes and headers
        resp = await app._handle(make_mocked_request("GET", path, app=app))
        answers[path] = (resp.body, {k: v for k, v in resp.headers.items() if k != "Content-Length"})

    async def bare(request):
        body, headers = answers[request.path_qs]
        return web.Response(body=body, headers=headers)

    base = web.Application()
    for path in {p.split("?")[0] for p in paths}:
        base.router.add_get(path, bare)
    for a in (app, base):
        a.freeze()
    gc.collect()
    gc.freeze()

    async def per_request(a, path, n=4000):
        # Fresh requests: lazily computed request properties must be paid for, as on a real connection.
        reqs = [make_mocked_request("GET", path, app=a) for _ in range(n)]
        t = time.perf_counter()
        for req in reqs:
            await a._handle(req)
        return (time.perf_counter() - t) / n

    out = {}
    for path in paths:
        best = {"bridge": float("inf"), "bare": float("inf")}
        for _ in range(7):
            best["bridge"] = min(best["bridge"], await per_request(app, path))
            best["bare"] = min(best["bare"], await per_request(base, path))
        out[path] = best
    print(json.dumps(out))


asyncio.run(main())
'''


def app_level(config: Path, statusdat: Path, paths: list[str]) -> dict[str, dict[str, float]]:
    """Seconds per request inside the app (routing, middleware, handler, Response), bridge vs bare, best of 7."""
    out = subprocess.run([python(), "-c", APP_LEVEL, str(config), str(statusdat), json.dumps(paths)],
                         cwd=str(ROOT), check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def start_bridge(tmp: Path, round_no: int, servers: list[subprocess.Popen]) -> tuple[subprocess.Popen, str, dict, dict]:
    """The daemon on tmp/bridge.toml with a fresh DB, serving its real snapshot; its URL, ETags and answers."""
    port = free_port()
    bridge = subprocess.Popen(
        [python(), "-m", "bridge", "--log-level", "warning", "run", "-c", str(tmp / "bridge.toml"),
         "--db", str(tmp / f"bridge-{round_no}.db"), "--listen", f"127.0.0.1:{port}"],
        cwd=str(ROOT),
    )
    servers.append(bridge)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/api/services.json", 120, bridge)
    while json.loads(fetch(base + "/api/services.json")[1])["last_updated"] is None:
        time.sleep(0.1)  # serve the real snapshot, not the "no data" one
    spec, etags = {}, {}
    for _, path, _ in ENDPOINTS:
        status, body, headers = fetch(base + path)
        assert status == 200, (path, status)
        spec[path] = (body.hex(), headers)
        etags[path] = headers["ETag"]
    assert fetch(base + "/api/services.json", etags["/api/services.json"])[0] == 304
    return bridge, base, etags, spec


def start_bare(tmp: Path, mode: str, spec: dict, servers: list[subprocess.Popen]) -> tuple[subprocess.Popen, str]:
    """A bare aiohttp server (BARE) answering with the bridge's bytes; checked before use."""
    port = free_port()
    proc = subprocess.Popen([python(), "-c", BARE, str(tmp / "bare.json"), str(port),
                             "headers" if mode.endswith("headers") else "plain"], cwd=str(tmp))
    servers.append(proc)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/api/services.json", 30, proc)
    for path, (body, _) in spec.items():
        assert fetch(url + path)[1] == bytes.fromhex(body), (mode, path)
    return proc, url


def main() -> None:
    """Per round start the three servers afresh, run wrk on each endpoint back to back, print the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1k", choices=["1k", "10k", "100k"], help="corpus behind the bridge")
    ap.add_argument("--duration", type=int, default=2, help="seconds per wrk run (default 2)")
    ap.add_argument("--rounds", type=int, default=7, help="rounds, each with fresh servers (default 7)")
    ap.add_argument("--connections", type=int, default=8, help="wrk keep-alive connections (default 8)")
    ap.add_argument("--tmp", type=Path, help="directory for the decompressed corpus (default: a temp dir)")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="bench-feeds-") as tmpdir:
        tmp = Path(tmpdir)
        statusdat = tmp / "status.dat"
        statusdat.write_bytes(fresh(corpus_file(args.size, args.tmp or tmp).read_bytes()))
        (tmp / "bridge.toml").write_text(config_toml(statusdat))
        results: dict[tuple[str, str], list[dict]] = {}
        pinned = False
        for r in range(args.rounds):
            # Fresh processes every round: one process of the same server can run 10-20 % faster or
            # slower than the next (memory layout, hash seeds), so a median over rounds samples that too.
            servers: list[subprocess.Popen] = []
            try:
                bridge, base, etags, spec = start_bridge(tmp, r, servers)
                pinned = pin(bridge.pid, 0)
                (tmp / "bare.json").write_text(json.dumps(spec))
                bares = {mode: start_bare(tmp, mode, spec, servers) for mode in ("bare", "bare+headers")}
                for name, path, etag in ENDPOINTS:
                    header = f"If-None-Match: {etags[path]}" if etag else None
                    # The baselines have no ETags: their figure for the 304 line is their plain 200.
                    proc, url = bares["bare"]
                    results.setdefault((name, "bare"), []).append(run_wrk(url + path, args, None, proc.pid))
                    results.setdefault((name, "bridge"), []).append(run_wrk(base + path, args, header, bridge.pid))
                    proc, url = bares["bare+headers"]
                    results.setdefault((name, "bare+headers"), []).append(run_wrk(url + path, args, None, proc.pid))
            finally:
                for proc in servers:
                    stop(proc)
        inside = app_level(tmp / "bridge.toml", statusdat, sorted({path for _, path, _ in ENDPOINTS}))
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cores; "
          f"{'servers on CPU 0, wrk on CPU 1' if pinned else 'not pinned'}; "
          f"wrk -t1 -c{args.connections} -d{args.duration}s, {args.rounds} rounds, each starting the three servers"
          " afresh and running them back to back; medians over rounds (ratios are per round, then the median [range])")
    print("bare: the same body and Content-Type only; bare+hdr: also the ETag, Cache-Control, CORS"
          " (and nosniff) headers the feed contract requires. Numbers are noisy on a shared machine.")
    print(f"{'endpoint':20} {'bare req/s':>10} {'bare+hdr':>9} {'bridge':>8} {'ratio [range]':>18} {'vs +hdr':>7}"
          f" {'bare p99':>9} {'bridge p99':>10} {'ratio per CPU-s':>16}")
    ratios: dict[str, float] = {}
    for name, _, _ in ENDPOINTS:
        runs = {who: results[(name, who)] for who in ("bare", "bare+headers", "bridge")}
        med = {who: median([r["rps"] for r in rs]) for who, rs in runs.items()}
        paired = [r["rps"] / b["rps"] for r, b in zip(runs["bridge"], runs["bare"])]
        vs_headers = median([r["rps"] / h["rps"] for r, h in zip(runs["bridge"], runs["bare+headers"])])
        per_cpu = median([r["per_cpu"] / b["per_cpu"] for r, b in zip(runs["bridge"], runs["bare"])])
        ratio = ratios[name] = median(paired)
        p99 = {who: median([r["p99"] for r in rs]) for who, rs in runs.items()}
        verdict = "" if name.endswith("304") else f"  target >= {TARGET:.2f}: {'met' if ratio >= TARGET else 'MISSED'}"
        print(f"{name:20} {med['bare']:10,.0f} {med['bare+headers']:9,.0f} {med['bridge']:8,.0f}"
              f" {ratio:6.2f} [{min(paired):.2f}-{max(paired):.2f}] {vs_headers:7.2f}"
              f" {p99['bare'] * 1e3:7.2f}ms {p99['bridge'] * 1e3:8.2f}ms {per_cpu:16.2f}{verdict}")
        bad = sum(x["bad"] for rs in runs.values() for x in rs)
        if bad:
            print(f"  WARNING: {bad} answers were not 2xx/3xx")
    revalidated = median([a["rps"] / b["rps"] for a, b in zip(results[("services.json 304", "bridge")],
                                                              results[("services.json", "bridge")])])
    print(f"304 revalidation vs a full 200 on the bridge: {revalidated:.2f}x the requests/s")
    print("inside the app (in-process, fresh requests, best of 7; a bare app returning the bridge's bytes and headers):")
    for name, path, etag in ENDPOINTS:
        if etag:
            continue
        bare_cpu = median([1 / b["per_cpu"] for b in results[(name, "bare")]])  # seconds of CPU per bare request
        extra = inside[path]["bridge"] - inside[path]["bare"]
        print(f"  {name:20} bridge {inside[path]['bridge'] * 1e6:5.1f} us, bare {inside[path]['bare'] * 1e6:5.1f} us:"
              f" +{extra * 1e6:4.1f} us on {bare_cpu * 1e6:5.1f} us of CPU per bare request over HTTP"
              f" -> request-path ratio {bare_cpu / (bare_cpu + extra):.2f}")


if __name__ == "__main__":
    main()
