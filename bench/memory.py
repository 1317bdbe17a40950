"""Memory: RSS of the daemon holding a 100k-service snapshot, against a bare python + aiohttp process.

Usage: memory.py [--size 100k] [--rewrites 3]

In one run:

- baseline: a bare `python` serving one aiohttp handler (interpreter + aiohttp, nothing else);
- the bridge: `python -m bridge run` on the corpus status.dat with a 100-component config,
  measured once its first snapshot is published, then after each of `--rewrites` rewrites of
  the file (a state flipped, written like Nagios: temp file + rename), once the feed shows it.

VmRSS is what the process holds now; VmHWM its peak so far (while a new file is read and
parsed, the old snapshot is still published, so the peak is the steady state plus one parse).
"""

from __future__ import annotations

import argparse
import json
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
    python,
    stop,
    wait_http,
)
from e2e_latency import flipped, pick_probe, probe_status, write_like_nagios  # noqa: E402

TARGET_MB = 400.0

BARE = r'''
import sys
from aiohttp import web
async def handler(request):
    return web.Response(body=b"{}", content_type="application/json")
app = web.Application()
app.router.add_get("/api/services.json", handler)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
'''


def status_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB (from /proc)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def mb(kb: int) -> float:
    """kB (as /proc counts them, KiB) in MB."""
    return kb * 1024 / 1e6


def probe(url: str) -> str | None:
    """The probe component's status in the feed, None while stale or before the first snapshot."""
    with urllib.request.urlopen(url, timeout=10) as r:
        body = r.read()
    if json.loads(body)["last_updated"] is None:
        return None
    return probe_status(body)


def wait_probe(url: str, want: str, timeout: float) -> None:
    """Poll until the feed shows the probe as want."""
    deadline = time.monotonic() + timeout
    while probe(url) != want:
        if time.monotonic() > deadline:
            raise SystemExit(f"the feed did not show the probe as {want} within {timeout:g} s")
        time.sleep(0.05)


def main() -> None:
    """Measure the baseline, then the bridge at its first snapshot and after rewrites."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="100k", choices=["1k", "10k", "100k"])
    ap.add_argument("--rewrites", type=int, default=3, help="status.dat rewrites after the first snapshot (default 3)")
    ap.add_argument("--tmp", type=Path, help="directory for the decompressed corpus (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmpdir:
        tmp = Path(tmpdir)
        data = fresh(corpus_file(args.size, args.tmp or tmp).read_bytes())
        host, service = pick_probe(data)
        variants = [data, flipped(data, host, service)]
        statusdat = tmp / "status.dat"
        statusdat.write_bytes(data)
        (tmp / "bridge.toml").write_text(config_toml(statusdat, probe=(host, service)))

        port = free_port()
        bare = subprocess.Popen([python(), "-c", BARE, str(port)])
        try:
            wait_http(f"http://127.0.0.1:{port}/api/services.json", 30, bare)
            baseline = status_kb(bare.pid)
        finally:
            stop(bare)

        port = free_port()
        url = f"http://127.0.0.1:{port}/api/services.json"
        started = time.monotonic()
        bridge = subprocess.Popen(
            [python(), "-m", "bridge", "--log-level", "warning", "run", "-c", str(tmp / "bridge.toml"),
             "--db", str(tmp / "bridge.db"), "--listen", f"127.0.0.1:{port}"],
            cwd=str(ROOT),
        )
        rows = []
        try:
            wait_http(url, 120, bridge)
            wait_probe(url, "up", 120)
            rows.append((f"first snapshot ({time.monotonic() - started:.1f} s after start)", status_kb(bridge.pid)))
            for i in range(args.rewrites):
                want = "down" if i % 2 == 0 else "up"
                write_like_nagios(statusdat, variants[(i + 1) % 2])
                wait_probe(url, want, 60)
                time.sleep(0.5)  # let the old snapshot be freed
                rows.append((f"after rewrite {i + 1}", status_kb(bridge.pid)))
        finally:
            stop(bridge)
    size_mb = len(data) / 1e6
    print(f"python {sys.version.split()[0]}; status-{args.size}: {size_mb:.1f} MB; 100 components + probe")
    print(f"{'process':44} {'VmRSS':>9} {'VmHWM':>9} {'RSS - baseline':>15}")
    print(f"{'baseline: bare python + aiohttp':44} {mb(baseline['VmRSS']):7.1f}MB {mb(baseline['VmHWM']):7.1f}MB")
    for label, kb in rows:
        print(f"{'bridge, ' + label:44} {mb(kb['VmRSS']):7.1f}MB {mb(kb['VmHWM']):7.1f}MB"
              f" {mb(kb['VmRSS'] - baseline['VmRSS']):13.1f}MB")
    worst = max(mb(kb["VmRSS"]) for _, kb in rows)
    peak = max(mb(kb["VmHWM"]) for _, kb in rows)
    print(f"largest VmRSS {worst:.1f} MB = {worst / mb(baseline['VmRSS']):.1f} x baseline;"
          f" target <= {TARGET_MB:.0f} MB: {'met' if worst <= TARGET_MB else 'MISSED'}"
          f" (peak VmHWM {peak:.1f} MB, {'within' if peak <= TARGET_MB else 'above'} it too)")


if __name__ == "__main__":
    main()
