r"""Strict, fast parser for Nagios 4.x (and Icinga 2.13 compat) status.dat bytes.

Format: at the top level blank lines, "#" comments and blocks "name {"; body lines start
with a tab; a block ends at the first "\t}" line not followed by another tab-indented line.
Status block lines "\tkey=value" split at the first "="; other lines are ignored; which
occurrence of a repeated key is used is unspecified. One info block with a numeric
created is required, and in host/service blocks every key we read but the two outputs
(Icinga omits them before the first check). Anything else, or a file ending inside a block
or without its final newline (read mid-write), raises StatusDatError: never a partial result.

Speed: the first block of each kind is parsed line by line and its key layout compiled into
one regex matching a whole block (both in bridge.statusdat_blocks). Nagios writes all blocks
of a kind alike, so the rest match at C speed; values are then converted column by column.

Chunks: the columns are converted every CHUNK_BLOCKS blocks, never over the whole file at
once. Each C-level step (a map, a join, a dict build) then covers a few thousand values and
holds the GIL for about a millisecond, so an event loop in another thread keeps being served
while a 100k-service file is parsed in a worker thread; it also keeps the raw values of only
one chunk alive at a time.
"""

from __future__ import annotations

import ctypes
import gc
import re
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import suppress
from itertools import compress, repeat
from operator import truth

from bridge.model import CheckState, StatusData
from bridge.statusdat_blocks import (
    BODY,
    INT_RE,
    STATE_FIELDS,
    FastPath,
    StatusDatError,
    decode,
    fast_path,
    info_block,
    located_error,
    status_block,
)
from bridge.statusdat_blocks import (
    KINDS as _KINDS,  # under its old name: tests read statusdat._KINDS
)

__all__ = ["CHUNK_BLOCKS", "StatusDatError", "parse"]

# Blocks per conversion step: ~1 ms of GIL per C-level step on a 100k file, ~1 % slower overall
# than converting everything at once. Tests lower it to exercise chunk boundaries.
CHUNK_BLOCKS = 2048

_BOOL_FIELDS = frozenset({b"has_been_checked", b"problem_has_been_acknowledged", b"is_flapping"})
_TIMESTAMP_FIELDS = frozenset({b"last_check", b"last_state_change"})

_HEADER_RE = re.compile(rb"([A-Za-z_][A-Za-z0-9_]*) \{\Z")
_NON_TAB_LINE_RE = re.compile(rb"\n[^\t]")
_OTHER_BLOCK_RE = re.compile(rb"(?!(?:hoststatus|servicestatus|info) )[A-Za-z_][A-Za-z0-9_]*+ \{\n" + BODY)
_SMALL_INTS = {str(i).encode(): i for i in range(-1, 256)}
_SMALL_BOOLS = {str(i).encode(): bool(i) for i in range(-1, 256)}
_UNESCAPE_RE = re.compile(r"\\[\\n]")


def _gc_untrack() -> Callable[[object], None] | None:
    """CPython's PyObject_GC_UnTrack, or None where ctypes cannot reach it."""
    try:
        untrack = ctypes.pythonapi.PyObject_GC_UnTrack
    except (AttributeError, OSError):  # not CPython
        return None
    untrack.argtypes, untrack.restype = [ctypes.py_object], None
    return untrack


# CheckState is a tuple subclass, and CPython's collector untracks exact tuples only: 100k
# states would stay tracked for their whole life and every full collection would walk them
# (40-70 ms pauses in whichever thread triggers it, the event loop's included). They hold only
# str, int, bool and None, so they can never be part of a reference cycle: untrack them.
_UNTRACK = _gc_untrack()
_UNESCAPE = {"\\\\": "\\", "\\n": "\n"}


def _decode_all(column: list[bytes]) -> list[str]:
    """Decode a column at C speed; fall back value by value only if some value is not UTF-8."""
    try:
        return list(map(bytes.decode, column))
    except UnicodeDecodeError:
        return list(map(decode, column))


def _unescape_all(column: list[bytes]) -> list[str]:
    """Decode long_plugin_output values and undo Nagios' escaping of backslash and newline."""
    texts = [""] * len(column)  # most checks have no long output: touch only the others
    for i in compress(range(len(column)), column):
        text = decode(column[i])
        if "\\\\" in text:  # one pass, so an escaped backslash before "n" stays
            texts[i] = _UNESCAPE_RE.sub(lambda m: _UNESCAPE[m.group()], text)
        else:
            texts[i] = text.replace("\\n", "\n")
    return texts


def _ints(data: bytes, field: bytes, column: list[bytes]) -> Iterable[int]:
    """Convert a column of integer (or flag) values, refusing anything but -?[0-9]+."""
    table = _SMALL_BOOLS if field in _BOOL_FIELDS else _SMALL_INTS
    if field not in _TIMESTAMP_FIELDS and set(column) <= table.keys():
        return map(table.__getitem__, column)  # states and flags: a handful of distinct values
    values = None
    if b"".join(column).isdigit():  # only ASCII digits (but also lets an empty value through)
        with suppress(ValueError):
            values = list(map(int, column))
    if values is None:
        for raw in column:
            if not INT_RE.match(raw):
                pos = data.find(b"\t" + field + b"=" + raw + b"\n")
                raise located_error(data, pos, f"'{field.decode()}' is not an integer: {raw[:40]!r}")
        try:
            values = list(map(int, column))
        except ValueError:  # thousands of digits: beyond int()'s limit for strings
            raise StatusDatError(f"status.dat: a '{field.decode()}' value has too many digits") from None
    return map(truth, values) if field in _BOOL_FIELDS else values


class _Sink:
    """Per kind: raw values of the current chunk, and the states converted so far."""

    __slots__ = ("kind", "width", "flat", "done", "states", "names", "collect")

    def __init__(self, kind: bytes, names: dict[bytes, str], collect: bool) -> None:
        self.kind, self.width = kind, len(_KINDS[kind])
        self.flat: list[bytes] = []
        self.done = 0  # blocks converted so far
        self.states: dict = {}
        self.names = names  # host name bytes -> str, shared by both kinds: one str per host
        self.collect = collect

    def flush(self, data: bytes) -> None:
        """Convert the chunk's raw values into states (later blocks win, as in one dict build)."""
        if self.flat:
            self.done += len(self.flat) // self.width
            chunk = _states(data, self.kind, self.flat, self.names)
            if _UNTRACK is not None:
                deque(map(_UNTRACK, chunk.values()), maxlen=0)
            if self.states:
                self.states.update(chunk)
            else:
                self.states = chunk
            self.flat = []
            if self.collect:
                # The chunk's fresh tuples hold only str/int/bool: a young collection untracks them
                # now (~0.5 ms) rather than all 200k at once when the caller re-enables the GC.
                gc.collect(0)


def _scan(data: bytes, collect: bool = False) -> tuple[float, str | None, dict, dict]:
    """Walk the file once, block by block; return info and the host and service states."""
    info: tuple[float, str | None] | None = None
    names: dict[bytes, str] = {}
    sinks = {kind: _Sink(kind, names, collect) for kind in _KINDS}
    fast: dict[bytes, FastPath | None] = dict.fromkeys(_KINDS)
    generic = dict.fromkeys(_KINDS, 0)
    other = _OTHER_BLOCK_RE.match
    pos, size = 0, len(data)
    while pos < size:
        # Hot loops: runs of blocks that fit a learned layout (all of Nagios' status blocks),
        # at most a chunk at a time, and runs of blocks we only check and skip (comments,
        # downtimes, contacts).
        start = pos
        for kind, path in fast.items():
            if path is not None:
                match, order = path
                sink = sinks[kind]
                extend = sink.flat.extend
                for _ in repeat(None, CHUNK_BLOCKS - len(sink.flat) // sink.width):
                    m = match(data, pos)
                    if m is None:
                        break
                    extend(m.groups() if order is None else m.group(*order))
                    pos = m.end()
                else:
                    sink.flush(data)
        m = other(data, pos)
        while m is not None:
            pos = m.end()
            m = other(data, pos)
        if pos != start:
            continue
        eol = data.find(b"\n", pos)
        if eol < 0:
            raise located_error(data, pos, "the last line has no newline: file truncated")
        line = bytes(data[pos:eol])
        if not line.strip(b" \t") or line[:1] == b"#":
            pos = eol + 1
            continue
        header = _HEADER_RE.match(line)
        if header is None:
            raise located_error(data, pos, f"expected a block header like 'hoststatus {{', got {line[:60]!r}")
        kind = header.group(1)
        end = data.find(b"\n\t}\n", eol)
        while end >= 0 and data.startswith(b"\t", end + 4):
            end = data.find(b"\n\t}\n", end + 3)
        if end < 0:
            raise located_error(data, pos, f"'{kind.decode()}' block is not closed: file truncated")
        if kind in sinks:
            sink = sinks[kind]
            row, layout = status_block(data, kind, eol + 1, end)
            sink.flat.extend(row)
            generic[kind] += 1
            misses = generic[kind]
            # Relearn when most blocks so far missed (Icinga may list pending objects first),
            # only at powers of two: ever-changing layouts must not cost a compile per block.
            if layout is not None and (
                fast[kind] is None
                or (misses & (misses - 1) == 0 and 2 * misses * len(row) > len(sink.flat) + sink.width * sink.done)
            ):
                fast[kind] = fast_path(kind, layout)
            if len(sink.flat) >= CHUNK_BLOCKS * sink.width:
                sink.flush(data)
        else:
            bad = _NON_TAB_LINE_RE.search(data, eol, end + 1)
            if bad is not None:
                raise located_error(data, bad.start() + 1, f"expected a tab-indented line in '{kind.decode()}'")
            if kind == b"info":
                if info is not None:
                    raise located_error(data, pos, "a second info block")
                info = info_block(data, eol + 1, end)
        pos = end + 4
    if info is None:
        raise StatusDatError("status.dat has no info block (no 'created' time)")
    for sink in sinks.values():
        sink.flush(data)
    return *info, sinks[b"hoststatus"].states, sinks[b"servicestatus"].states


def _states(data: bytes, kind: bytes, flat: list[bytes], names: dict[bytes, str]) -> dict:
    """Turn one chunk's flat raw values into {name: CheckState}, column by column at C speed."""
    fields = _KINDS[kind]
    raw = {field: flat[i :: len(fields)] for i, field in enumerate(fields)}
    flat.clear()
    host_names = raw.pop(b"host_name")
    # A host has many services: decode each name once per parse, and share the str.
    new = [name for name in dict.fromkeys(host_names) if name not in names]
    names.update(zip(new, _decode_all(new)))
    hosts = list(map(names.__getitem__, host_names))
    services = _decode_all(raw.pop(b"service_description")) if kind == b"servicestatus" else None
    columns = [_ints(data, f, raw[f]) for f in STATE_FIELDS[:-2]]
    columns.append(_decode_all(raw[b"plugin_output"]))
    columns.append(_unescape_all(raw[b"long_plugin_output"]))
    del raw
    cells = zip(hosts, repeat(None) if services is None else services, *columns)
    states = map(tuple.__new__, repeat(CheckState), cells)
    return dict(zip(hosts if services is None else zip(hosts, services), states))


def parse(data: bytes | bytearray) -> StatusData:
    """Parse a whole status.dat; raise StatusDatError rather than return anything partial.

    A bytearray is parsed in place (the tailer reads into one without a final copy); it must not
    change while parse runs. Every value comes out as bytes, then str/int.
    """
    if not isinstance(data, (bytes, bytearray)):
        data = bytes(data)
    if not data or data.isspace():  # (strip() would copy all of it)
        raise StatusDatError("status.dat is empty")
    # Hundreds of thousands of fresh tuples would trigger repeated full collections
    # for nothing: nothing built here can form a reference cycle.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        created, version, hosts, services = _scan(data, gc_was_enabled)
    finally:
        if gc_was_enabled:
            gc.enable()
    return StatusData(created, version, hosts, services)
