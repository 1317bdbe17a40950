"""Stopping background tasks: the one way every source, publisher and poller is ended."""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger("bridge.tasks")


async def cancel_and_wait(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait for it to end; a crash it had is logged, never raised into shutdown."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        try:
            await task
        except Exception:
            log.exception("background task failed")
