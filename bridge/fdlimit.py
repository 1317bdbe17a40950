"""File descriptors: the soft RLIMIT_NOFILE raised to the hard limit at start; the connections that leaves room for."""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

log = logging.getLogger("bridge.daemon")

# Descriptors no client connection may take: listening sockets, SQLite (the file, -wal, -shm, the history
# writer's own connection), status.dat reads, watchfiles' inotify, the Icinga stream, stdio, the /proc
# reads of the process metrics, and the admin listener's connections (ADMIN_MAX_CONNECTIONS). At rest
# the daemon holds about 20.
RESERVED_FDS = 256
ADMIN_MAX_CONNECTIONS = 64
# An idle connection costs about 5 KB of memory besides its descriptor: the default also bounds memory.
DEFAULT_MAX_CONNECTIONS = 10_000
_UNLIMITED = 1 << 20  # what an RLIM_INFINITY soft limit is taken as (Linux' default fs.nr_open)


@dataclass(frozen=True)
class FdLimit:
    """The soft open-file limit in force, the one found at start, and why raising it failed (if it did)."""

    soft: int
    before: int
    error: str = ""


def _value(limit: int) -> int:
    """A limit as a number of descriptors."""
    return _UNLIMITED if limit == resource.RLIM_INFINITY else limit


def raise_nofile() -> FdLimit:
    """Raise the soft open-file limit to the hard limit when it is lower (allowed without privileges)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or (hard != resource.RLIM_INFINITY and soft >= hard):
        return FdLimit(_value(soft), _value(soft))
    wanted = hard if hard != resource.RLIM_INFINITY else _UNLIMITED
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (OSError, ValueError) as exc:
        # e.g. a seccomp filter, or an unlimited hard limit above fs.nr_open
        return FdLimit(soft, soft, getattr(exc, "strerror", None) or str(exc))
    return FdLimit(wanted, soft)


def connection_budget(fd_limit: int) -> int:
    """Connections the public listener may hold under fd_limit: all but the reserve (but at least half)."""
    return max(fd_limit - RESERVED_FDS, fd_limit // 2)


def max_connections(configured: int, fd_limit: int) -> tuple[int, bool]:
    """The public listener's cap: http.max_connections (0: the default), never above the budget; and whether
    a configured value had to be lowered."""
    budget = connection_budget(fd_limit)
    if not configured:
        return min(budget, DEFAULT_MAX_CONNECTIONS), False
    return min(configured, budget), configured > budget


def describe(limit: FdLimit) -> str:
    """The start-up log's account of the limit: raised, kept, or why it could not be raised."""
    if limit.error:
        return f"{limit.soft} (raising it to the hard limit failed: {limit.error})"
    if limit.soft != limit.before:
        return f"{limit.soft} (raised from {limit.before}, the hard limit allows it)"
    return f"{limit.soft}"
