"""Passive ingest benchmark: results/s through /nrdp/ (json) and /api/v1/check-results, against a bare baseline;
then the cost of one pushed result with 120,000 checks held, against the same with 1,000 held.

    .venv/bin/python bench/ingest.py [--seconds 5] [--batch 100] [--concurrency 8] [--max-batches 100000]
                                     [--held 120000] [--pushes 40]

Each server runs in its own child process pinned to one CPU (the client gets the other CPUs when
there are any): the bridge (the real make_app, passive-only, 10,000 distinct checks that all match a
component) and a baseline aiohttp app whose handler only reads the body and answers 200. The same
pre-built request bodies go to both, so the ratio is the bridge's cost per request over aiohttp's own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"
HOSTS, SERVICES = 100, 100  # 10,000 distinct checks
NATIVE, NRDP = "/api/v1/check-results", "/nrdp/"


def _free_port() -> int:
    """An ephemeral loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pin(cpu: int) -> None:
    """Keep this process on one CPU, when the platform allows it."""
    if hasattr(os, "sched_setaffinity") and cpu in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {cpu})


def serve(mode: str, port: int) -> None:
    """Child process: run the bridge or the baseline on 127.0.0.1:port until killed."""
    from aiohttp import web

    _pin(0)
    if mode == "baseline":

        async def handler(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post(NATIVE, handler)
        app.router.add_post(NRDP, handler)
    else:
        sys.path.insert(0, str(REPO))
        from bridge.app import make_app
        from bridge.config import CheckPattern, Component, Config, Group
        from bridge.settings import Settings

        comps = tuple(
            Component(id=f"c{i}", name=f"C{i}", group_id="bench", checks=(CheckPattern(f"bench-{i}*", "*"),))
            for i in range(10)
        )
        config = Config(page_name="bench", groups=(Group(id="bench", name="Bench", components=comps),))
        app = make_app(Settings(config, watch=False, push_tokens=(TOKEN,)))
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, handle_signals=True)


def _results(batch: int, offset: int) -> list[dict[str, object]]:
    """One batch of service results walking the 10,000 checks, states cycling."""
    out = []
    for j in range(batch):
        n = (offset + j) % (HOSTS * SERVICES)
        out.append({"host": f"bench-{n // SERVICES}", "service": f"svc-{n % SERVICES}", "state": (offset + j) % 4,
                    "output": f"state {(offset + j) % 4} | time=0.01s"})
    return out


def native_body(batch: int, offset: int) -> tuple[bytes, dict[str, str]]:
    """A native request: JSON results with a bearer token."""
    body = json.dumps({"results": _results(batch, offset)}).encode()
    return body, {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def nrdp_body(batch: int, offset: int) -> tuple[bytes, dict[str, str]]:
    """An NRDP request as send_nrdp.py builds it: a URL-encoded form with token, cmd and json."""
    checks = [
        {"checkresult": {"type": "service"}, "hostname": r["host"], "servicename": r["service"],
         "state": str(r["state"]), "output": r["output"]}
        for r in _results(batch, offset)
    ]
    form = {"token": TOKEN, "cmd": "submitcheck", "json": json.dumps({"checkresults": checks})}
    return urlencode(form).encode(), {"Content-Type": "application/x-www-form-urlencoded"}


def _cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process so far (Linux /proc), NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


async def drive(port: int, path: str, bodies: list[tuple[bytes, dict[str, str]]], seconds: float,
                max_batches: int, concurrency: int, on_start: Callable[[], None] = lambda: None) -> tuple[int, float]:
    """POST bodies round-robin from `concurrency` workers; (successful requests, seconds); on_start after warm-up."""
    url = f"http://127.0.0.1:{port}{path}"
    done = failed = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker(start: int, stop_at: float) -> None:
            nonlocal done, failed
            i = start
            while time.perf_counter() < stop_at and done < max_batches:
                body, headers = bodies[i % len(bodies)]
                i += concurrency
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status == 200:
                        done += 1
                    else:
                        failed += 1

        # Warm-up (connections, caches, first publishes), not counted.
        await asyncio.gather(*(worker(w, time.perf_counter() + 0.5) for w in range(concurrency)))
        done = failed = 0
        on_start()
        start = time.perf_counter()
        await asyncio.gather(*(worker(w, start + seconds) for w in range(concurrency)))
        elapsed = time.perf_counter() - start
    if failed:
        raise SystemExit(f"{failed} requests to {path} failed")
    return done, elapsed


async def _wait_for(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Until the child accepts connections."""
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise SystemExit("server did not start")


async def measure(mode: str, path: str, bodies: list[tuple[bytes, dict[str, str]]], args: argparse.Namespace) -> dict[str, float]:
    """Start a server child, drive one endpoint, stop it; results/s and the server's CPU use."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", mode, "--port", str(port)], cwd=REPO)
    try:
        await _wait_for(port, proc)
        cpu0 = []
        requests, elapsed = await drive(port, path, bodies, args.seconds, args.max_batches, args.concurrency,
                                        lambda: cpu0.append(_cpu_seconds(proc.pid)))
        cpu = _cpu_seconds(proc.pid) - cpu0[0]
        metrics = ""
        if mode == "bridge":
            async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics") as resp:
                metrics = await resp.text()
    finally:
        proc.terminate()
        proc.wait(10)
    accepted = [line for line in metrics.splitlines() if line.startswith("status_bridge_passive_")]
    return {"requests": requests, "seconds": elapsed, "rps": requests * args.batch / elapsed, "cpu": cpu,
            "checks": float(next((line.split()[-1] for line in accepted if "passive_checks " in line), "nan"))}


def _held_results(n: int, start: int = 0, state: int = 0) -> list[dict[str, object]]:
    """Results for held checks start..start+n-1, spread over the 10 components' hosts."""
    return [{"host": f"bench-{k % 10}-{k // 1000:03d}", "service": f"held-{k}", "state": state, "output": "ok"}
            for k in range(start, start + n)]


async def one_push_cost(held: int, pushes: int) -> dict[str, float]:
    """Server CPU per single pushed result (request and its own publish) with `held` checks held."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", "bridge", "--port", str(port)], cwd=REPO)
    url = f"http://127.0.0.1:{port}{NATIVE}"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    try:
        await _wait_for(port, proc)
        async with aiohttp.ClientSession() as s:
            for start in range(0, held, 2_000):  # fill the store (~160 KB per request)
                body = json.dumps({"results": _held_results(min(2_000, held - start), start)})
                async with s.post(url, data=body, headers=headers) as resp:
                    assert resp.status == 200, await resp.text()
            await asyncio.sleep(6.0)  # the full publishes of the fill are done
            full0 = await _full_collections(s, port)
            cpu0, took = _cpu_seconds(proc.pid), 0.0
            for i in range(pushes):  # one result each, one publish each (publishes are >= 0.15 s apart)
                body = json.dumps({"results": _held_results(1, (i * 7919) % held, 1 + i % 3)})
                start = time.perf_counter()
                async with s.post(url, data=body, headers=headers) as resp:
                    assert (await resp.json())["accepted"] == 1
                took += time.perf_counter() - start
                await asyncio.sleep(0.3)
            cpu = _cpu_seconds(proc.pid) - cpu0
            full = await _full_collections(s, port) - full0
            async with s.get(f"http://127.0.0.1:{port}/metrics") as resp:
                metrics = await resp.text()
    finally:
        proc.terminate()
        proc.wait(10)
    count = next(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("status_bridge_passive_checks "))
    return {"cpu_ms": cpu / pushes * 1e3, "answer_ms": took / pushes * 1e3, "held": count, "full_gc": full}


async def _full_collections(session: aiohttp.ClientSession, port: int) -> float:
    """How many full (generation 2) garbage collections the server ran so far."""
    async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    return float(next(line.split()[-1] for line in text.splitlines()
                      if line.startswith('python_gc_collections_total{generation="2"}')))


async def held_case(args: argparse.Namespace) -> None:
    """Print the cost of one push with --held checks held against a 1,000-held baseline of the same run."""
    base = await one_push_cost(1_000, args.pushes)
    big = await one_push_cost(args.held, args.pushes)
    print(f"\none pushed result, its request and its publish ({args.pushes} pushes each, 0.3 s apart):")
    print(f"{'held checks':>12} {'server CPU/push':>16} {'answer':>9} {'full GCs meanwhile':>19}")
    for row in (base, big):
        print(f"{row['held']:>12,.0f} {row['cpu_ms']:>13.2f} ms {row['answer_ms']:>6.2f} ms {row['full_gc']:>19.0f}")
    print(f"ratio {big['cpu_ms'] / base['cpu_ms']:.2f} ({args.held:,} held vs 1,000 held; an update costing O(changed) "
          "gives ~1, besides the interpreter's full GCs, which walk every object)")


async def main(args: argparse.Namespace) -> None:
    """Run baseline and bridge for each endpoint and print the table; then the held-checks case."""
    _pin(1)
    if args.held:
        await held_case(args)
    rows = []
    for label, path, build in (("nrdp (json)", NRDP, nrdp_body), ("native", NATIVE, native_body)):
        bodies = [build(args.batch, k * args.batch) for k in range(HOSTS * SERVICES // args.batch)]
        base = await measure("baseline", path, bodies, args)
        bridge = await measure("bridge", path, bodies, args)
        rows.append((label, base, bridge))
    print(f"batches of {args.batch}, {args.concurrency} concurrent requests, {args.seconds:g} s per run, "
          f"server pinned to one CPU, Python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}")
    print(f"{'endpoint':<12} {'baseline res/s':>14} {'bridge res/s':>12} {'ratio':>6} {'server CPU':>10} "
          f"{'µs CPU/result':>13} {'res/CPU-s':>10} {'base res/CPU-s':>14} {'held':>7}")
    for label, base, bridge in rows:
        per = bridge["cpu"] / (bridge["requests"] * args.batch)
        base_per = base["cpu"] / (base["requests"] * args.batch)
        print(f"{label:<12} {base['rps']:>14,.0f} {bridge['rps']:>12,.0f} {bridge['rps'] / base['rps']:>6.2f} "
              f"{bridge['cpu'] / bridge['seconds']:>10.0%} {per * 1e6:>13.1f} {1 / per:>10,.0f} {1 / base_per:>14,.0f} "
              f"{bridge['checks']:>7,.0f}")
    worst = min(bridge["rps"] for _, _, bridge in rows)
    print(f"target >= 5,000 results/s: {'met' if worst >= 5000 else 'MISSED'} (slowest endpoint {worst:,.0f}/s); "
          "res/CPU-s = what one saturated core could take")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run (default 5)")
    p.add_argument("--batch", type=int, default=100, help="results per request (default 100)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    p.add_argument("--max-batches", type=int, default=100_000, help="stop a run after this many requests")
    p.add_argument("--held", type=int, default=120_000, help="checks held for the single-push case (0: skip it)")
    p.add_argument("--pushes", type=int, default=40, help="single pushes measured per held size (default 40)")
    p.add_argument("--serve", choices=["bridge", "baseline"], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.serve:
        serve(a.serve, a.port)
    else:
        asyncio.run(main(a))
