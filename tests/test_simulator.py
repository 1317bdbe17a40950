"""The demo simulator: Nagios-shaped output, a deterministic walk, atomic rewrites."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.demo.simulator import DEMO_OBJECTS, demo_objects, run_simulator, step
from bridge.demo.statusdat_writer import (
    HARD,
    MAX_ATTEMPTS,
    SOFT,
    SimObject,
    render_statusdat,
)
from tests.conftest import CORPUS as CORPUS_DIR
from tests.conftest import HANG_GUARD

T0 = 1_800_000_000
CORPUS = CORPUS_DIR / "status-1k.dat.gz"
EXPECTED = {
    "web-1": ["HTTP", "HTTPS", "Load"],
    "web-2": ["HTTP", "HTTPS", "Load"],
    "db-1": ["PostgreSQL", "Disk /var"],
    "db-2": ["PostgreSQL", "Disk /var"],
    "mail-1": ["SMTP", "IMAP"],
    "vpn-1": ["OpenVPN"],
    "vpn-2": ["OpenVPN"],
    "ldap-1": ["LDAP"],
    "files-1": ["NFS", "Backup"],
}


def blocks(text: str) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """(block name, [(key, value), ...]) in file order; a test-side reading of the format."""
    for chunk in text.split("\n\n"):
        lines = chunk.split("\n")
        if lines[0].endswith(" {"):
            assert lines[-1] == "\t}", chunk
            yield lines[0][:-2], [tuple(line[1:].split("=", 1)) for line in lines[1:-1]]  # type: ignore[misc]


def walk(seed: int, steps: int) -> Iterator[tuple[int, list[SimObject]]]:
    """The simulator's states at 3 s intervals, starting with the demo objects."""
    rng = random.Random(seed)
    now = T0
    objects = demo_objects(now)
    yield now, objects
    for _ in range(steps):
        now += 3
        objects = step(objects, rng, now)
        yield now, objects


def test_demo_objects_are_the_documented_list() -> None:
    hosts = [o.host for o in DEMO_OBJECTS if o.service is None]
    services = [(o.host, o.service) for o in DEMO_OBJECTS if o.service is not None]
    assert hosts == list(EXPECTED)
    assert services == [(h, s) for h, ss in EXPECTED.items() for s in ss]
    assert all(o.state == 0 for o in DEMO_OBJECTS if o.service is None)
    assert sum(o.state != 0 for o in DEMO_OBJECTS) <= 1


def test_render_parses_and_has_every_object() -> None:
    from bridge.statusdat import parse

    objects = demo_objects(T0)
    data = parse(render_statusdat(objects, T0))
    assert data.created == T0 and data.version == "4.4.6"
    assert set(data.hosts) == set(EXPECTED)
    assert set(data.services) == {(h, s) for h, ss in EXPECTED.items() for s in ss}
    for o in objects:
        cs = data.hosts[o.host] if o.service is None else data.services[(o.host, o.service)]
        assert (cs.current_state, cs.state_type, cs.last_hard_state) == (o.state, o.state_type, o.last_hard_state)
        assert cs.has_been_checked and cs.last_check == T0 and cs.plugin_output


def test_render_parses_through_a_walk() -> None:
    from bridge.statusdat import parse

    for now, objects in itertools.islice(walk(7, 200), 0, None, 20):
        data = parse(render_statusdat(objects, now))
        for o in objects:
            cs = data.hosts[o.host] if o.service is None else data.services[(o.host, o.service)]
            assert cs.downtime_depth == (1 if o.downtime_end else 0)
            assert cs.acknowledged is o.acknowledged
            assert "\n" not in cs.plugin_output


def test_blocks_have_nagios_keys_in_nagios_order() -> None:
    reference: dict[str, list[str]] = {}
    for name, pairs in blocks(gzip.open(CORPUS, "rt", errors="replace").read()):
        reference.setdefault(name, [k for k, _ in pairs])
    ours: dict[str, list[str]] = {}
    now, objects = next((n, o) for n, o in walk(3, 2000) if any(x.downtime_end and x.service for x in o)
                        and any(x.downtime_end and not x.service for x in o) and any(x.acknowledged for x in o))
    text = render_statusdat(objects, now).decode()
    assert text.startswith(gzip.open(CORPUS, "rt").read(text.index("info {")))  # same banner
    for name, pairs in blocks(text):
        ours.setdefault(name, [k for k, _ in pairs])
    assert set(ours) == set(reference)
    for name in reference:
        assert ours[name] == reference[name], name


def test_rendered_fields_are_consistent_through_a_walk() -> None:
    for now, objects in walk(11, 400):
        text = render_statusdat(objects, now).decode()
        assert text.endswith("\t}\n\n")
        downtimes, in_downtime = set(), set()
        for name, pairs in blocks(text):
            f = dict(pairs)
            if name.endswith("downtime"):
                downtimes.add((f["host_name"], f.get("service_description")))
                assert int(f["start_time"]) <= now < int(f["end_time"])
            if name not in ("hoststatus", "servicestatus"):
                continue
            state, kind, hard = int(f["current_state"]), int(f["state_type"]), int(f["last_hard_state"])
            assert f["has_been_checked"] == "1" and int(f["last_check"]) == now
            assert int(f["last_state_change"]) <= now and int(f["last_hard_state_change"]) <= now
            if kind == HARD:
                assert hard == state
            else:
                assert state != 0 and hard != state and int(f["current_attempt"]) < MAX_ATTEMPTS
            if f["problem_has_been_acknowledged"] == "1":
                assert state != 0 and kind == HARD and f["acknowledgement_type"] == "1"
            assert "\n" not in f["long_plugin_output"]
            if int(f["scheduled_downtime_depth"]):
                in_downtime.add((f["host_name"], f.get("service_description")))
        assert downtimes == in_downtime


def test_problems_go_soft_then_hard_then_recover() -> None:
    seen_soft_to_hard = seen_recovery = False
    for (_, before), (_, after) in itertools.pairwise(walk(5, 1000)):
        for b, a in zip(before, after):
            if b.state == 0 and a.state != 0:
                assert (a.state_type, a.attempt, a.last_hard_state) == (SOFT, 1, 0)
            if b.state_type == SOFT and a.state_type == HARD and a.state != 0:
                assert b.attempt == MAX_ATTEMPTS - 1 and a.last_hard_state == a.state
                seen_soft_to_hard = True
            if b.state_type == HARD and b.state != 0 and a.state == 0:
                assert a.last_hard_state == 0 and not a.acknowledged
                seen_recovery = True
    assert seen_soft_to_hard and seen_recovery


def test_walk_is_mostly_ok_and_hosts_rarely_down() -> None:
    problems = hosts_down = total = 0
    for _, objects in walk(2, 1000):
        total += 1
        problems += sum(1 for o in objects if o.service and o.state and o.state_type == HARD)
        hosts_down += sum(1 for o in objects if o.service is None and o.state)
    assert problems / total < 4  # of 17 services
    assert hosts_down / total < 0.5


def test_step_is_deterministic_per_seed() -> None:
    assert list(walk(42, 100)) == list(walk(42, 100))
    assert list(walk(42, 100)) != list(walk(43, 100))


@pytest.mark.parametrize("seed", range(20))
def test_something_visible_changes_within_ten_steps(seed: int) -> None:
    # Ten steps of 3 s: a newcomer sees the page change within about 30 s.
    def visible(o: SimObject) -> tuple[int, bool]:
        return (o.state if o.service is None else o.last_hard_state), bool(o.downtime_end)

    states = [[visible(o) for o in objects] for _, objects in walk(seed, 10)]
    assert any(s != states[0] for s in states[1:])


async def test_run_simulator_writes_atomically_and_replaces_the_inode(tmp_path: Path) -> None:
    from bridge.statusdat import parse

    path = tmp_path / "status.dat"
    ticks = itertools.count(T0)
    task = asyncio.create_task(run_simulator(path, interval=0.002, seed=1, clock=lambda: next(ticks)))
    seen: set[float] = set()
    held: list[int] = []
    try:

        async def read_until_enough() -> None:
            while len(seen) < 30:
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    await asyncio.sleep(0.001)
                    continue
                with os.fdopen(os.dup(fd), "rb") as f:
                    raw = f.read()
                data = parse(raw)  # raises on any partial file
                assert len(data.services) == 17
                if data.created in seen:
                    os.close(fd)
                else:
                    # The previous file is still held open, so its inode number cannot be reused.
                    assert not held or os.fstat(held[-1]).st_ino != os.fstat(fd).st_ino
                    held.append(fd)
                    seen.add(data.created)
                await asyncio.sleep(0)

        await asyncio.wait_for(read_until_enough(), HANG_GUARD)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, HANG_GUARD)
        for fd in held:
            os.close(fd)
    assert os.listdir(tmp_path) == ["status.dat"]  # no temp file left behind on cancel
    parse(path.read_bytes())


async def test_each_cycle_is_a_new_inode(tmp_path: Path) -> None:
    path = tmp_path / "status.dat"
    task = asyncio.create_task(run_simulator(path, interval=0.01, seed=3))
    fds: list[int] = []
    try:
        for _ in range(3):

            async def next_inode() -> None:
                while not path.exists() or (fds and os.stat(path).st_ino == os.fstat(fds[-1]).st_ino):
                    await asyncio.sleep(0.005)

            await asyncio.wait_for(next_inode(), HANG_GUARD)
            with contextlib.suppress(FileNotFoundError):
                fds.append(os.open(path, os.O_RDONLY))
        assert len({os.fstat(fd).st_ino for fd in fds}) == len(fds) >= 2
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, HANG_GUARD)
        for fd in fds:
            os.close(fd)


async def test_first_file_is_written_at_once_and_left_on_cancel(tmp_path: Path) -> None:
    from bridge.statusdat import parse

    path = tmp_path / "sub" / "status.dat"  # the directory is created if needed
    task = asyncio.create_task(run_simulator(path, interval=60, seed=0, clock=lambda: T0))

    async def exists() -> None:
        while not path.exists():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(exists(), HANG_GUARD)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, HANG_GUARD)
    assert parse(path.read_bytes()).created == T0
    assert os.listdir(path.parent) == ["status.dat"]
    assert path.stat().st_mode & 0o777 == 0o644
