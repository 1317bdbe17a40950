"""Benchmark: component metrics over a year of history (10,000 transitions) against a bare SQL read of the rows.

    .venv/bin/python bench/metrics.py [-t TRANSITIONS] [-n RUNS] [--others N]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlite_utils import Database

from bridge.config import Component, Config, Group
from bridge.database import open_db
from bridge.encoded import Encoded
from bridge.history import EFFECTIVE, Record, append_records, impact_of
from bridge.live import Live
from bridge.model import Snapshot
from bridge.render.sorry_metrics import metrics_doc
from bridge.storage import add_update, create_notice, list_notices
from bridge.uptime import Metrics, metrics

DAY = 86400.0
YEAR = 365 * DAY
PAGE = 25


def config(components: int) -> Config:
    """One group: "target" plus `components - 1` others."""
    ids = ["target", *(f"c{i:04d}" for i in range(components - 1))]
    return Config(page_url="https://status.example.org",
                  groups=(Group("g", "G", components=tuple(Component(i, i, "g") for i in ids)),))


def fill(db: Database, ids: list[str], transitions: int, others: int, now: float, rng: random.Random) -> None:
    """`transitions` up/down rows for "target" over the past year, `others` rows for every other id, and notices."""
    def series(cid: str, count: int) -> list[Record]:
        # count / 2 outages at random times, each lasting ~30 min on average (never into the next one).
        starts = sorted(rng.uniform(now - YEAR, now) for _ in range(count // 2))
        out = [Record(cid, EFFECTIVE, "up", now - YEAR - DAY)]
        for i, t in enumerate(starts):
            limit = starts[i + 1] if i + 1 < len(starts) else now
            out += [Record(cid, EFFECTIVE, "down", t), Record(cid, EFFECTIVE, "up", min(t + rng.expovariate(1 / 1800), limit))]
        return out

    for cid in ids:
        rows = series(cid, transitions if cid == "target" else others)
        for i in range(0, len(rows), 5000):
            append_records(db, rows[i : i + 5000])
    for _ in range(200):  # a year of incidents on the target, a quarter of them overlapping an outage
        began = rng.uniform(now - YEAR, now - DAY)
        n = create_notice(db, type="unplanned", subject="Incident", state="investigating", content="x",
                          now=began, began_at=began, components=["target"])
        add_update(db, n.id, state="resolved", content="ok", now=began + rng.uniform(60, 4 * 3600))


def best(fns: list[Callable[[], object]], runs: int) -> list[float]:
    """Best wall time of each fn over runs, interleaved so a noisy moment hits them alike (seconds)."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, out in zip(fns, times):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return [min(t) for t in times]


def main() -> None:
    """Build the database, then time the baseline and the metrics side by side."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-t", "--transitions", type=int, default=10_000)
    ap.add_argument("-n", "--runs", type=int, default=30)
    ap.add_argument("--others", type=int, default=1_000, help="rows for each of 99 other components")
    args = ap.parse_args()
    rng = random.Random(42)
    now = datetime(2024, 6, 30, 12, tzinfo=timezone.utc).timestamp()
    cfg = config(100)
    ids = [c.id for c in cfg.components()]
    with tempfile.TemporaryDirectory() as tmp:
        db = open_db(Path(tmp) / "bench.sqlite")
        t = time.perf_counter()
        fill(db, ids, args.transitions, args.others, now, rng)
        total_rows = db.execute("select count(*) from history").fetchone()[0]
        print(f"setup: {total_rows:,} history rows ({args.transitions:,} for the target) in {time.perf_counter() - t:.1f} s")
        live = Live(cfg, lambda: now)
        live.set_notices(list_notices(db), [], now)
        snap: Snapshot = live.snapshot
        start, end = now - YEAR, now
        first = datetime.fromtimestamp(start, timezone.utc).date()
        last = datetime.fromtimestamp(end, timezone.utc).date()

        def baseline() -> object:
            return db.execute(
                "select at, status from history where component_id = ? and kind = ? and at >= ? and at < ? order by at, id",
                ["target", EFFECTIVE, start, end]).fetchall()

        def year_metrics() -> object:
            return Encoded.of(metrics_doc(snap, "target", first, last, over("target", start), (start, end - 1), now, True))

        def over(cid: str, a: float) -> Metrics:
            impact = impact_of(db, snap, cid, a, end, now)
            assert impact is not None  # every id is in the snapshot
            return metrics(impact, a, end)

        def summaries_page() -> object:
            return [over(cid, now - 30 * DAY) for cid in ids[:PAGE]]

        rows = len(baseline())  # type: ignore[arg-type]
        base, full, page = best([baseline, year_metrics, summaries_page], args.runs)
        m = over("target", start)
        uptime = "n/a" if m.percent is None else f"{m.percent:.3f}%"
        print(f"target: {rows:,} rows in the year, {m.episodes:,} impact episodes, uptime {uptime}")
        print(f"baseline (bare SQL read of the rows)  {base * 1000:7.2f} ms")
        print(f"metrics, 12 months, with calc. data   {full * 1000:7.2f} ms  = {full / base:.2f} x baseline (target < 50 ms)")
        print(f"metrics_summary for a page of {PAGE}      {page * 1000:7.2f} ms  (30 days each, uncached)")
        db.close()


if __name__ == "__main__":
    main()
