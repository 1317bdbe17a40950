"""Demo data source: a random walk of a small estate, written as Nagios 4.4.6 writes status.dat."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bridge.demo.statusdat_writer import (
    HARD,
    MAX_ATTEMPTS,
    SOFT,
    SimObject,
    render_statusdat,
    write_atomic,
)

_SERVICES: dict[str, tuple[str, ...]] = {
    "web-1": ("HTTP", "HTTPS", "Load"),
    "web-2": ("HTTP", "HTTPS", "Load"),
    "db-1": ("PostgreSQL", "Disk /var"),
    "db-2": ("PostgreSQL", "Disk /var"),
    "mail-1": ("SMTP", "IMAP"),
    "vpn-1": ("OpenVPN",),
    "vpn-2": ("OpenVPN",),
    "ldap-1": ("LDAP",),
    "files-1": ("NFS", "Backup"),
}

DEMO_OBJECTS: tuple[SimObject, ...] = (
    *(SimObject(h) for h in _SERVICES),
    *(
        # One standing warning so the first page is not all green.
        SimObject(h, s, state=1, last_hard_state=1) if (h, s) == ("db-2", "Disk /var") else SimObject(h, s)
        for h, services in _SERVICES.items()
        for s in services
    ),
)

def demo_objects(now: int) -> list[SimObject]:
    """DEMO_OBJECTS as just checked at ``now``, each in its state since an earlier, fixed time."""
    out = []
    for i, o in enumerate(DEMO_OBJECTS):
        since = now - 3600 * (i % 7 + 1)
        times = tuple(now if k == o.state else (since if k == 0 else 0) for k in range(4))
        out.append(dataclasses.replace(o, last_check=now, last_state_change=since,
                                       last_hard_state_change=since, last_time=times))  # type: ignore[arg-type]
    return out


def _check(o: SimObject, state: int, now: int) -> SimObject:
    """Apply one check result with Nagios' soft/hard state logic."""
    times = tuple(now if k == state else t for k, t in enumerate(o.last_time))
    new = dataclasses.replace(o, state=state, last_check=now, last_time=times,  # type: ignore[arg-type]
                              has_been_checked=True)
    if state != o.state:
        # Nagios clears a (non-sticky) acknowledgement on any state change.
        new = dataclasses.replace(new, last_state_change=now, acknowledged=False)
    if state == 0 or o.state_type == HARD and o.state != 0:
        hard_change = state != o.last_hard_state
        return dataclasses.replace(new, state_type=HARD, attempt=1, last_hard_state=state,
                                   last_hard_state_change=now if hard_change else o.last_hard_state_change)
    attempt = 1 if o.state == 0 else o.attempt + 1
    if attempt < MAX_ATTEMPTS:
        return dataclasses.replace(new, state_type=SOFT, attempt=attempt)
    return dataclasses.replace(new, state_type=HARD, attempt=attempt, last_hard_state=state,
                               last_hard_state_change=now)


def _next_state(o: SimObject, rng: random.Random) -> int:
    """Draw the next check result: long calm stretches, problems that stick for a while."""
    if o.state == 0:
        if o.service is None:
            return (1 if rng.random() < 0.9 else 2) if rng.random() < 0.002 else 0
        return rng.choices((1, 2, 3), (60, 35, 5))[0] if rng.random() < 0.012 else 0
    recover = 0.3 if o.state_type == SOFT else (0.25 if o.service is None else 0.08)
    if rng.random() < recover:
        return 0
    if o.service is not None and o.state in (1, 2) and rng.random() < 0.05:
        return 3 - o.state  # WARNING <-> CRITICAL
    return o.state


def step(objects: Sequence[SimObject], rng: random.Random, now: int) -> list[SimObject]:
    """Advance every object by one check; deterministic for a given rng state."""
    out = []
    for o in objects:
        o = _check(o, _next_state(o, rng), now)
        if o.state != 0 and o.state_type == HARD and not o.acknowledged and rng.random() < 0.1:
            o = dataclasses.replace(o, acknowledged=True)
        if o.downtime_end and now >= o.downtime_end:
            o = dataclasses.replace(o, downtime_start=0, downtime_end=0)
        elif not o.downtime_end and rng.random() < 0.004:
            o = dataclasses.replace(o, downtime_start=now, downtime_end=now + rng.randint(30, 120))
        out.append(o)
    return out


async def _write_fully(path: Path, data: bytes) -> None:
    """Write in a thread; on cancel, let the write finish so no temp file is left behind."""
    fut = asyncio.get_running_loop().run_in_executor(None, write_atomic, path, data)
    try:
        await asyncio.shield(fut)
    except asyncio.CancelledError:
        await asyncio.wait([fut])
        if not fut.cancelled():
            fut.exception()  # mark it retrieved: once cancelled, a write error no longer matters
        raise


async def run_simulator(
    path: Path, interval: float = 3.0, seed: int | None = None, *, clock: Callable[[], float] = time.time
) -> None:
    """Rewrite ``path`` every ``interval`` seconds until cancelled, leaving the last whole file."""
    path = Path(path)
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    rng = random.Random(seed)
    start = now = int(clock())
    objects = demo_objects(now)
    while True:
        await _write_fully(path, render_statusdat(objects, now, program_start=start))
        await asyncio.sleep(interval)
        now = int(clock())
        objects = step(objects, rng, now)
