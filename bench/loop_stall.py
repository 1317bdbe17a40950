"""Benchmark: how long the event loop pauses while a status.dat is taken in and published, against doing it on the loop.

    .venv/bin/python bench/loop_stall.py [--size 100k] [-r ROUNDS] [--pushed N]

The tests prove the structure (the work runs in worker threads, in chunks, and publishing prepared
data counts nothing on the loop); this measures what that structure buys, in one process, with the
corpus file and the realistic 100-component config of the other benchmarks. A ticker sleeping 1 ms
at a time on the loop records the longest the loop kept it waiting (its "max gap"). Three cases,
each against a baseline measured in the same round (rounds interleaved, medians reported):

- take-in: `read_and_parse` + `Live.prepare` in a worker thread (as the tailer runs it, switch
  interval lowered) -> max gap, against the same call made on the loop (the whole of it is a stall);
- publish: `Live.update` of the prepared data on the loop, against `aggregate` of the same data
  with a fresh Matcher (what publishing cost before it was prepared: globs resolved, checks counted);
- two sources: `Live.publish_source` of a new status.dat beside N pushed results (merge and prepare
  in a worker thread) -> max gap, against `Live.update_source` (merge and aggregate on the loop).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import config_toml, corpus_file  # noqa: E402

from bridge import statusdat  # noqa: E402
from bridge.aggregate import aggregate  # noqa: E402
from bridge.config import Config  # noqa: E402
from bridge.config_load import parse_config  # noqa: E402
from bridge.live import Live  # noqa: E402
from bridge.matching import Matcher  # noqa: E402
from bridge.merge import SourceView  # noqa: E402
from bridge.model import SourceHealth, StatusData  # noqa: E402
from bridge.statusdat_file import read_and_parse  # noqa: E402
from bridge.tail import loop_priority  # noqa: E402


async def max_gap_while(work: Callable[[], Awaitable[object]]) -> float:
    """Await work() while a 1 ms ticker runs on the loop: the longest it was kept waiting, seconds."""
    gaps: list[float] = []
    done = False

    async def tick() -> None:
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)  # ticking before the work starts
    try:
        await work()
    finally:
        done = True
        await ticker
    return max(gaps, default=0.0)


def timed(fn: Callable[[], object]) -> float:
    """Wall time of one call, seconds (on the loop's thread: all of it is a stall)."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def pushed(data: StatusData, n: int) -> StatusData:
    """n of data's services as passive results, newer than the file's."""
    states = [s._replace(current_state=(s.current_state + 1) % 4, last_check=s.last_check + 60)
              for s in list(data.services.values())[:n]]  # fmt: skip
    return StatusData(created=data.created + 60, version=None, hosts={},
                      services={(s.host, s.service): s for s in states})  # fmt: skip


def two_source_live(config: Config, core: SourceView, push: SourceView) -> Live:
    """A Live already publishing both sources (set up on the loop, not measured)."""
    live = Live(config)
    live.update_source(core)
    live.update_source(push)
    return live


async def one_round(path: Path, config: Config, pushes: StatusData) -> dict[str, float]:
    """Every measurement once, each with fresh objects (no cache carried over from an earlier round)."""
    fresh = SourceHealth(stale=False, data_created=time.time())
    out: dict[str, float] = {}

    # take-in, baseline: on the loop.
    live = Live(config)
    out["take_in_on_loop"] = timed(lambda: read_and_parse(path, statusdat.parse, live.prepare))
    # take-in, as the tailer does it.
    live = Live(config)
    box: list[StatusData | None] = []

    async def take_in() -> None:
        with loop_priority():
            box.append((await asyncio.to_thread(read_and_parse, path, statusdat.parse, live.prepare)).data)

    out["take_in_gap"] = await max_gap_while(take_in)
    data = box[0]
    assert data is not None

    # publish: prepared (above) vs the same data aggregated cold.
    out["aggregate_cold"] = timed(lambda: aggregate(data, fresh, config, time.time(), Matcher()))
    out["publish_prepared"] = timed(lambda: live.update(data, fresh))

    # two sources: a new file beside pushed results.
    old = SourceView("statusdat", read_and_parse(path, statusdat.parse).data, fresh)
    new = SourceView("statusdat", read_and_parse(path, statusdat.parse).data, fresh)
    push = SourceView("passive", pushes, fresh, annotated=False)
    on_loop = two_source_live(config, old, push)
    out["two_sources_on_loop"] = timed(lambda: on_loop.update_source(new))
    off_loop = two_source_live(config, old, push)

    async def publish() -> None:
        with loop_priority():
            await off_loop.publish_source(new)

    out["two_sources_gap"] = await max_gap_while(publish)
    return out


def main() -> None:
    """Set up once, then run the rounds and print medians and ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="100k", help="corpus size: 1k, 10k or 100k (default 100k)")
    ap.add_argument("-r", "--rounds", type=int, default=3)
    ap.add_argument("--pushed", type=int, default=200, help="passive results beside the file (default 200)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = corpus_file(args.size, Path(tmp))
        config = parse_config(config_toml(path))
        pushes = pushed(statusdat.parse(path.read_bytes()), args.pushed)
        services = len(statusdat.parse(path.read_bytes()).services)
        gc.collect()
        gc.freeze()  # as the daemon does after start-up: full collections skip what is here already
        rounds = [asyncio.run(one_round(path, config, pushes)) for _ in range(args.rounds)]
    m = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    worst = {k: max(r[k] for r in rounds) for k in rounds[0]}
    ms = 1000.0
    print(f"status-{args.size}: {services:,} services, {len(config.components())} components, "
          f"{args.pushed} pushed results, {args.rounds} rounds (medians; worst in brackets)")
    print(f"take-in on the loop (baseline)     {m['take_in_on_loop'] * ms:8.1f} ms")
    print(f"take-in in a worker: max loop gap  {m['take_in_gap'] * ms:8.1f} ms  [{worst['take_in_gap'] * ms:.1f}]"
          f"  = {m['take_in_gap'] / m['take_in_on_loop']:.3f} x baseline")
    print(f"aggregate, cold Matcher (baseline) {m['aggregate_cold'] * ms:8.1f} ms")
    print(f"publish prepared data, on the loop {m['publish_prepared'] * ms:8.1f} ms  [{worst['publish_prepared'] * ms:.1f}]"
          f"  = {m['publish_prepared'] / m['aggregate_cold']:.3f} x baseline")
    print(f"two sources, on the loop (baseline){m['two_sources_on_loop'] * ms:8.1f} ms")
    print(f"two sources, off it: max loop gap  {m['two_sources_gap'] * ms:8.1f} ms  [{worst['two_sources_gap'] * ms:.1f}]"
          f"  = {m['two_sources_gap'] / m['two_sources_on_loop']:.3f} x baseline (target < 0.33)")


if __name__ == "__main__":
    main()
