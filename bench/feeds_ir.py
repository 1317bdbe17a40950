"""Feed serving counted in CPU instructions per request (callgrind): the bridge vs a bare aiohttp handler.

Usage: feeds_ir.py [--requests 2000]

feeds.py's requests/s swing by 10-20 % between runs of the very same server on a shared VM;
instruction counts hardly do (repeat runs agree within ~2 %, the bridge's counted totals within
0.5 %). So this runs each server under `valgrind --tool=callgrind --instr-atstart=no`, over real
HTTP on 127.0.0.1:

- the bridge: the real daemon on the 1k corpus with the bench config (as feeds.py);
- bare+hdr: feeds.py's bare aiohttp handler returning the bridge's bytes and headers;
- bare: the same handler sending only the body and Content-Type.

For each endpoint, counting is switched on for exactly N keep-alive requests sent one after the
other over one connection (each answer read before the next request), then off. The daemon's idle
work (the status.dat watcher, the scheduler's poll) runs on wall-clock time, and under valgrind a
request takes ~40x longer, so that work would be charged to requests ~40x over: it is measured
in an idle window before each endpoint and its median rate subtracted pro rata (both figures are
printed; the subtracted one varies by a few %, with which timers a window catches). The ratio
bare / bridge is what throughput would be if both ran at the same instructions per cycle.
"""

from __future__ import annotations

import argparse
import glob
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    ROOT,
    config_toml,
    corpus_file,
    free_port,
    fresh,
    python,
    stop,
    wait_http,
)
from feeds import BARE, ENDPOINTS, fetch  # noqa: E402

IDLE_SECONDS = 4.0  # per idle window; one before each endpoint


def get_many(port: int, path: str, n: int, header: str | None) -> None:
    """n sequential keep-alive GETs of path on one connection, each answer read in full."""
    extra = f"{header}\r\n" if header else ""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock, sock.makefile("rb") as answers:
        for _ in range(n):
            sock.sendall(request)
            length = 0
            status = answers.readline()
            if not status.startswith(b"HTTP/1.1 2") and not status.startswith(b"HTTP/1.1 304"):
                raise SystemExit(f"{path}: unexpected answer {status!r}")
            while (line := answers.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            answers.read(length)


class Counted:
    """A server process under callgrind, counting only between on() and off()."""

    def __init__(self, cmd: list[str], out: Path) -> None:
        """Start cmd under callgrind, dumping to out.N."""
        self.out = out
        self.proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}", *cmd],
            cwd=str(ROOT), stderr=subprocess.DEVNULL,
        )

    def _control(self, *args: str) -> None:
        """Send callgrind_control a command for this process."""
        subprocess.run(["callgrind_control", *args, str(self.proc.pid)], check=True, capture_output=True)

    def count(self, work: Callable[[], object]) -> tuple[int, float]:
        """Instructions executed by the server while work() runs, and the seconds it took."""
        before = set(glob.glob(f"{self.out}*"))
        self._control("--zero")
        self._control("--instr=on")
        started = time.monotonic()
        work()
        took = time.monotonic() - started
        self._control("--instr=off")
        self._control("--dump")
        deadline = time.monotonic() + 60
        while not (new := set(glob.glob(f"{self.out}*")) - before) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not new:
            raise SystemExit("callgrind wrote no dump")
        time.sleep(0.5)  # let the dump finish writing
        total = 0
        for name in new:
            for line in Path(name).read_text().splitlines():
                if line.startswith(("summary:", "totals:")):
                    total = max(total, int(line.split()[1]))
            Path(name).unlink()
        return total, took


def clear_of_the_minute(seconds: float) -> None:
    """Wait past the next minute when it would come within seconds.

    /api/v1/components re-renders when its 60 s metrics-summary bucket rolls over (once a minute:
    nothing at 10k requests/s, but ~5k instructions per request over a 2,000-request window under
    valgrind), so no counted window may straddle a minute.
    """
    left = 60 - time.time() % 60
    if left < seconds:
        time.sleep(left + 0.5)


def measure(server: Counted, port: int, n: int, etags: dict[str, str]) -> dict[str, tuple[float, float]]:
    """Per endpoint: instructions per request as counted, and with idle work subtracted."""
    idle_rates: list[float] = []
    counted: dict[str, tuple[int, float]] = {}
    for name, path, etag in ENDPOINTS:
        header = f"If-None-Match: {etags[path]}" if etag and etags else None
        clear_of_the_minute(IDLE_SECONDS + 20)
        get_many(port, path, min(200, n), header)  # warm-up: first-request caches, JSONP and header memos
        idle, idle_took = server.count(lambda: time.sleep(IDLE_SECONDS))
        idle_rates.append(idle / idle_took)
        counted[name] = server.count(lambda: get_many(port, path, n, header))
    # Timers fire when they fire: one window may catch a scheduler poll another misses, so the median rate.
    rate = statistics.median(idle_rates)
    return {name: (total / n, (total - rate * took) / n) for name, (total, took) in counted.items()}


def main() -> None:
    """Start each server under callgrind in turn, count the endpoints, print the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000, help="requests counted per endpoint (default 2000)")
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            print(f"skipped: {tool} is not installed (Debian: apt-get install valgrind)")
            return
    with tempfile.TemporaryDirectory(prefix="bench-feeds-ir-") as tmpdir:
        tmp = Path(tmpdir)
        statusdat = tmp / "status.dat"
        statusdat.write_bytes(fresh(corpus_file("1k", tmp).read_bytes()))
        (tmp / "bridge.toml").write_text(config_toml(statusdat))
        port = free_port()
        bridge = Counted([python(), "-m", "bridge", "--log-level", "warning", "run", "-c", str(tmp / "bridge.toml"),
                          "--db", str(tmp / "bridge.db"), "--listen", f"127.0.0.1:{port}"], tmp / "cg.bridge")
        results = {}
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/api/services.json", 600, bridge.proc)
            while json.loads(fetch(base + "/api/services.json")[1])["last_updated"] is None:
                time.sleep(0.2)
            spec, etags = {}, {}
            for _, path, _ in ENDPOINTS:
                status, body, headers = fetch(base + path)
                spec[path] = (body.hex(), headers)
                etags[path] = headers["ETag"]
            (tmp / "bare.json").write_text(json.dumps(spec))
            results["bridge"] = measure(bridge, port, args.requests, etags)
        finally:
            stop(bridge.proc, 60)
        for mode in ("bare+hdr", "bare"):
            port = free_port()
            bare = Counted([python(), "-c", BARE, str(tmp / "bare.json"), str(port),
                            "headers" if mode == "bare+hdr" else "plain"], tmp / "cg.bare")
            try:
                wait_http(f"http://127.0.0.1:{port}/api/services.json", 300, bare.proc)
                results[mode] = measure(bare, port, args.requests, {})  # no ETags: the 304 line is their 200
            finally:
                stop(bare.proc, 60)
    print(f"python {sys.version.split()[0]}; instructions per request (callgrind), {args.requests} sequential"
          " keep-alive requests per endpoint; idle work measured over"
          f" {len(ENDPOINTS)} windows of {IDLE_SECONDS:g} s (median rate) and subtracted pro rata; as counted in brackets")
    print(f"{'endpoint':20} {'bare':>16} {'bare+hdr':>16} {'bridge':>16} {'bare/bridge':>11} {'+hdr/bridge':>11}"
          f" {'as counted':>10}")
    for name, _, _ in ENDPOINTS:
        raw = {who: results[who][name][0] for who in results}
        net = {who: results[who][name][1] for who in results}
        cells = " ".join(f"{net[w] / 1e3:7.1f}k [{raw[w] / 1e3:5.1f}k]" for w in ("bare", "bare+hdr", "bridge"))
        print(f"{name:20} {cells} {net['bare'] / net['bridge']:11.3f} {net['bare+hdr'] / net['bridge']:11.3f}"
              f" {raw['bare'] / raw['bridge']:10.3f}")
    print("(the 304 line: the bridge revalidating; the bare servers have no ETags, so theirs is a full 200)")


if __name__ == "__main__":
    main()
