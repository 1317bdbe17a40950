"""status.dat one block at a time: the fields read, the strict line-by-line parse, the whole-block regex per layout."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import lru_cache


class StatusDatError(ValueError):
    """status.dat is truncated, malformed or missing required data."""


# Raw values kept per block, in the order Nagios 4 writes them, so that its blocks need
# no reordering (Match.groups() is the row as is).
HOST_FIELDS = (
    b"host_name", b"has_been_checked", b"current_state", b"last_hard_state", b"plugin_output",
    b"long_plugin_output", b"last_check", b"state_type", b"last_state_change",
    b"problem_has_been_acknowledged", b"is_flapping", b"scheduled_downtime_depth",
)
SERVICE_FIELDS = (
    b"host_name", b"service_description", b"has_been_checked", b"current_state",
    b"last_hard_state", b"state_type", b"last_state_change", b"plugin_output",
    b"long_plugin_output", b"last_check", b"problem_has_been_acknowledged", b"is_flapping",
    b"scheduled_downtime_depth",
)
KINDS = {b"hoststatus": HOST_FIELDS, b"servicestatus": SERVICE_FIELDS}
# CheckState's fields after host and service, as status.dat keys.
STATE_FIELDS = (
    b"current_state", b"state_type", b"last_hard_state", b"has_been_checked",
    b"problem_has_been_acknowledged", b"scheduled_downtime_depth", b"is_flapping",
    b"last_check", b"last_state_change", b"plugin_output", b"long_plugin_output",
)
# Icinga 2 omits both outputs for objects that have no check result yet.
TEXT_FIELDS = frozenset({b"plugin_output", b"long_plugin_output"})
INT_FIELDS = frozenset(STATE_FIELDS) - TEXT_FIELDS
INT_RE = re.compile(rb"-?[0-9]+\Z")
# Body lines up to the block's end: the first "\t}" line not followed by another body line.
BODY = rb"(?:\t(?!\}\n(?!\t))[^\n]*+\n)*+\t\}\n\n*+"
# The key (or None) on each line of a block, up to its last wanted key.
Layout = tuple[bytes | None, ...]
# A compiled whole-block match() and the group numbers giving KINDS order (None: groups()).
FastPath = tuple[Callable, "tuple[int, ...] | None"]


def located_error(data: bytes, pos: int, msg: str) -> StatusDatError:
    """Build an error that locates byte offset pos by line too."""
    line = data.count(b"\n", 0, pos) + 1
    return StatusDatError(f"status.dat line {line} (byte {pos}): {msg}")


def decode(raw: bytes) -> str:
    """Decode one value as UTF-8, or as Latin-1 (never fails) when it is not UTF-8."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@lru_cache(maxsize=16)
def fast_path(kind: bytes, layout: Layout) -> FastPath:
    """Compile a whole-block regex for one key layout (a key or None per line)."""
    # Unrolled lines and possessive repeats keep sre from ever backtracking. A block with
    # another layout just fails to match and takes the generic path: never less strict.
    parts = [re.escape(kind), rb" \{\n"]
    group_of: dict[bytes, int] = {}
    for key in layout:
        if key is None:
            parts.append(rb"\t[^\n]*+\n")
        else:
            group_of[key] = len(group_of) + 1
            parts.append(rb"\t" + re.escape(key) + rb"=([^\n]*+)\n")
    parts.append(BODY)
    order = tuple(group_of[f] for f in KINDS[kind])
    return re.compile(b"".join(parts)).match, None if order == tuple(sorted(order)) else order


def status_block(data: bytes, kind: bytes, start: int, end: int) -> tuple[tuple, Layout | None]:
    """Parse one host/service block body generically; also return its layout if complete."""
    fields = KINDS[kind]
    values: dict[bytes, bytes] = {}
    layout: list[bytes | None] = []
    pos = start
    for line in bytes(data[start:end]).split(b"\n") if end >= start else ():
        if line[:1] != b"\t":
            raise located_error(data, pos, f"expected a tab-indented key=value line in '{kind.decode()}'")
        key, sep, value = line[1:].partition(b"=")
        wanted = bool(sep) and key in fields and key not in values
        if wanted:
            if key in INT_FIELDS and not INT_RE.match(value):
                raise located_error(data, pos, f"'{key.decode()}' is not an integer: {value[:40]!r}")
            values[key] = value
        layout.append(key if wanted else None)
        pos += len(line) + 1
    missing = [f.decode() for f in fields if f not in values and f not in TEXT_FIELDS]
    if missing:
        raise located_error(data, start - 1, f"'{kind.decode()}' block lacks {', '.join(missing)}")
    row = tuple(values.get(f, b"") for f in fields)
    if len(values) < len(fields):
        return row, None
    # Lines after the last wanted key (custom variables) are matched by the trailer.
    last = max(i for i, key in enumerate(layout) if key is not None)
    return row, tuple(layout[: last + 1])


def info_block(data: bytes, start: int, end: int) -> tuple[float, str | None]:
    """Read created and version from the info block body."""
    info = dict(line[1:].partition(b"=")[::2] for line in bytes(data[start:end]).split(b"\n"))
    raw = info.get(b"created")
    if raw is None:
        raise located_error(data, start - 1, "the info block has no 'created'")
    try:
        created = float(raw.decode("ascii")) if raw.strip() == raw else math.nan
    except ValueError:  # also UnicodeDecodeError
        created = math.nan
    if not math.isfinite(created) or created < 0:
        raise located_error(data, start - 1, f"info 'created' is not a timestamp: {raw[:40]!r}")
    version = info.get(b"version")
    return created, None if version is None else decode(version)
