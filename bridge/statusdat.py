"""Strict, fast parser for Nagios 4.x (and Icinga 2.13 compat) status.dat bytes."""

from __future__ import annotations

import math
import re
from functools import lru_cache
from itertools import repeat
from operator import truth
from typing import Callable

from bridge.model import CheckState, StatusData

__all__ = ["StatusDatError", "parse"]


class StatusDatError(ValueError):
    """status.dat is truncated, malformed or missing required data."""


# Canonical field order of a captured row; the first two (plus service_description
# for services) are names, the rest map onto CheckState in this order.
_INT_FIELDS = (
    b"current_state", b"state_type", b"last_hard_state", b"has_been_checked",
    b"problem_has_been_acknowledged", b"scheduled_downtime_depth", b"is_flapping",
    b"last_check", b"last_state_change",
)
_BOOL_FIELDS = frozenset({b"has_been_checked", b"problem_has_been_acknowledged", b"is_flapping"})
# Icinga 2 omits the outputs for objects that have no check result yet.
_TEXT_FIELDS = (b"plugin_output", b"long_plugin_output")
_HOST_FIELDS = (b"host_name", *_INT_FIELDS, *_TEXT_FIELDS)
_SERVICE_FIELDS = (b"host_name", b"service_description", *_INT_FIELDS, *_TEXT_FIELDS)
_KINDS = {b"hoststatus": _HOST_FIELDS, b"servicestatus": _SERVICE_FIELDS}

_INT_RE = re.compile(rb"-?[0-9]+\Z")
_HEADER_RE = re.compile(rb"([A-Za-z_][A-Za-z0-9_]*) \{\Z")
_BAD_BODY_LINE_RE = re.compile(rb"\n[^\t]")
_UNESCAPE_RE = re.compile(r"\\[\\n]")
_UNESCAPE = {"\\\\": "\\", "\\n": "\n"}


def _fail(data: bytes, pos: int, msg: str) -> StatusDatError:
    """Build an error that locates byte offset pos by line number too."""
    line = data.count(b"\n", 0, pos) + 1
    return StatusDatError(f"status.dat line {line} (byte {pos}): {msg}")


def _decode(raw: bytes) -> str:
    """Decode one value as UTF-8, or Latin-1 (lossless) when it is not valid UTF-8."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _decode_all(column: tuple[bytes, ...]) -> list[str]:
    """Decode a whole column at C speed, falling back per value only when needed."""
    try:
        return list(map(bytes.decode, column))
    except UnicodeDecodeError:
        return list(map(_decode, column))


def _unescape(text: str) -> str:
    """Undo Nagios' long_plugin_output escaping in one pass (so `\\\\n` stays `\\n`)."""
    return _UNESCAPE_RE.sub(lambda m: _UNESCAPE[m.group()], text) if "\\" in text else text


@lru_cache(maxsize=32)
def _fast_pattern(kind: bytes, layout: tuple[bytes | None, ...]) -> tuple[Callable, tuple[int, ...]]:
    """Compile a block regex for one key layout; returns its match() and group order."""
    # Unrolled per-line pieces keep sre on literal + single-class loops (no backtracking);
    # a layout mismatch just fails the match and the block takes the generic path.
    parts = [rb"\n*", re.escape(kind), rb" \{\n"]
    group_of: dict[bytes, int] = {}
    for key in layout:
        if key is None:
            parts.append(rb"\t[^}\n][^\n]*\n")
        else:
            group_of[key] = len(group_of) + 1
            value = rb"(-?[0-9]+)" if key in _INT_FIELDS else rb"([^\n]*)"
            parts.append(rb"\t" + re.escape(key) + b"=" + value + rb"\n")
    parts.append(rb"(?:\t[^}\n][^\n]*\n)*\t\}\n")
    order = tuple(group_of[f] for f in _KINDS[kind])
    return re.compile(b"".join(parts)).match, order


def _block_row(data: bytes, kind: bytes, start: int, end: int) -> tuple[tuple[bytes, ...], tuple | None]:
    """Parse one status block body generically; return its row and its layout (None if partial)."""
    fields = _KINDS[kind]
    values: dict[bytes, bytes] = {}
    layout: list[bytes | None] = []
    pos = start
    for line in data[start:end].split(b"\n") if end > start else ():
        if line[:1] != b"\t":
            raise _fail(data, pos, f"expected a tab-indented key=value line inside '{kind.decode()}'")
        key, sep, value = line[1:].partition(b"=")
        wanted = sep and key in fields and key not in values
        if wanted:
            if key in _INT_FIELDS and not _INT_RE.match(value):
                raise _fail(data, pos, f"'{key.decode()}' is not an integer: {value[:40]!r}")
            values[key] = value
        layout.append(key if wanted else None)
        pos += len(line) + 1
    missing = [f.decode() for f in fields if f not in values and f not in _TEXT_FIELDS]
    if missing:
        raise _fail(data, start, f"'{kind.decode()}' block lacks {', '.join(missing)}")
    complete = len(values) == len(fields)
    if complete:
        # Only lines up to the last wanted key belong to the fixed part of the layout.
        del layout[max(i for i, k in enumerate(layout) if k is not None) + 1 :]
    row = tuple(values.get(f, b"") for f in fields)
    return row, tuple(layout) if complete else None


def _info(data: bytes, start: int, end: int) -> tuple[float, str | None]:
    """Read created/version from the info block body."""
    info = dict(line[1:].partition(b"=")[::2] for line in data[start:end].split(b"\n"))
    raw = info.get(b"created")
    if raw is None:
        raise _fail(data, start, "info block has no 'created'")
    try:
        created = float(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        created = math.nan
    if not math.isfinite(created) or created < 0:
        raise _fail(data, start, f"info.created is not a timestamp: {raw[:40]!r}")
    version = info.get(b"version")
    return created, None if version is None else _decode(version)


def _scan(data: bytes) -> tuple[float | None, str | None, list[tuple], list[tuple]]:
    """Walk the top level once, collecting raw host and service rows."""
    created: float | None = None
    version: str | None = None
    rows: dict[bytes, list[tuple]] = {b"hoststatus": [], b"servicestatus": []}
    fast: dict[bytes, tuple[Callable, tuple[int, ...]] | None] = dict.fromkeys(rows)
    misses = dict.fromkeys(rows, 0)
    n = len(data)
    pos = 0
    while pos < n:
        for kind, pattern in fast.items():
            # Hot loop: a run of blocks of one kind that fit the learned layout.
            if pattern is None:
                continue
            match, order = pattern
            append = rows[kind].append
            m = match(data, pos)
            while m is not None:
                append(m.group(*order))
                pos = m.end()
                m = match(data, pos)
        if pos >= n:
            break
        eol = data.find(b"\n", pos)
        if eol < 0:
            raise _fail(data, pos, "last line has no newline: file truncated")
        line = data[pos:eol]
        if not line.strip(b" \t") or line[:1] == b"#":
            pos = eol + 1
            continue
        header = _HEADER_RE.match(line)
        if header is None:
            raise _fail(data, pos, f"expected a block header like 'hoststatus {{', got {line[:60]!r}")
        kind = header.group(1)
        end = data.find(b"\n\t}\n", eol)
        if end < 0:
            raise _fail(data, pos, f"block '{kind.decode()}' is not closed: file truncated")
        if kind in rows:
            row, layout = _block_row(data, kind, eol + 1, end)
            rows[kind].append(row)
            misses[kind] += 1
            # Relearn when this layout has become the common one (e.g. Icinga pending objects first).
            if layout is not None and (fast[kind] is None or 2 * misses[kind] > len(rows[kind])):
                fast[kind] = _fast_pattern(kind, layout)
        else:
            bad = _BAD_BODY_LINE_RE.search(data, eol, end + 1)
            if bad is not None:
                raise _fail(data, bad.start() + 1, f"expected a tab-indented line inside '{kind.decode()}'")
            if kind == b"info":
                if created is not None:
                    raise _fail(data, pos, "second info block")
                created, version = _info(data, eol + 1, end)
        pos = end + 4
    return created, version, rows[b"hoststatus"], rows[b"servicestatus"]


def _build(rows: list[tuple], services: bool) -> dict:
    """Turn raw rows into CheckStates column by column, at C speed."""
    width = len(_SERVICE_FIELDS if services else _HOST_FIELDS)
    columns = list(zip(*rows)) if rows else [()] * width
    del rows[:]
    names = [_decode_all(c) for c in columns[: 1 + services]]
    try:
        ints = [list(map(int, c)) for c in columns[1 + services : -2]]
    except ValueError as e:  # only a value with thousands of digits gets here
        raise StatusDatError(f"status.dat: integer value too long ({e})") from None
    for i, field in enumerate(_INT_FIELDS):
        if field in _BOOL_FIELDS:
            ints[i] = list(map(truth, ints[i]))
    output = _decode_all(columns[-2])
    long_output = list(map(_unescape, _decode_all(columns[-1])))
    del columns
    keys = zip(*names) if services else names[0]
    service = names[1] if services else repeat(None)
    states = map(tuple.__new__, repeat(CheckState), zip(names[0], service, *ints, output, long_output))
    return dict(zip(keys, states))


def parse(data: bytes) -> StatusData:
    """Parse a whole status.dat; raise StatusDatError rather than return anything partial."""
    if not isinstance(data, bytes):
        data = bytes(data)
    if not data.strip():
        raise StatusDatError("status.dat is empty")
    created, version, host_rows, service_rows = _scan(data)
    if created is None:
        raise StatusDatError("status.dat has no info block with 'created'")
    return StatusData(created, version, _build(host_rows, False), _build(service_rows, True))
