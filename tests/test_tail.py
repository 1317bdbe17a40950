"""StatusDatTailer against real files, renames and watchfiles; the health rules as a table."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.demo.simulator import demo_objects
from bridge.demo.statusdat_writer import render_statusdat, write_atomic
from bridge.model import SourceHealth, StatusData
from bridge.statusdat_file import (
    ReadOutcome,
    TailFacts,
    apply_outcome,
    compute_health,
    probe,
    stale_reason,
)
from bridge.tail import StatusDatTailer
from tests.conftest import HANG_GUARD, Held

T0 = 1_800_000_000
MISSING = "status.dat missing: Nagios stopped?"


def statusdat(created: int) -> bytes:
    """A complete status.dat as the demo simulator writes it."""
    return render_statusdat(demo_objects(created), created)


async def until(pred: Callable[[], bool], timeout: float = HANG_GUARD) -> None:
    """Wait for ``pred`` to hold, failing the test after ``timeout`` seconds (only a hang gets there)."""

    async def poll() -> None:
        while not pred():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


class Harness:
    """A running tailer with a counting on_change and a settable clock."""

    def __init__(self, path: Path, **kw: Any) -> None:
        """Build the tailer; the fallback poll is slow by default so events must come from watchfiles."""
        self.now = float(T0)
        self.changes = 0
        kw.setdefault("poll_interval", 60.0)
        kw.setdefault("clock", lambda: self.now)
        self.tailer = StatusDatTailer(path, kw.pop("stale_after", 180), self.on_change, **kw)
        self.task: asyncio.Task[None] | None = None

    def on_change(self) -> None:
        """Count notifications."""
        self.changes += 1

    def health(self) -> SourceHealth:
        """Health at the harness clock."""
        return self.tailer.health(self.now)

    def created(self) -> float | None:
        """info.created of the data in use."""
        return None if self.tailer.current is None else self.tailer.current.created

    async def __aenter__(self) -> Harness:
        """Start run()."""
        self.task = asyncio.create_task(self.tailer.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Cancel run() and require it to stop (promptly: test_cancel_during_parse_is_prompt)."""
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, HANG_GUARD)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """status.dat in a Nagios-like directory, with a first good file (created=T0)."""
    p = tmp_path / "nagios" / "status.dat"
    p.parent.mkdir()
    write_atomic(p, statusdat(T0))
    return p


async def test_rename_over_is_picked_up(path: Path) -> None:
    async with Harness(path) as h:
        await until(lambda: h.created() == T0)
        seen = h.changes
        write_atomic(path, statusdat(T0 + 10))
        await until(lambda: h.created() == T0 + 10)
        assert h.changes > seen
        h.now = T0 + 10
        assert h.health() == SourceHealth(
            stale=False, data_created=T0 + 10, last_parse_seconds=h.health().last_parse_seconds, parses_total=2
        )


async def test_burst_of_renames_ends_on_the_last_file(path: Path) -> None:
    async with Harness(path) as h:
        await until(lambda: h.created() == T0)
        for i in range(1, 6):
            write_atomic(path, statusdat(T0 + i))
        await until(lambda: h.created() == T0 + 5)
        assert h.tailer.facts.errors_total == 0


async def test_truncated_copy_in_place_keeps_last_good_then_recovers(path: Path) -> None:
    async with Harness(path) as h:
        await until(lambda: h.created() == T0)
        good = h.tailer.current
        data = statusdat(T0 + 10)
        with open(path, "wb") as f:  # temp_file on another filesystem: Nagios copies in place
            f.write(data[: len(data) // 2])
        await until(lambda: h.tailer.facts.errors_total >= 1)
        assert h.tailer.current is good
        health = h.health()
        assert not health.stale  # the good data is still fresh; the error is visible beside it
        assert health.last_error and health.last_error_time == T0
        write_atomic(path, data)
        await until(lambda: h.created() == T0 + 10)
        h.now = T0 + 10
        assert not h.health().stale


@pytest.mark.parametrize("content", [b"", b"\x00\xff\xfe garbage {{{ =\n\t}", b"info {\n\tcreated=17"])
async def test_empty_or_garbage_file_is_an_error_old_data_kept(path: Path, content: bytes) -> None:
    async with Harness(path) as h:
        await until(lambda: h.created() == T0)
        good = h.tailer.current
        before = h.changes
        fd = os.open(path.parent / "nagios.tmpXYZ", os.O_WRONLY | os.O_CREAT)
        os.write(fd, content)
        os.close(fd)
        os.replace(path.parent / "nagios.tmpXYZ", path)
        await until(lambda: h.tailer.facts.errors_total >= 1)
        assert h.tailer.current is good
        assert h.changes > before  # the error is news for the page too
        health = h.health()
        assert not health.stale and health.last_error and health.errors_total >= 1
        if not content:
            assert "empty" in health.last_error


async def test_file_deleted_is_stale_at_once_and_recovers(path: Path) -> None:
    async with Harness(path) as h:
        await until(lambda: h.created() == T0)
        path.unlink()  # what Nagios does on a clean stop
        await until(lambda: h.health().stale)
        assert h.health().reason == MISSING
        assert h.tailer.current is not None and h.health().errors_total == 0
        write_atomic(path, statusdat(T0 + 5))
        await until(lambda: not h.health().stale)
        assert h.created() == T0 + 5


async def test_unreadable_path_is_an_error_old_data_kept(path: Path) -> None:
    # Runs as root too: a directory in place of the file fails open() for real, unlike chmod 000.
    async with Harness(path) as h:
        await until(lambda: h.created() == T0)
        path.unlink()
        path.mkdir()
        await until(lambda: h.tailer.facts.errors_total >= 1)
        assert h.tailer.current is not None
        assert "cannot read status.dat" in (h.health().last_error or "")


def _mode_000_is_readable() -> bool:
    """True when file modes do not deny us reads (root with CAP_DAC_OVERRIDE)."""
    with tempfile.TemporaryDirectory() as d:
        probe_file = Path(d) / "f"
        probe_file.write_bytes(b"x")
        probe_file.chmod(0)
        try:
            probe_file.read_bytes()
        except PermissionError:
            return False
        return True


@pytest.mark.skipif(_mode_000_is_readable(), reason="mode 000 does not deny reads here (root); see the directory case")
async def test_permission_denied_is_an_error_old_data_kept(path: Path) -> None:
    async with Harness(path) as h:
        await until(lambda: h.created() == T0)
        tmp = path.parent / "nagios.tmpPERM"
        tmp.write_bytes(statusdat(T0 + 10))
        tmp.chmod(0)
        os.replace(tmp, path)
        await until(lambda: h.tailer.facts.errors_total >= 1)
        assert h.created() == T0
        assert "Permission denied" in (h.health().last_error or "")


async def test_data_older_than_stale_after_is_stale(path: Path) -> None:
    async with Harness(path, stale_after=180, poll_interval=0.05) as h:
        await until(lambda: h.created() == T0)
        h.now = T0 + 100
        assert not h.health().stale
        before = h.changes
        h.now = T0 + 312
        assert h.health().reason == "monitoring data is 312 s old (stale_after 180 s)"
        await until(lambda: h.changes > before)  # the poll tick reports the change of health
        write_atomic(path, statusdat(T0 + 300))
        await until(lambda: h.created() == T0 + 300)
        assert not h.health().stale


async def test_directory_missing_at_start_then_created(tmp_path: Path) -> None:
    path = tmp_path / "later" / "status.dat"
    async with Harness(path, dir_poll_interval=0.05) as h:
        await until(lambda: h.changes >= 1)
        assert h.health().stale and h.health().reason == MISSING
        path.parent.mkdir()
        write_atomic(path, statusdat(T0))
        await until(lambda: h.created() == T0)
        write_atomic(path, statusdat(T0 + 1))  # and the watch is armed on the new directory
        await until(lambda: h.created() == T0 + 1)


async def test_directory_replaced_while_running(path: Path) -> None:
    async with Harness(path, dir_poll_interval=0.05) as h:
        await until(lambda: h.created() == T0)
        shutil.rmtree(path.parent)
        await until(lambda: h.health().reason == MISSING)
        path.parent.mkdir()
        write_atomic(path, statusdat(T0 + 1))
        await until(lambda: h.created() == T0 + 1)
        write_atomic(path, statusdat(T0 + 2))
        await until(lambda: h.created() == T0 + 2)


async def test_slow_parse_does_not_block_the_event_loop(path: Path) -> None:
    """The parse runs in a worker thread: while it is in progress the loop runs, and its whole time is reported."""
    from bridge.statusdat import parse

    parse_held = Held(parse)  # in progress (as a 143 MB file's parse is for a while) until the loop has run
    took: list[float] = []

    def measured(raw: bytes) -> StatusData:
        began = time.perf_counter()
        try:
            return parse_held(raw)
        finally:
            took.append(time.perf_counter() - began)

    async with Harness(path, parse=measured) as h:
        await parse_held.serve_loop_meanwhile(h.task)
        await until(lambda: h.created() == T0)
    parse_held.assert_loop_ran_meanwhile()
    assert (h.health().last_parse_seconds or 0) >= took[0]  # the tailer's own measure encloses this one


async def test_cancel_during_parse_is_prompt(path: Path) -> None:
    """Cancelling the tailer mid-parse ends it at once: it does not wait for the parse in its worker thread."""

    def failing_parse(raw: bytes) -> StatusData:
        raise ValueError("never finishes in time")

    parse_held = Held(failing_parse)  # stays in progress until the test lets it go, after the cancel
    h = Harness(path, parse=parse_held)
    h.task = asyncio.create_task(h.tailer.run())
    await parse_held.wait_entered(h.task)
    h.task.cancel()
    done, _ = await asyncio.wait([h.task], timeout=HANG_GUARD / 2)
    parse_held.release()
    assert done and h.task.cancelled()
    assert parse_held.events == ["entered"]  # run() ended while its parse was still in progress


async def test_failing_listener_does_not_stop_the_tailer(path: Path) -> None:
    calls: list[float] = []

    def on_change() -> None:
        calls.append(time.time())
        raise RuntimeError("listener bug")

    tailer = StatusDatTailer(path, 180, on_change, poll_interval=60)
    task = asyncio.create_task(tailer.run())
    try:
        await until(lambda: len(calls) >= 1)
        write_atomic(path, statusdat(T0 + 1))
        await until(lambda: tailer.current is not None and tailer.current.created == T0 + 1)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, HANG_GUARD)


async def test_fallback_poll_rereads_only_a_changed_file(path: Path) -> None:
    # Drives the poll step directly, as on NFS where no inotify event ever comes.
    tailer = StatusDatTailer(path, 180, lambda: None)
    await tailer._refresh(probe(path), changed=False)
    assert tailer.facts.parses_total == 1
    await tailer._refresh(probe(path), changed=False)
    assert tailer.facts.parses_total == 1  # unchanged (inode, mtime, size): no re-read
    write_atomic(path, statusdat(T0 + 1))
    await tailer._refresh(probe(path), changed=False)
    assert tailer.facts.parses_total == 2 and tailer.current and tailer.current.created == T0 + 1


GOOD = TailFacts(data_created=T0, parses_total=3, last_parse_seconds=0.2)


@pytest.mark.parametrize(
    ("facts", "now", "reason"),
    [
        (TailFacts(), T0, "no good status.dat read yet"),
        (TailFacts(last_error="cannot parse status.dat: x"), T0, "no good status.dat read yet: cannot parse status.dat: x"),
        (TailFacts(missing=True), T0, MISSING),
        (TailFacts(missing=True, data_created=T0), T0, MISSING),  # missing beats fresh data
        (GOOD, T0, None),
        (GOOD, T0 + 180, None),  # exactly stale_after is still fresh
        (GOOD, T0 + 180.5, "monitoring data is 181 s old (stale_after 180 s)"),
        (GOOD, T0 + 312, "monitoring data is 312 s old (stale_after 180 s)"),
        (GOOD, T0 - 30, None),  # created in the future (clock skew) is not stale
        (TailFacts(data_created=T0, last_error="boom", errors_total=4), T0 + 10, None),  # error alone: not stale
    ],
)
def test_stale_reason_table(facts: TailFacts, now: float, reason: str | None) -> None:
    assert stale_reason(facts, now, 180) == reason
    health = compute_health(facts, now, 180)
    assert health.stale is (reason is not None) and health.reason == reason
    assert (health.data_created, health.errors_total, health.parses_total) == (
        facts.data_created,
        facts.errors_total,
        facts.parses_total,
    )


def test_apply_outcome_table() -> None:
    data = StatusData(created=T0 + 5, version="4.4.6")
    ok = apply_outcome(GOOD, ReadOutcome(data, None, False, (1, 2, 3), 0.4), T0 + 6)
    assert ok == TailFacts(data_created=T0 + 5, parses_total=4, last_parse_seconds=0.4)
    bad = apply_outcome(ok, ReadOutcome(None, "cannot parse status.dat: cut", False, (1, 2, 3), None), T0 + 7)
    assert bad == TailFacts(
        data_created=T0 + 5, parses_total=4, last_parse_seconds=0.4,
        last_error="cannot parse status.dat: cut", last_error_time=T0 + 7, errors_total=1,
    )
    gone = apply_outcome(bad, ReadOutcome(None, None, True, None, None), T0 + 8)
    assert gone.missing and gone.data_created == T0 + 5 and gone.errors_total == 1
    back = apply_outcome(gone, ReadOutcome(data, None, False, (4, 5, 6), 0.3), T0 + 9)
    assert not back.missing and back.parses_total == 5 and back.last_error == "cannot parse status.dat: cut"


def _two_blocks(now: int) -> tuple[bytes, bytes]:
    """A full demo status.dat and a prefix of it cut exactly after a complete block (itself well-formed)."""
    from bridge.statusdat import parse

    full = render_statusdat(demo_objects(now), now)
    cut = full.index(b"\n\t}\n", len(full) // 2) + len(b"\n\t}\n")
    prefix = full[:cut]
    parse(prefix)  # precondition: the prefix alone is a valid, smaller file
    return full, prefix


class SettleWaits:
    """statusdat_file's time module, except that sleep() (only the settle wait calls it) is recorded, not slept.

    during() runs in place of the first wait: a writer finishing the file exactly while the reader waits.
    """

    def __init__(self, during: Callable[[], None] | None = None) -> None:
        self.slept: list[float] = []
        self.during = during

    def __getattr__(self, name: str) -> Any:
        """Everything else is the real time module."""
        return getattr(time, name)

    def sleep(self, seconds: float) -> None:
        """Record the wait; run during() once."""
        self.slept.append(seconds)
        during, self.during = self.during, None
        if during is not None:
            during()


def test_in_place_rewrite_still_being_written_is_not_published(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy in place paused exactly at a block boundary must not be taken for the whole file."""
    from bridge import statusdat_file
    from bridge.statusdat import parse
    from bridge.statusdat_file import read_and_parse

    path = tmp_path / "status.dat"
    now = int(time.time())
    full, prefix = _two_blocks(now)
    path.write_bytes(full)
    inode = path.stat().st_ino
    with open(path, "r+b") as f:  # in place: same inode, as Nagios does with temp_file elsewhere
        f.truncate(0)
        f.write(prefix)
    def finish() -> None:
        with open(path, "ab") as f:
            f.write(full[len(prefix):])

    # The rest is written while the reader waits for the file to settle (an hour: it can never look settled).
    waits = SettleWaits(during=finish)
    monkeypatch.setattr(statusdat_file, "time", waits)
    outcome = read_and_parse(path, parse, None, inode, settle=3600)
    assert len(waits.slept) == 1 and outcome.data is None
    assert "changed while being read" in (outcome.error or "")
    assert path.stat().st_ino == inode
    again = read_and_parse(path, parse, None, inode, settle=0.05)
    assert again.data is not None and len(again.data.services) == len(parse(full).services)


def test_renamed_file_is_taken_without_waiting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge import statusdat_file
    from bridge.statusdat import parse
    from bridge.statusdat_file import read_and_parse

    path = tmp_path / "status.dat"
    now = int(time.time())
    full, _ = _two_blocks(now)
    path.write_bytes(full)
    old_inode = path.stat().st_ino
    write_atomic(path, full)  # a rename: new inode, atomic, needs no settling
    assert path.stat().st_ino != old_inode
    waits = SettleWaits()
    monkeypatch.setattr(statusdat_file, "time", waits)
    outcome = read_and_parse(path, parse, None, old_inode, settle=3600)
    assert outcome.data is not None
    assert waits.slept == []  # taken at once: no settle wait at all


# --- reading, preparing and the GIL (issue 8) -------------------------------------------

def test_read_all_in_small_steps_equals_one_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge import statusdat_file

    blob = os.urandom(100_000) + statusdat(T0)
    p = tmp_path / "f"
    p.write_bytes(blob)
    for step in (1, 7, 4096, 1 << 20):
        monkeypatch.setattr(statusdat_file, "READ_CHUNK", step)
        with open(p, "rb", buffering=0) as f:
            got = statusdat_file.read_all(f)
        assert got == blob and isinstance(got, bytearray)
    p.write_bytes(b"")
    with open(p, "rb", buffering=0) as f:
        assert statusdat_file.read_all(f) == b""


def test_read_and_parse_prepares_in_the_worker(path: Path) -> None:
    import threading

    from bridge.statusdat import parse
    from bridge.statusdat_file import read_and_parse

    seen: list[tuple[StatusData, str]] = []
    outcome = read_and_parse(path, parse, lambda data: seen.append((data, threading.current_thread().name)))
    assert outcome.data is not None and outcome.error is None
    assert seen == [(outcome.data, threading.current_thread().name)]  # same thread as the parse


def test_a_failing_prepare_keeps_the_good_data(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from bridge.statusdat import parse
    from bridge.statusdat_file import read_and_parse

    def broken(data: StatusData) -> None:
        raise RuntimeError("bug in prepare")

    outcome = read_and_parse(path, parse, broken)
    assert outcome.data is not None and outcome.data.created == T0
    assert "preparing" in caplog.text


def test_a_bad_parse_is_not_prepared(path: Path) -> None:
    from bridge.statusdat import parse
    from bridge.statusdat_file import read_and_parse

    path.write_bytes(statusdat(T0)[:-10])  # truncated mid-write
    called: list[StatusData] = []
    outcome = read_and_parse(path, parse, called.append)
    assert outcome.data is None and outcome.error and not called


async def test_tailer_prepares_every_good_parse_before_publishing(path: Path) -> None:
    prepared: list[float] = []
    published: list[float] = []

    h = Harness(path, prepare=lambda data: prepared.append(data.created))
    h.on_change = lambda: published.append(h.created() or 0.0)  # type: ignore[method-assign]
    h.tailer.on_change = h.on_change
    async with h:
        await until(lambda: h.created() == T0)
        write_atomic(path, statusdat(T0 + 5))
        await until(lambda: h.created() == T0 + 5)
    assert prepared[:2] == [T0, T0 + 5]
    assert set(published) <= set(prepared)  # nothing was published unprepared


async def test_switch_interval_is_lowered_while_tailing_and_restored(path: Path) -> None:
    import sys

    from bridge.tail import SWITCH_INTERVAL

    before = sys.getswitchinterval()
    async with Harness(path) as h:
        await until(lambda: h.created() == T0)
        assert sys.getswitchinterval() == min(SWITCH_INTERVAL, before)
        async with Harness(path) as second:  # a reload briefly runs two tailers
            await until(lambda: second.created() == T0)
        assert sys.getswitchinterval() == min(SWITCH_INTERVAL, before)
    assert sys.getswitchinterval() == before
