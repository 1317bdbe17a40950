"""Letting go of a replaced StatusData: a big one is freed in a worker thread, in steps, not on the event loop."""

from __future__ import annotations

import asyncio
import sys
import time

from bridge.model import StatusData

RELEASE_MIN = 20_000  # checks: below this, freeing a StatusData on the event loop takes under ~3 ms


def _free_in_steps(box: list[StatusData]) -> None:
    """Free a big StatusData in small steps (in a worker thread), once nothing else refers to it.

    Freeing 100k CheckStates at once is one ~20-40 ms C call holding the GIL, wherever it runs.
    Popping the dicts item by item instead lets the event loop thread take the GIL in between.
    The dicts are emptied only when provably unreachable from anywhere else (reference counts),
    so no reader can ever see a StatusData change.
    """
    data = box.pop()
    for _ in range(100):  # the publishing code may still hold it in a local variable for a moment
        if sys.getrefcount(data) <= 2:  # `data` and getrefcount's own argument
            break
        time.sleep(0.005)
    else:
        return  # still referenced (a test, a merge): it is freed with its last reference, as usual
    for name in ("services", "hosts"):
        table = getattr(data, name)
        if sys.getrefcount(table) <= 3:  # the StatusData's attribute, `table`, the argument
            pop = table.popitem
            for _ in range(len(table)):
                pop()
            del pop
        del table


def release(data: StatusData | None) -> None:
    """Let go of a StatusData that was just replaced: a big one is freed off the event loop, in steps."""
    if data is None or len(data.services) + len(data.hosts) < RELEASE_MIN:
        return
    try:
        asyncio.get_running_loop().run_in_executor(None, _free_in_steps, [data])
    except RuntimeError:
        pass  # no loop to protect (CLI, tests) or it is shutting down: freed here, as usual
