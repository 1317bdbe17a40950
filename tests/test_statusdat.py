"""Tests for bridge.statusdat: real Nagios corpus, tricky values, truncation, Icinga, fuzz."""

from __future__ import annotations

import gzip
import math
import random
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bridge.statusdat as statusdat_module
from bridge.model import CheckState, StatusData
from bridge.statusdat import StatusDatError, parse
from tests.conftest import CORPUS

# --- a deliberately naive reference parser: one line at a time, no shortcuts -------------

class NaiveError(Exception):
    """The reference parser refuses the input."""


HOST_KEYS = ("host_name",)
SERVICE_KEYS = ("host_name", "service_description")
INT_KEYS = (
    "current_state", "state_type", "last_hard_state", "has_been_checked",
    "problem_has_been_acknowledged", "scheduled_downtime_depth", "is_flapping",
    "last_check", "last_state_change",
)
TEXT_KEYS = ("plugin_output", "long_plugin_output")


def naive_text(raw: bytes) -> str:
    """Decode like the spec says: UTF-8, else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def naive_unescape(text: str) -> str:
    """Undo Nagios' long_plugin_output escaping, character by character."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "\\n":
            out.append("\\" if text[i + 1] == "\\" else "\n")
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def naive_blocks(data: bytes) -> list[tuple[str, list[bytes], int]]:
    """Split into (name, body lines without the tab, end offset) or raise NaiveError."""
    if not data.strip():
        raise NaiveError("empty")
    if not data.endswith(b"\n"):
        raise NaiveError("no final newline")
    lines = data[:-1].split(b"\n")
    blocks, i, offset = [], 0, 0
    while i < len(lines):
        line = lines[i]
        offset += len(line) + 1
        i += 1
        if not line.strip(b" \t") or line.startswith(b"#"):
            continue
        header = re.fullmatch(rb"([A-Za-z_][A-Za-z0-9_]*) \{", line)
        if header is None:
            raise NaiveError(f"junk at top level: {line!r}")
        body = []
        while True:
            if i >= len(lines):
                raise NaiveError("unclosed block")
            line = lines[i]
            offset += len(line) + 1
            i += 1
            if line == b"\t}" and (i >= len(lines) or not lines[i].startswith(b"\t")):
                break
            if not line.startswith(b"\t"):
                raise NaiveError("body line without tab")
            body.append(line[1:])
        blocks.append((header.group(1).decode(), body, offset))
    return blocks


def naive_block(name: str, body: list[bytes]) -> tuple[float, str | None] | CheckState | None:
    """One block's meaning: info's (created, version), a CheckState, or None (skipped)."""
    pairs = [line.split(b"=", 1) for line in body if b"=" in line]
    if name == "info":
        fields = {k: v for k, v in pairs}
        raw = fields.get(b"created")
        if raw is None:
            raise NaiveError("no created")
        try:
            created = float(raw.decode("ascii")) if raw.strip() == raw else math.nan
        except ValueError:
            created = math.nan
        if not math.isfinite(created) or created < 0:
            raise NaiveError("bad created")
        return created, naive_text(fields[b"version"]) if b"version" in fields else None
    if name not in ("hoststatus", "servicestatus"):
        return None
    names = HOST_KEYS if name == "hoststatus" else SERVICE_KEYS
    wanted = {k.encode() for k in names + INT_KEYS + TEXT_KEYS}
    fields = {}
    for key, value in pairs:
        if key in wanted:
            if key in fields:
                raise Repeated(key)
            fields[key] = value
    get = {k.decode(): v for k, v in fields.items()}
    for key in names + INT_KEYS:
        if key not in get:
            raise NaiveError(f"missing {key}")
    for key in INT_KEYS:
        if not re.fullmatch(rb"-?[0-9]+", get[key]) or len(get[key]) > 4000:
            raise NaiveError(f"bad {key}")
    n = {k: int(get[k]) for k in INT_KEYS}
    return CheckState(
        naive_text(get["host_name"]),
        naive_text(get["service_description"]) if name == "servicestatus" else None,
        n["current_state"], n["state_type"], n["last_hard_state"], n["has_been_checked"] != 0,
        n["problem_has_been_acknowledged"] != 0, n["scheduled_downtime_depth"], n["is_flapping"] != 0,
        n["last_check"], n["last_state_change"], naive_text(get.get("plugin_output", b"")),
        naive_unescape(naive_text(get.get("long_plugin_output", b""))),
    )


class Repeated(Exception):
    """A status block repeats a key: which occurrence parse() uses is unspecified."""


def naive_collect(meanings: list) -> StatusData:
    """Assemble block meanings into the StatusData a file of exactly those blocks holds."""
    infos = [m for m in meanings if isinstance(m, tuple) and not isinstance(m, CheckState)]
    if len(infos) != 1:
        raise NaiveError("need exactly one info block")
    hosts = {m.host: m for m in meanings if isinstance(m, CheckState) and m.service is None}
    states = [m for m in meanings if isinstance(m, CheckState)]
    services = {(m.host, m.service): m for m in states if m.service is not None}
    return StatusData(infos[0][0], infos[0][1], hosts, services)


def naive_parse(data: bytes) -> StatusData:
    """The reference result for a whole file (raises NaiveError or Repeated)."""
    return naive_collect([naive_block(name, body) for name, body, _ in naive_blocks(data)])


# --- fixtures and builders --------------------------------------------------------------

@cache
def corpus(name: str) -> bytes:
    """A corpus file (tests/data), decompressed."""
    return gzip.decompress((CORPUS / name).read_bytes())


@pytest.fixture(scope="module")
def small_corpus() -> bytes:
    return corpus("status-1k.dat.gz")


@pytest.fixture(scope="module")
def parsed_small(small_corpus: bytes) -> StatusData:
    return parse(small_corpus)


def block(kind: str, **fields: str | bytes | int) -> bytes:
    """Render one status.dat block; values are written as given (bytes are raw)."""
    lines = [kind.encode() + b" {"]
    for key, value in fields.items():
        raw = value if isinstance(value, bytes) else str(value).encode()
        lines.append(b"\t" + key.encode() + b"=" + raw)
    return b"\n".join(lines) + b"\n\t}\n\n"


INFO = block("info", created=1700000000, version="4.4.6", last_update_check=0)


def host(name: str = "web-1", **overrides: str | bytes | int) -> bytes:
    """A hoststatus block in Nagios 4.4 key order."""
    fields: dict = {
        "host_name": name, "modified_attributes": 0, "check_command": "check-host-alive",
        "has_been_checked": 1, "check_type": 0, "current_state": 0, "last_hard_state": 0,
        "plugin_output": "PING OK - Packet loss = 0%", "long_plugin_output": "",
        "performance_data": "rta=0.1ms;3000;5000;0", "last_check": 1700000000, "state_type": 1,
        "last_state_change": 1699990000, "problem_has_been_acknowledged": 0, "is_flapping": 0,
        "percent_state_change": 0.00, "scheduled_downtime_depth": 0,
    }
    fields.update(overrides)
    return block("hoststatus", **fields)


def service(host_name: str = "web-1", description: str = "HTTP", **overrides: str | bytes | int) -> bytes:
    """A servicestatus block in Nagios 4.4 key order."""
    fields: dict = {
        "host_name": host_name, "service_description": description, "modified_attributes": 0,
        "check_command": "check_http", "has_been_checked": 1, "check_type": 0, "current_state": 0,
        "last_hard_state": 0, "current_attempt": 1, "max_attempts": 3, "state_type": 1,
        "last_state_change": 1699990000, "last_time_ok": 1700000000, "plugin_output": "HTTP OK",
        "long_plugin_output": "", "performance_data": "time=0.1s;;;0", "last_check": 1700000000,
        "problem_has_been_acknowledged": 0, "is_flapping": 0, "percent_state_change": 0.00,
        "scheduled_downtime_depth": 0,
    }
    fields.update(overrides)
    return block("servicestatus", **fields)


def statusdat(*blocks: bytes) -> bytes:
    """A whole file: Nagios' comment header, info, programstatus and the given blocks."""
    head = b"#" * 40 + b"\n#          NAGIOS STATUS FILE\n" + b"#" * 40 + b"\n\n"
    return head + INFO + block("programstatus", nagios_pid=42, daemon_mode=1) + b"".join(blocks)


def check_against_naive(data: bytes) -> None:
    """parse() and the naive parser agree: both refuse, or both return the same objects."""
    try:
        expected = naive_parse(data)
    except NaiveError:
        expected = None
    except Repeated:  # a block repeating a key may go either way, but only as StatusDatError
        expected = ...
    try:
        got = parse(data)
    except StatusDatError:
        got = None
    if expected is not ...:
        assert got == expected, data


# --- the real Nagios 4.4.6 corpus -------------------------------------------------------

def test_corpus_sizes_and_info(parsed_small: StatusData) -> None:
    assert parsed_small.created == 1795369768.0
    assert isinstance(parsed_small.created, float)
    assert parsed_small.version == "4.4.6"
    assert (len(parsed_small.hosts), len(parsed_small.services)) == (50, 1000)


@pytest.mark.parametrize(
    "field",
    ["current_state", "state_type", "last_hard_state", "acknowledged", "downtime_depth",
     "has_been_checked", "flapping"],
)
def test_corpus_counts_match_naive_count(small_corpus: bytes, parsed_small: StatusData, field: str) -> None:
    key = {
        "acknowledged": b"problem_has_been_acknowledged", "downtime_depth": b"scheduled_downtime_depth",
        "flapping": b"is_flapping",
    }.get(field, field.encode())
    naive: Counter = Counter()
    kind = None
    for line in small_corpus.split(b"\n"):  # counted straight off the lines
        if line.endswith(b" {"):
            kind = line[:-2]
        elif kind in (b"hoststatus", b"servicestatus") and line.startswith(b"\t" + key + b"="):
            value = int(line.split(b"=", 1)[1])
            naive[kind.decode(), value > 0 if field == "downtime_depth" else value] += 1
    got: Counter = Counter()
    for kind_name, states in (("hoststatus", parsed_small.hosts), ("servicestatus", parsed_small.services)):
        for state in states.values():
            value = getattr(state, field)
            got[kind_name, value > 0 if field == "downtime_depth" else int(value)] += 1
    assert got == naive
    assert sum(naive.values()) == 1050


def test_corpus_equals_naive_parser(small_corpus: bytes, parsed_small: StatusData) -> None:
    assert parsed_small == naive_parse(small_corpus)


def test_corpus_spot_checks(parsed_small: StatusData) -> None:
    cpu = parsed_small.services["host-00001", "CPU Load 001"]
    assert cpu == CheckState(
        host="host-00001", service="CPU Load 001", current_state=2, state_type=1, last_hard_state=2,
        has_been_checked=True, acknowledged=False, downtime_depth=1, flapping=False,
        last_check=1795366443, last_state_change=1795366443,
        plugin_output="CRITICAL - load average: 9.63, 8.67, 7.70", long_plugin_output="",
    )
    acked = parsed_small.services["host-00002", "Memory 002"]
    assert acked._replace(plugin_output="") == CheckState(
        "host-00002", "Memory 002", current_state=1, state_type=0, last_hard_state=0,
        has_been_checked=True, acknowledged=True, downtime_depth=0, flapping=False,
        last_check=1795366624, last_state_change=1795366624, plugin_output="", long_plugin_output="",
    )
    down = parsed_small.hosts["host-00023"]
    assert (down.service, down.current_state, down.state_type) == (None, 1, 1)
    assert down.plugin_output == "CRITICAL - Host Unreachable (host-00023)"
    assert parsed_small.hosts["host-00001"].plugin_output == "PING OK - Packet loss = 0%, RTA = 1.10 ms"
    cert = parsed_small.services["host-00001", "HTTPS cert 008"]
    assert cert.long_plugin_output.split("\n") == [
        "/: 28% used (ok)", "/var: 35% used (ok)", "/home: 42% used (ok)", "/srv: 49% used (ok)"
    ]
    assert isinstance(cert.last_check, int) and isinstance(cert.has_been_checked, bool)


def test_corpus_multiline_output_is_unescaped(small_corpus: bytes, parsed_small: StatusData) -> None:
    escaped = small_corpus.count(b"\tlong_plugin_output=/")
    multi = [s for s in parsed_small.services.values() if "\n" in s.long_plugin_output]
    assert escaped == len(multi) == 97
    assert not any("\\n" in s.long_plugin_output for s in multi)


def test_corpus_bytearray_and_memoryview_inputs(small_corpus: bytes, parsed_small: StatusData) -> None:
    assert parse(bytearray(small_corpus)) == parsed_small
    assert parse(memoryview(small_corpus)) == parsed_small


# --- tricky values ----------------------------------------------------------------------

@pytest.mark.parametrize(
    "raw, text",
    [
        (b"CRITICAL - a=b c==d", "CRITICAL - a=b c==d"),
        (b"braces } { and }", "braces } { and }"),
        (b"tab then brace \t}", "tab then brace \t}"),
        (b"\t}", "\t}"),
        (b"semi;colon #hash |pipe", "semi;colon #hash |pipe"),
        (b"raw \\n stays \\\\ raw", "raw \\n stays \\\\ raw"),
        (b"", ""),
        ("caf\u00e9 \u2713".encode(), "caf\u00e9 \u2713"),
        (b"Latin-1 caf\xe9", "Latin-1 caf\u00e9"),
        (b"invalid \xff\xfe\x80", "invalid \u00ff\u00fe\u0080"),
        (b"nul \x00 and del \x7f", "nul \x00 and del \x7f"),
    ],
)
def test_plugin_output_is_raw(raw: bytes, text: str) -> None:
    # Three services, so the value goes through both the generic path and the fast path.
    data = statusdat(host(), *(service(description=f"S{i}", plugin_output=raw) for i in range(3)))
    result = parse(data)
    assert [s.plugin_output for s in result.services.values()] == [text] * 3
    check_against_naive(data)


@pytest.mark.parametrize(
    "raw, text",
    [
        (b"", ""),
        (b"one\\ntwo", "one\ntwo"),
        (b"a\\\\b", "a\\b"),
        (b"backslash then n: \\\\n", "backslash then n: \\n"),
        (b"\\\\\\n", "\\\n"),
        (b"trailing \\", "trailing \\"),
        (b"other escapes \\t \\r stay", "other escapes \\t \\r stay"),
        (b"/: 28% used\\n/var: 35% used\\n", "/: 28% used\n/var: 35% used\n"),
        (b"caf\xe9\\nLatin-1", "caf\u00e9\nLatin-1"),
        (b"k=v } { \\n =", "k=v } { \n ="),
    ],
)
def test_long_plugin_output_is_unescaped(raw: bytes, text: str) -> None:
    services = (service(description=f"S{i}", long_plugin_output=raw) for i in range(3))
    data = statusdat(host(long_plugin_output=raw), *services)
    result = parse(data)
    assert result.hosts["web-1"].long_plugin_output == text
    assert [s.long_plugin_output for s in result.services.values()] == [text] * 3


def test_names_keep_odd_bytes_and_equals() -> None:
    data = statusdat(
        host("h\xe9".encode("latin-1")), host("h=1"), service("h=1", "Disk /var=x"),
        service("h=1", "Disk } {"), service("h\xe9".encode("latin-1"), "caf\xe9 \u2713"),
    )
    result = parse(data)
    assert set(result.hosts) == {"h\u00e9", "h=1"}
    assert set(result.services) == {
        ("h=1", "Disk /var=x"), ("h=1", "Disk } {"), ("h\u00e9", "caf\u00e9 \u2713")
    }


def test_states_flags_and_pending() -> None:
    data = statusdat(
        host("up"), host("down", current_state=1, last_hard_state=1, state_type=1),
        host("new", has_been_checked=0, plugin_output=""),
        service("up", "soft", current_state=2, state_type=0, last_hard_state=0),
        service("up", "acked", current_state=2, problem_has_been_acknowledged=1),
        service("up", "dt", scheduled_downtime_depth=2, is_flapping=1, last_check=-1),
    )
    result = parse(data)
    assert result.hosts["down"].current_state == 1
    assert result.hosts["new"].has_been_checked is False
    soft = result.services["up", "soft"]
    assert (soft.current_state, soft.state_type, soft.last_hard_state) == (2, 0, 0)
    assert result.services["up", "acked"].acknowledged is True
    dt = result.services["up", "dt"]
    assert (dt.downtime_depth, dt.flapping, dt.last_check) == (2, True, -1)


def test_custom_variables_after_the_last_key() -> None:
    # Nagios writes "_NAME=modified;value" lines at the end of a status block.
    blocks = [service(description=f"S{i}") for i in range(4)]
    blocks[2] = blocks[2].replace(b"\n\t}\n", b"\n\t_OWNER=0;ops=team\n\t_NOTE=1;a } {\n\t}\n")
    result = parse(statusdat(host(), *blocks))
    assert len(result.services) == 4


def test_unneeded_blocks_are_skipped() -> None:
    data = statusdat(
        host(), service(),
        block("contactstatus", contact_name="admin", host_notification_period="24x7"),
        block("servicecomment", host_name="web-1", service_description="HTTP", comment_data="x=y } {"),
        block("hostdowntime", host_name="web-1", comment="planned"),
    )
    result = parse(data)
    assert list(result.hosts) == ["web-1"] and list(result.services) == [("web-1", "HTTP")]


def test_icinga_2_13_compat_file() -> None:
    # Icinga 2.13 writes a float created, other keys in another order, a "check_period\t24x7"
    # line without "=", no outputs before the first check result, and comments in between.
    def icinga(kind: str, name: str, svc: str | None, state: int, checked: bool = True) -> bytes:
        lines = [f"{kind} {{", f"\thost_name={name}"]
        if svc:
            lines.append(f"\tservice_description={svc}")
        lines += [
            "\tcheck_command=hostalive!", "\tevent_handler=", "\tcheck_interval=1.000000",
            "\tretry_interval=0.500000", f"\thas_been_checked={int(checked)}", "\tshould_be_scheduled=1",
            "\tevent_handler_enabled=1", "\tcheck_period\t24x7", "\tcheck_execution_time=0.012",
            f"\tcurrent_state={state}", f"\tlast_hard_state={state}", "\tlast_time_ok=1700000000",
            "\tlast_time_warn=0", "\tstate_type=1", "\tlast_check=1700000000",
        ]
        if checked:
            lines += [f"\tplugin_output=OUT {name} {svc}", "\tlong_plugin_output=a\\nb"]
            lines += ["\tperformance_data="]
        lines += [
            "\tnext_check=1700000060", "\tcurrent_attempt=1", "\tmax_attempts=3",
            "\tlast_state_change=1699990000", "\tlast_hard_state_change=1699990000",
            "\tis_flapping=0", "\tpercent_state_change=0.000000", "\tproblem_has_been_acknowledged=0",
            "\tacknowledgement_type=0", "\tacknowledgement_end_time=0.000000",
            "\tscheduled_downtime_depth=0", "\tis_reachable=1", "\t}", "", "",
        ]
        return "\n".join(lines).encode()

    parts = [
        b"# Icinga status file\n# This file is auto-generated. Do not modify this file.\n\n",
        b"info {\n\tcreated=1700000000.123456\n\tversion=r2.13.7-1\n\t}\n\n",
        b"programstatus {\n\ticinga_pid=1234\n\tdaemon_mode=1\n\t}\n\n",
    ]
    for h in range(3):
        parts.append(icinga("hoststatus", f"h{h}", None, 0, checked=h != 0))
        for s in range(4):
            parts.append(icinga("servicestatus", f"h{h}", f"s{s}", s % 4, checked=(h, s) != (1, 2)))
        parts.append(block("servicecomment", service_description="s0", host_name=f"h{h}", comment_id=1))
    data = b"".join(parts)
    result = parse(data)
    assert result.created == pytest.approx(1700000000.123456)
    assert result.version == "r2.13.7-1"
    assert len(result.hosts) == 3 and len(result.services) == 12
    assert result.hosts["h0"].plugin_output == "" and result.hosts["h0"].has_been_checked is False
    assert result.hosts["h1"].plugin_output == "OUT h1 None"
    assert result.services["h2", "s3"].current_state == 3
    assert result.services["h2", "s3"].long_plugin_output == "a\nb"
    assert result.services["h1", "s2"].plugin_output == ""
    check_against_naive(data)


def test_key_order_changes_mid_file() -> None:
    # The fast path learns Nagios' order from the first block; other orders must still parse.
    reordered = b"servicestatus {\n\tscheduled_downtime_depth=3\n\tis_flapping=1\n" + b"\n".join(
        line for line in service("web-1", "rev", current_state=1).split(b"\n")[1:]
        if not line.startswith((b"\tscheduled_downtime_depth=", b"\tis_flapping="))
    )
    first = [service(description=f"S{i}") for i in range(3)]
    data = statusdat(host(), *first, reordered, service(description="last"))
    result = parse(data)
    assert result.services["web-1", "rev"].downtime_depth == 3
    assert result.services["web-1", "rev"].flapping is True
    assert result.services["web-1", "rev"].current_state == 1
    assert len(result.services) == 5
    check_against_naive(data)


# --- refusals ---------------------------------------------------------------------------

GOOD = statusdat(host(), service(), service(description="SSH"))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b" \n\n\t\n", "empty"),
        (b"# only a comment\n", "no info block"),
        (statusdat(host()).replace(INFO, b""), "no info block"),
        (statusdat(host()).replace(b"\tcreated=1700000000\n", b""), "no 'created'"),
        (statusdat(host()).replace(b"created=1700000000", b"created=soon"), "not a timestamp"),
        (statusdat(host()).replace(b"created=1700000000", b"created=nan"), "not a timestamp"),
        (statusdat(host()).replace(b"created=1700000000", b"created= 1700000000"), "not a timestamp"),
        (statusdat(host()).replace(b"created=1700000000", b"created="), "not a timestamp"),
        (statusdat(host()) + INFO, "second info block"),
        (statusdat(host(current_state="x")), "'current_state' is not an integer"),
        (statusdat(host(), host("b", current_state="x")), "'current_state' is not an integer"),
        (statusdat(host(), host("b"), host("c", last_check="")), "'last_check' is not an integer"),
        (statusdat(host(), host("b"), host("c", last_check="1.5")), "'last_check' is not an integer"),
        (statusdat(host(), host("b"), host("c", last_check="9" * 5000)), "too many digits"),
        (statusdat(host(), service(), service("b", state_type=" 1")), "'state_type' is not an integer"),
        (statusdat(host().replace(b"\tcurrent_state=0\n", b"")), "lacks current_state"),
        (statusdat(service().replace(b"\tservice_description=HTTP\n", b"")), "lacks service_description"),
        (GOOD.replace(b"\tcheck_type=0\n", b"check_type=0\n", 1), "tab-indented"),
        (GOOD.replace(b"servicestatus {", b"servicestatus{", 1), "block header"),
        (GOOD + b"garbage\n", "block header"),
        (GOOD[:-1] + b"x", "no newline"),
        (GOOD.rstrip(b"\n"), "not closed"),
        (GOOD + b"servicestatus {\n\thost_name=web-1\n", "not closed"),
        (GOOD.replace(b"\r", b"").replace(b"\n", b"\r\n"), "block header"),
    ],
)
def test_refuses(data: bytes, message: str) -> None:
    with pytest.raises(StatusDatError, match=re.escape(message)):
        parse(data)
    check_against_naive(data)


def test_error_names_the_line() -> None:
    data = statusdat(host(), host("b", current_state="DOWN"))
    line = data[: data.index(b"current_state=DOWN")].count(b"\n") + 1
    with pytest.raises(StatusDatError, match=rf"line {line} \(byte \d+\)"):
        parse(data)


def test_error_is_a_value_error() -> None:
    assert issubclass(StatusDatError, ValueError)


# --- truncated files (copied in place, read mid-write) ---------------------------------

def check_cuts(data: bytes, cuts: list[int]) -> int:
    """Each prefix is refused unless cut right after a block: then it holds exactly the blocks before."""
    blocks = [(end, naive_block(name, body)) for name, body, end in naive_blocks(data)]
    accepted = 0
    for cut in sorted(set(cuts)):
        prefix = data[:cut]
        done = [meaning for end, meaning in blocks if end <= cut]
        rest = prefix[max([end for end, _ in blocks if end <= cut], default=0) :]
        boundary = all(not line.strip() or line.startswith(b"#") for line in rest.split(b"\n"))
        try:
            expected = naive_collect(done) if boundary and rest[-1:] in (b"", b"\n") else None
        except NaiveError:
            expected = None
        try:
            got = parse(prefix)
        except StatusDatError:
            got = None
        assert got == expected, f"cut at byte {cut}"
        accepted += got is not None
    return accepted


def test_truncated_at_every_line_boundary(small_corpus: bytes) -> None:
    # A small but real file: the corpus' head, a few hosts and services, and its tail blocks.
    blocks = small_corpus.split(b"\n\n")
    data = b"\n\n".join(
        [*blocks[:3], *[b for b in blocks if b.startswith(b"hoststatus")][:3],
         *[b for b in blocks if b.startswith(b"servicestatus")][:12], *blocks[-8:]]
    )
    assert data.startswith(b"####") and data.endswith(b"\t}\n\n") and b"info {" in data
    assert len(parse(data).services) == 12
    lines = [0] + [i + 1 for i, byte in enumerate(data) if byte == 0x0A]
    accepted = check_cuts(data, [p + d for p in lines for d in (-1, 0, 1) if 0 <= p + d <= len(data)])
    # Accepted: right after each of the 24 blocks (info onwards), and after its blank line.
    assert accepted == 2 * (2 + 3 + 12 + 7)


def test_truncated_corpus_at_random_offsets(small_corpus: bytes) -> None:
    rng = random.Random(20240601)
    cuts = [rng.randrange(len(small_corpus)) for _ in range(30)] + [len(small_corpus) - k for k in range(5)]
    block_end = small_corpus.index(b"\t}\n\nservicestatus {", len(small_corpus) // 2) + 3
    cuts += [block_end - 1, block_end, block_end + 1, block_end + 2]
    assert check_cuts(small_corpus, cuts) >= 4


# --- fuzz -------------------------------------------------------------------------------

FUZZ_BASE = statusdat(
    host("h1"), host("h2", current_state=1, plugin_output="x=y } {"),
    *(service("h1", f"S{i}", current_state=i % 4, long_plugin_output=b"a\\nb\\\\c") for i in range(4)),
    service("h2", "caf\xe9".encode("latin-1")),
    block("servicecomment", host_name="h1", service_description="S1", comment_data="c"),
    block("hostdowntime", host_name="h2", comment="d"),
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=3000))
def test_fuzz_random_bytes(data: bytes) -> None:
    try:
        result = parse(data)
    except StatusDatError:
        return
    assert isinstance(result, StatusData)


@FUZZ
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_fuzz_bytes_around_a_valid_file(before: bytes, after: bytes) -> None:
    check_against_naive(before + FUZZ_BASE + after)


LINE_CHOICES = st.sampled_from([
    b"", b"\t}", b"\t", b"}", b"#c", b"info {", b"hoststatus {", b"servicestatus {",
    b"\tcurrent_state=1", b"\tcurrent_state=x", b"\thost_name=h1", b"\tlast_check=",
    b"\tplugin_output=\xff", b"\tcreated=5", b"\t}x", b" \t ",
])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """The fuzz base with a few line-level and byte-level edits."""
    lines = FUZZ_BASE.split(b"\n")
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "replace", "insert", "flip", "cut"]))
        i = draw(st.integers(0, len(lines) - 1))
        if op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "replace":
            lines[i] = draw(st.one_of(LINE_CHOICES, st.binary(max_size=20)))
        elif op == "insert":
            lines.insert(i, draw(st.one_of(LINE_CHOICES, st.binary(max_size=20))))
        elif op == "flip" and lines[i]:
            k = draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:k] + bytes([draw(st.integers(0, 255))]) + lines[i][k + 1 :]
        elif op == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
            del lines[i + 1 :]
    return b"\n".join(lines)


@FUZZ
@given(mutated())
def test_fuzz_mutations_agree_with_naive_parser(data: bytes) -> None:
    check_against_naive(data)


def mixed_layouts(kinds: list[str]) -> bytes:
    """Host h and one service S<i> per kind, laid out as Nagios writes it or reordered, pending, with a custom
    variable or followed by a comment block."""
    blocks = [host("h")]
    for i, kind in enumerate(kinds):
        svc = service("h", f"S{i}", current_state=i % 4)
        if kind == "reordered":
            lines = svc.split(b"\n")
            svc = b"\n".join([lines[0], *reversed(lines[1:-3]), *lines[-3:]])
        elif kind == "pending":
            svc = b"\n".join(
                line for line in svc.split(b"\n")
                if not line.startswith((b"\tplugin_output", b"\tlong_plugin"))
            )
        elif kind == "custom":
            svc = svc.replace(b"\n\t}\n", b"\n\t_X=0;1\n\t}\n")
        elif kind == "comment":
            svc += block("servicecomment", host_name="h", service_description=f"S{i}")
        blocks.append(svc)
    return statusdat(*blocks)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["nagios", "reordered", "pending", "custom", "comment"]), 
                min_size=1, max_size=12))
def test_fuzz_layout_mixes_agree_with_naive_parser(kinds: list[str]) -> None:
    # Blocks of several layouts in any order: the fast path must relearn or fall back.
    data = mixed_layouts(kinds)
    result = parse(data)
    assert len(result.services) == len(kinds)
    check_against_naive(data)


def test_parse_leaves_gc_enabled() -> None:
    import gc

    assert gc.isenabled()
    parse(GOOD)
    assert gc.isenabled()
    with pytest.raises(StatusDatError):
        parse(b"junk\n")
    assert gc.isenabled()


# --- chunked conversion (the event loop's share of the GIL while a big file parses) -------

@contextmanager
def chunk_blocks(n: int) -> Iterator[None]:
    """Convert the columns every n blocks while inside (hypothesis tests cannot take monkeypatch)."""
    saved = statusdat_module.CHUNK_BLOCKS
    statusdat_module.CHUNK_BLOCKS = n
    try:
        yield
    finally:
        statusdat_module.CHUNK_BLOCKS = saved


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64])
def test_tiny_chunks_give_the_same_result(small_corpus: bytes, parsed_small: StatusData, n: int) -> None:
    with chunk_blocks(n):
        got = parse(small_corpus)
    assert got == parsed_small
    assert list(got.services) == list(parsed_small.services)  # same order too
    assert list(got.hosts) == list(parsed_small.hosts)


def test_duplicates_across_chunks_keep_dict_semantics() -> None:
    # The later block wins, the first one's position stays: exactly what one dict build does.
    data = statusdat(host("a"), service("a", "S", current_state=1), service("a", "T"), service("a", "S", current_state=2))
    for n in (1, 2, 3, 100):
        with chunk_blocks(n):
            got = parse(data)
        assert list(got.services) == [("a", "S"), ("a", "T")]
        assert got.services[("a", "S")].current_state == 2


@FUZZ
@given(mutated(), st.sampled_from([1, 2, 3]))
def test_fuzz_mutations_with_tiny_chunks_agree_with_naive_parser(data: bytes, n: int) -> None:
    with chunk_blocks(n):
        check_against_naive(data)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["nagios", "reordered", "pending"]), min_size=1, max_size=12),
       st.sampled_from([1, 2, 3]))
def test_relearning_layouts_across_chunks(kinds: list[str], n: int) -> None:
    data = mixed_layouts(kinds)
    with chunk_blocks(n):
        assert len(parse(data).services) == len(kinds)
        check_against_naive(data)


def test_states_are_not_tracked_by_the_cyclic_gc(parsed_small: StatusData) -> None:
    import gc

    if statusdat_module._UNTRACK is None:
        pytest.skip("no ctypes access to PyObject_GC_UnTrack on this interpreter")
    # CPython never untracks tuple subclasses itself; 100k tracked states made every full
    # collection walk them (tens of ms on the event loop).
    assert not any(map(gc.is_tracked, parsed_small.services.values()))
    assert not any(map(gc.is_tracked, parsed_small.hosts.values()))
    gc.collect()  # and nothing breaks when the collector runs over them
    assert parsed_small.services == parse(corpus("status-1k.dat.gz")).services


def test_host_names_are_one_str_per_host(parsed_small: StatusData) -> None:
    by_id = {id(h) for h in parsed_small.hosts}
    assert {id(h) for h, _ in parsed_small.services} <= by_id
    assert {id(s.host) for s in parsed_small.services.values()} <= by_id


def test_bytearray_is_parsed_in_place(small_corpus: bytes, parsed_small: StatusData) -> None:
    raw = bytearray(small_corpus)
    got = parse(raw)
    assert got == parsed_small
    assert raw == small_corpus  # untouched
    assert all(type(s.plugin_output) is str and type(s.host) is str for s in got.services.values())
