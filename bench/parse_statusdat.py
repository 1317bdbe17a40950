"""Benchmark bridge.statusdat.parse against the data.split(b"\\n") floor on one status.dat.

Usage: parse_statusdat.py FILE [-n RUNS]   (FILE may be .gz; it is decompressed before timing)

Each measurement runs in a fresh child interpreter so that its peak RSS (ru_maxrss)
covers only the input bytes plus that one operation, never the other one's garbage.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _child(mode: str, path: str, runs: int) -> None:
    """Time one operation best-of-runs on the file's bytes; print JSON to stdout."""
    sys.path.insert(0, str(ROOT))
    from bridge.statusdat import parse

    data = Path(path).read_bytes()
    base_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    op = (lambda: data.split(b"\n")) if mode == "split" else (lambda: parse(data))
    best, cpu, info = float("inf"), (0.0, 0.0), ""
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        result = op()
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        if elapsed < best:
            best, cpu = elapsed, (after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime)
        if mode == "parse":
            info = f"{len(result.hosts)} hosts, {len(result.services)} services"
        del result  # the next run must not coexist with this result
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"best": best, "cpu": cpu, "peak_kb": peak_kb, "base_kb": base_rss_kb, "info": info}))


def _measure(mode: str, path: Path, runs: int) -> dict:
    """Run one measurement in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path), "-n", str(runs)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def _best(mode: str, path: Path, runs: int, into: dict) -> None:
    """Fold one more child's measurement into the running best (and worst peak RSS)."""
    got = _measure(mode, path, runs)
    old = into.get(mode)
    if old is None:
        into[mode] = got
    else:
        old["peak_kb"] = max(old["peak_kb"], got["peak_kb"])
        old["best"] = min(old["best"], got["best"])


def main() -> None:
    """Decompress if needed, measure floor and parser, print the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("-n", "--runs", type=int, default=3, help="runs per child process (default 3)")
    ap.add_argument(
        "-r", "--rounds", type=int, default=3, help="child processes per measurement, interleaved (default 3)"
    )
    ap.add_argument("--child", choices=["split", "parse"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, str(args.file), args.runs)
        return
    with tempfile.TemporaryDirectory() as tmp:
        plain = args.file
        if args.file.suffix == ".gz":
            plain = Path(tmp) / args.file.stem
            with gzip.open(args.file, "rb") as src, plain.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        size = plain.stat().st_size
        # Interleave the two so that a noisy moment on the machine hits both alike.
        best: dict = {}
        for _ in range(args.rounds):
            _best("split", plain, args.runs, best)
            _best("parse", plain, args.runs, best)
        floor, parsed = best["split"], best["parse"]
    mb = size / 1e6
    ratio = parsed["best"] / floor["best"]
    peak_mb = parsed["peak_kb"] * 1024 / 1e6
    own_mb = (parsed["peak_kb"] - parsed["base_kb"]) * 1024 / 1e6

    def cpu(m: dict) -> str:
        return f"(user {m['cpu'][0] * 1e3:.0f} ms, sys {m['cpu'][1] * 1e3:.0f} ms)"

    print(f"file            {args.file.name}: {mb:.1f} MB, {parsed['info']}")
    print(
        f"python          {sys.version.split()[0]} on {os.cpu_count()} cores;"
        f" best of {args.rounds} fresh processes x {args.runs} runs each"
    )
    print(f"split floor     {floor['best'] * 1e3:8.1f} ms {cpu(floor)}"
          f"  peak RSS {floor['peak_kb'] * 1024 / 1e6:.1f} MB")
    print(f"parse           {parsed['best'] * 1e3:8.1f} ms {cpu(parsed)}  {mb / parsed['best']:.0f} MB/s")
    print(f"ratio           {ratio:8.2f} x floor (target <= 1.5)")
    print(f"parse peak RSS  {peak_mb:8.1f} MB = {peak_mb / mb:.2f} x file size (target <= 2.5)")
    print(f"  of which      {peak_mb - own_mb:8.1f} MB interpreter + input bytes,"
          f" {own_mb:.1f} MB = {own_mb / mb:.2f} x file size the parse itself")

if __name__ == "__main__":
    main()
