"""Read status.dat off the event loop: probe, whole-file read, settle check, and the facts kept about it."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

from .model import SourceHealth, StatusData, source_health

log = logging.getLogger(__name__)

Signature = tuple[int, int, int]  # (st_ino, st_mtime_ns, st_size)
DirIdentity = tuple[int, int]  # (st_dev, st_ino)


@dataclass(frozen=True)
class TailFacts:
    """What the tailer knows about its file, independent of the current time."""

    missing: bool = False
    data_created: float | None = None
    last_parse_seconds: float | None = None
    last_error: str | None = None
    last_error_time: float | None = None
    parses_total: int = 0
    errors_total: int = 0


class ReadOutcome(NamedTuple):
    """Result of one read+parse attempt, produced in a worker thread."""

    data: StatusData | None
    error: str | None
    missing: bool
    signature: Signature | None
    parse_seconds: float | None


class Probe(NamedTuple):
    """Cheap stat of the directory and the file, used by the fallback poll."""

    directory: DirIdentity | None
    file: Signature | None


def stale_reason(facts: TailFacts, now: float, stale_after: float, name: str = "status.dat") -> str | None:
    """Why the data must be shown as stale at ``now``, or None when it is fresh."""
    if facts.missing:
        return f"{name} missing: Nagios stopped?"
    if facts.data_created is None:
        detail = f": {facts.last_error}" if facts.last_error else ""
        return f"no good {name} read yet{detail}"
    age = now - facts.data_created
    if age > stale_after:
        return f"monitoring data is {math.ceil(age)} s old (stale_after {stale_after:g} s)"
    return None


def compute_health(facts: TailFacts, now: float, stale_after: float, name: str = "status.dat") -> SourceHealth:
    """Turn the tailer's facts into the SourceHealth shown on the page and in /metrics."""
    return source_health(facts, stale_reason(facts, now, stale_after, name))


def apply_outcome(facts: TailFacts, outcome: ReadOutcome, now: float) -> TailFacts:
    """Fold one read attempt into the facts; a failed read never forgets the last good data."""
    if outcome.missing:
        return dataclasses.replace(facts, missing=True)
    if outcome.data is None:
        return dataclasses.replace(
            facts,
            missing=False,
            last_error=outcome.error,
            last_error_time=now,
            errors_total=facts.errors_total + 1,
        )
    return dataclasses.replace(
        facts,
        missing=False,
        data_created=outcome.data.created,
        last_parse_seconds=outcome.parse_seconds,
        parses_total=facts.parses_total + 1,
    )


def _signature(st: os.stat_result) -> Signature:
    """Identity of one version of the file: a rename changes st_ino, a copy in place mtime/size."""
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def probe(path: Path) -> Probe:
    """Stat the directory and the file (blocking: NFS stat can hang, so call it from a thread)."""
    try:
        dst = os.stat(path.parent)
    except OSError:
        return Probe(None, None)
    try:
        file_sig: Signature | None = _signature(os.stat(path))
    except OSError:
        file_sig = None
    return Probe((dst.st_dev, dst.st_ino), file_sig)


# Bytes per read() call. One read() of a whole 143 MB file keeps the kernel copying for ~90 ms,
# and on a busy or single CPU the event loop thread was measured waiting ~40 ms for it, twice.
READ_CHUNK = 2 << 20


def read_all(f: BinaryIO) -> bytearray:
    """The rest of an unbuffered binary file, read in READ_CHUNK steps into one bytearray.

    Each step is a short system call with the GIL released; growing one bytearray (realloc,
    no zero-filling) touches the memory once, where joining chunks would copy it all again.
    """
    buf = bytearray()
    chunk = bytearray(READ_CHUNK)
    with memoryview(chunk) as view:
        while n := f.readinto(chunk):
            buf += view[:n]
    return buf


SETTLE = 0.25  # seconds an in-place rewrite must stay unchanged before it is trusted


def read_and_parse(
    path: Path,
    parse: Callable[[bytes | bytearray], StatusData],
    prepare: Callable[[StatusData], None] | None = None,
    previous_inode: int | None = None,
    settle: float = SETTLE,
) -> ReadOutcome:
    """Read the whole file and parse it (blocking; runs in a worker thread), then prepare a good parse."""
    name = path.name
    try:
        with open(path, "rb", buffering=0) as f:
            before = os.fstat(f.fileno())
            raw = read_all(f)
            after = os.fstat(f.fileno())
    except FileNotFoundError:
        return ReadOutcome(None, None, True, None, None)
    except OSError as exc:
        try:  # remember which version failed so the poll does not re-read it every tick
            failed: Signature | None = _signature(os.stat(path))
        except OSError:
            failed = None
        return ReadOutcome(None, f"cannot read {name}: {exc.strerror or exc}", False, failed, None)
    sig = _signature(after)
    # A copy in place (temp_file on another filesystem) can be caught mid-write.
    if _signature(before) != sig or len(raw) != after.st_size:
        # No signature: the next poll re-reads even if the writer has finished by then.
        return ReadOutcome(None, f"{name} changed while being read", False, None, None)
    if not raw:
        return ReadOutcome(None, f"{name} is empty (0 bytes)", False, sig, None)
    if not _settled(path, sig, after.st_mtime, previous_inode, settle):
        return ReadOutcome(None, f"{name} changed while being read", False, None, None)
    started = time.perf_counter()
    try:
        data = parse(raw)
    except ValueError as exc:
        return ReadOutcome(None, f"cannot parse {name}: {exc}", False, sig, None)
    except Exception as exc:  # a parser bug must not kill the tailer or drop good data
        log.exception("unexpected error parsing %s", path)
        return ReadOutcome(None, f"cannot parse {name}: {type(exc).__name__}: {exc}", False, sig, None)
    elapsed = time.perf_counter() - started
    del raw  # the file's bytes (143 MB at 100k services) are not needed while preparing
    if prepare is not None:
        try:
            prepare(data)
        except Exception:  # a bug there must not drop good data: publishing does the work itself then
            log.exception("preparing %s for publishing failed", path)
    return ReadOutcome(data, None, False, sig, elapsed)


def _settled(path: Path, sig: Signature, mtime: float, previous_inode: int | None, settle: float) -> bool:
    """False when an in-place rewrite was still being written: it changed within the settle window.

    A copy in place (temp_file on another filesystem) cut exactly after a complete block parses
    as a valid, smaller file and would show checks as missing. A rename always brings a new inode
    (the temp file is created while the old file still holds its inode), so only a same-inode
    read waits until the file has been quiet for `settle` seconds. The first read does not wait:
    start-up should serve at once, and there is no earlier good data a partial file could replace.
    """
    if settle <= 0 or previous_inode is None or previous_inode != sig[0]:
        return True
    quiet_for = time.time() - mtime
    if quiet_for >= settle:
        return True
    time.sleep(settle - quiet_for)
    try:
        return _signature(os.stat(path)) == sig
    except OSError:
        return False
