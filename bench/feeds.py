"""Feed serving: requests/s and latency of the hot public GETs, bridge vs a bare aiohttp handler, with wrk.

Usage: feeds.py [--size 1k] [--duration 3] [--rounds 3] [--connections 8]

In one run, both on 127.0.0.1, each server a child process pinned to CPU 0 and wrk pinned to
CPU 1 (when there are two CPUs):

- the bridge: the real daemon (`python -m bridge run`) on a corpus status.dat with a
  100-component config, rate limiting off (wrk is one client IP);
- the baseline: a bare aiohttp app whose handlers return the bytes the bridge served for the
  same paths, with the same Content-Type: only aiohttp's own per-request cost.

Endpoints: /api/services.json, its JSONP form (?callback=cb), /api/v1/components, and
/api/services.json revalidated with If-None-Match (the bridge answers 304; the baseline's
figure for it is its plain 200). Rounds alternate bridge and baseline so a noisy moment on a
shared machine hits both alike; the best round of each is kept. Besides wall-clock requests/s
the bench reads each server's CPU time from /proc during the run: requests per CPU-second is
the steadier figure when other work shares the CPU.
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

from _common import ROOT, config_toml, corpus_file, free_port, fresh, pin, python, stop, wait_http  # noqa: E402

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
port = int(sys.argv[2])
os.sched_setaffinity(0, {0}) if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1 else None
bodies = {path: (bytes.fromhex(b), ctype) for path, (b, ctype) in spec.items()}

def handler_for(path):
    async def handler(request):
        body, ctype = bodies[path]
        return web.Response(body=body, headers={"Content-Type": ctype})
    return handler

app = web.Application()
for path in {p.split("?")[0] for p in bodies}:
    app.router.add_get(path, handler_for(path))
async def jsonp(request):
    # The same path serves JSON and JSONP: pick by the query, like the bridge (and nothing more).
    key = "/api/services.json?callback=cb" if "callback" in request.query else "/api/services.json"
    body, ctype = bodies[key]
    return web.Response(body=body, headers={"Content-Type": ctype})
app.router._resources = [r for r in app.router._resources if r.canonical != "/api/services.json"]
app.router.add_get("/api/services.json", jsonp)
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


def main() -> None:
    """Start both servers, interleave wrk runs, print the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1k", choices=["1k", "10k", "100k"], help="corpus behind the bridge")
    ap.add_argument("--duration", type=int, default=3, help="seconds per wrk run (default 3)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per endpoint and server (default 3)")
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
        bport, port = free_port(), free_port()
        bridge = subprocess.Popen(
            [python(), "-m", "bridge", "--log-level", "warning", "run", "-c", str(tmp / "bridge.toml"),
             "--db", str(tmp / "bridge.db"), "--listen", f"127.0.0.1:{bport}"],
            cwd=str(ROOT),
        )
        bare = None
        try:
            pinned = pin(bridge.pid, 0)
            base = f"http://127.0.0.1:{bport}"
            wait_http(base + "/api/services.json", 120, bridge)
            while json.loads(fetch(base + "/api/services.json")[1])["last_updated"] is None:
                time.sleep(0.1)  # serve the real snapshot, not the "no data" one
            spec, etags = {}, {}
            for _, path, _ in ENDPOINTS:
                status, body, headers = fetch(base + path)
                assert status == 200, (path, status)
                spec[path] = (body.hex(), headers["Content-Type"])
                etags[path] = headers["ETag"]
            assert fetch(base + "/api/services.json", etags["/api/services.json"])[0] == 304
            (tmp / "bare.json").write_text(json.dumps(spec))
            bare = subprocess.Popen([python(), "-c", BARE, str(tmp / "bare.json"), str(port)], cwd=str(tmp))
            wait_http(f"http://127.0.0.1:{port}/api/services.json", 30, bare)
            assert fetch(f"http://127.0.0.1:{port}/api/v1/components")[1] == bytes.fromhex(spec["/api/v1/components"][0])
            results: dict[tuple[str, str], list[dict]] = {}
            for _ in range(args.rounds):
                for name, path, etag in ENDPOINTS:
                    header = f"If-None-Match: {etags[path]}" if etag else None
                    results.setdefault((name, "bridge"), []).append(run_wrk(base + path, args, header, bridge.pid))
                    # The baseline has no ETags: its figure for the 304 line is its plain 200.
                    results.setdefault((name, "bare"), []).append(
                        run_wrk(f"http://127.0.0.1:{port}{path}", args, None, bare.pid))
        finally:
            stop(bridge)
            if bare is not None:
                stop(bare)
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cores; "
          f"{'servers on CPU 0, wrk on CPU 1' if pinned else 'not pinned'}; "
          f"wrk -t1 -c{args.connections} -d{args.duration}s, best of {args.rounds} interleaved rounds; "
          "numbers are noisy on a shared machine")
    print(f"{'endpoint':22} {'bare req/s':>11} {'bridge req/s':>13} {'ratio':>6} {'bare p99':>9} {'bridge p99':>11}"
          f" {'bare req/CPU-s':>15} {'bridge req/CPU-s':>17} {'ratio':>6}")
    for name, _, _ in ENDPOINTS:
        b = max(results[(name, "bare")], key=lambda r: r["rps"])
        r = max(results[(name, "bridge")], key=lambda r: r["rps"])
        bc = max(x["per_cpu"] for x in results[(name, "bare")])
        rc = max(x["per_cpu"] for x in results[(name, "bridge")])
        ratio = r["rps"] / b["rps"]
        verdict = "" if name.endswith("304") else f"  target >= {TARGET:.2f}: {'met' if ratio >= TARGET else 'MISSED'}"
        print(f"{name:22} {b['rps']:11,.0f} {r['rps']:13,.0f} {ratio:6.2f} {b['p99'] * 1e3:7.2f}ms {r['p99'] * 1e3:9.2f}ms"
              f" {bc:15,.0f} {rc:17,.0f} {rc / bc:6.2f}{verdict}")
        bad = sum(x["bad"] for x in results[(name, "bridge")] + results[(name, "bare")])
        if bad:
            print(f"  WARNING: {bad} answers were not 2xx/3xx")
    plain = max(x["rps"] for x in results[("services.json", "bridge")])
    revalidated = max(x["rps"] for x in results[("services.json 304", "bridge")])
    print(f"304 revalidation vs a full 200 on the bridge: {revalidated / plain:.2f}x the requests/s")


if __name__ == "__main__":
    main()
