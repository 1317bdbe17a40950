"""End-to-end latency: status.dat replaced (temp file + rename, as Nagios does) -> /api/services.json shows it.

Usage: e2e_latency.py [--sizes 1k 100k] [--flips N] [--conns 4] [--interval 0.01]

For each corpus size, in one run:

- baseline: read + parse() of the same file in a fresh interpreter (best of 3), the floor of any
  bridge that parses status.dat;
- the real daemon (`python -m bridge run`, pinned to CPU 0) with a 100-component config plus a
  one-check "probe" component; the bench (pinned to CPU 1) flips that check's state in the corpus
  bytes, writes the file like Nagios and polls the feed until the probe's status follows;
- meanwhile `--conns` keep-alive clients GET /api/services.json every `--interval` s, and their
  latencies are split into requests made while a new file was being taken in (from the rename
  to the feed showing it: read, parse, publish) and requests made while idle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
from _common import (  # noqa: E402
    config_toml,
    corpus_file,
    free_port,
    fresh,
    median,
    pct,
    pin,
    python,
    stop,
    wait_http,
)

TARGETS = {"1k": 0.150, "10k": 0.5, "100k": 1.5}  # median e2e latency targets, seconds
P99_TARGET = 0.050  # feed requests served while a 100k file is taken in


def pick_probe(data: bytes) -> tuple[str, str]:
    """A service that is OK (hard, checked, no downtime) on a host that is UP: flipping it is visible."""
    from bridge.statusdat import parse

    parsed = parse(data)
    for (host, service), s in parsed.services.items():
        h = parsed.hosts.get(host)
        if (
            h is not None and h.has_been_checked and h.current_state == 0 and h.last_hard_state == 0
            and not h.downtime_depth and s.has_been_checked and s.state_type == 1 and s.current_state == 0
            and s.last_hard_state == 0 and not s.downtime_depth
        ):
            return host, service
    raise SystemExit("no OK service on an UP host in the corpus")


def flipped(data: bytes, host: str, service: str) -> bytes:
    """The bytes with that service CRITICAL (hard): current_state and last_hard_state 0 -> 2, same length."""
    head = b"\thost_name=%s\n\tservice_description=%s\n" % (host.encode(), service.encode())
    start = data.index(head)
    end = data.index(b"\n\t}\n", start)
    block = data[start:end]
    for key in (b"current_state", b"last_hard_state"):
        assert b"\t%s=0\n" % key in block
        block = block.replace(b"\t%s=0\n" % key, b"\t%s=2\n" % key, 1)
    return data[:start] + block + data[end:]


def bare_parse_seconds(path: Path, runs: int = 3) -> float:
    """Best read+parse time of the file in a fresh interpreter."""
    code = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
        "from bridge.statusdat import parse\n"
        "best = 1e9\n"
        f"for _ in range({runs}):\n"
        "    t = time.perf_counter()\n"
        f"    with open({str(path)!r}, 'rb') as f: d = parse(f.read())\n"
        "    best = min(best, time.perf_counter() - t)\n"
        "    del d\n"
        "print(best)\n"
    )
    return float(subprocess.run([python(), "-c", code], check=True, capture_output=True, text=True).stdout)


def write_like_nagios(path: Path, data: bytes) -> float:
    """Temp file in the same directory, fsync, rename over status.dat; return perf_counter() at the rename."""
    tmp = path.with_name(f"nagios.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    return time.perf_counter()


def probe_status(body: bytes) -> str | None:
    """The probe component's shown status in a services.json body."""
    doc = json.loads(body)
    for g in doc["groups"]:
        for s in g["services"]:
            if s["id"] == "probe":
                return None if doc.get("stale") else s["status"]
    return None


@dataclass
class Load:
    """Latencies of the background feed clients: (start, seconds, status)."""

    samples: list[tuple[float, float, int]] = field(default_factory=list)
    stop: bool = False


async def load_client(url: str, interval: float, load: Load) -> None:
    """One keep-alive client requesting the feed every interval seconds."""
    async with aiohttp.ClientSession() as session:
        while not load.stop:
            t0 = time.perf_counter()
            async with session.get(url) as r:
                await r.read()
                status = r.status
            load.samples.append((t0, time.perf_counter() - t0, status))
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - t0)))


async def wait_for(session: aiohttp.ClientSession, url: str, want: str, timeout: float, every: float) -> float:
    """Poll the feed until the probe shows want; return perf_counter() at that answer."""
    deadline = time.perf_counter() + timeout
    while True:
        async with session.get(url) as r:
            body = await r.read()
        now = time.perf_counter()
        if probe_status(body) == want:
            return now
        if now > deadline:
            raise SystemExit(f"the feed did not show the probe as {want} within {timeout:g} s")
        await asyncio.sleep(every)


async def measure(url: str, path: Path, variants: list[bytes], args: argparse.Namespace) -> tuple[list[float], Load, list]:
    """Flip the probe args.flips times; return the e2e latencies, the load samples and the take-in windows."""
    load = Load()
    clients = [asyncio.create_task(load_client(url, args.interval, load)) for _ in range(args.conns)]
    latencies, windows = [], []
    async with aiohttp.ClientSession() as session:
        await wait_for(session, url, "up", 120, 0.05)
        await asyncio.sleep(args.settle)
        for i in range(args.flips):
            want = "down" if i % 2 == 0 else "up"
            renamed = await asyncio.to_thread(write_like_nagios, path, variants[(i + 1) % 2])
            seen = await wait_for(session, url, want, args.timeout, args.poll)
            latencies.append(seen - renamed)
            windows.append((renamed, seen))
            await asyncio.sleep(args.settle)
    load.stop = True
    await asyncio.gather(*clients)
    return latencies, load, windows


def split(load: Load, windows: list[tuple[float, float]]) -> tuple[list[float], list[float], int]:
    """(latencies of requests started during a take-in window, of the others, non-200 answers)."""
    busy, idle, bad = [], [], 0
    for start, seconds, status in load.samples:
        bad += status != 200
        (busy if any(a <= start <= b for a, b in windows) else idle).append(seconds)
    return busy, idle, bad


def run_size(size: str, args: argparse.Namespace, tmp: Path) -> dict:
    """One corpus size: baseline, daemon, flips; print and return the figures."""
    plain = corpus_file(size, tmp)
    data = fresh(plain.read_bytes())
    host, service = pick_probe(data)
    variants = [data, flipped(data, host, service)]
    work = tmp / f"e2e-{size}"
    work.mkdir(exist_ok=True)
    statusdat = work / "status.dat"
    statusdat.write_bytes(data)
    config = config_toml(statusdat, probe=(host, service))
    (work / "bridge.toml").write_text(config)
    bare = bare_parse_seconds(statusdat)
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}/api/services.json"
    proc = subprocess.Popen(
        [python(), "-m", "bridge", "--log-level", "warning", "run", "-c", str(work / "bridge.toml"),
         "--db", str(work / "bridge.db"), "--listen", f"127.0.0.1:{port}"],
        cwd=str(Path(__file__).resolve().parents[1]),
    )
    try:
        pinned = pin(proc.pid, 0) and pin(0, 1)
        wait_http(url, 120, proc)
        latencies, load, windows = asyncio.run(measure(url, statusdat, variants, args))
    finally:
        stop(proc)
    busy, idle, bad = split(load, windows)
    if args.dump:
        args.dump.write_text(json.dumps({"samples": load.samples, "windows": windows}))
    med = median(latencies)
    target = TARGETS.get(size)
    print(f"\n== status-{size}: {len(data) / 1e6:.1f} MB, probe {host!r}/{service!r}, "
          f"{'server on CPU 0, bench on CPU 1' if pinned else 'not pinned'}")
    print(f"baseline  bare read+parse (fresh process, best of 3)  {bare * 1e3:8.1f} ms")
    print(f"e2e       rename -> feed shows it, {len(latencies)} flips:  median {med * 1e3:8.1f} ms"
          f"  (min {min(latencies) * 1e3:.1f}, max {max(latencies) * 1e3:.1f})"
          + (f"  target <= {target * 1e3:.0f} ms: {'met' if med <= target else 'MISSED'}" if target else ""))
    print(f"ratio     e2e median / bare parse  {med / bare:8.2f}")
    print(f"feed requests while a file is taken in: {len(busy):5d}  p50 {pct(busy, 50) * 1e3:6.1f} ms"
          f"  p99 {pct(busy, 99) * 1e3:6.1f} ms  max {max(busy, default=float('nan')) * 1e3:6.1f} ms"
          + (f"  target p99 <= {P99_TARGET * 1e3:.0f} ms: {'met' if pct(busy, 99) <= P99_TARGET else 'MISSED'}"
             if size == "100k" else ""))
    print(f"feed requests while idle:              {len(idle):5d}  p50 {pct(idle, 50) * 1e3:6.1f} ms"
          f"  p99 {pct(idle, 99) * 1e3:6.1f} ms  max {max(idle, default=float('nan')) * 1e3:6.1f} ms"
          f"  (p99 ratio busy/idle {pct(busy, 99) / pct(idle, 99):.2f})")
    if bad:
        print(f"WARNING   {bad} feed answers were not 200")
    return {"size": size, "median": med, "bare": bare, "busy_p99": pct(busy, 99), "idle_p99": pct(idle, 99)}


def main() -> None:
    """Parse arguments, run every size."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["1k", "100k"], choices=["1k", "10k", "100k"])
    ap.add_argument("--flips", type=int, default=0, help="state flips per size (default 20 for 1k/10k, 8 for 100k)")
    ap.add_argument("--conns", type=int, default=4, help="background feed clients (default 4)")
    ap.add_argument("--interval", type=float, default=0.01, help="seconds between one client's requests")
    ap.add_argument("--poll", type=float, default=0.005, help="seconds between the detecting client's polls")
    ap.add_argument("--settle", type=float, default=0.5, help="idle seconds after each flip")
    ap.add_argument("--timeout", type=float, default=30.0, help="give up on one flip after this many seconds")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--dump", type=Path, help="write the raw request samples and windows to this JSON file")
    ap.add_argument("--tmp", type=Path, help="directory for the decompressed corpus (default: a temp dir)")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} cores; numbers are noisy on a shared machine")
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as default_tmp:
        tmp = args.tmp or Path(default_tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        for size in args.sizes:
            flips_given = args.flips
            args.flips = flips_given or (8 if size == "100k" else 20)
            run_size(size, args, tmp)
            args.flips = flips_given


if __name__ == "__main__":
    main()
