"""Passive check results: validation, output capping and splitting (pure, no I/O); the store is bridge.passive_store."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, TypeVar

from bridge.admin_input import InputError, parse_time
from bridge.config import OUTPUT_MAX

# Host and service names: at most 255 characters. A DNS name is at most 255 octets (RFC 1035), and Nagios
# 1.x/2.x capped both at 64 (MAX_HOSTNAME_LENGTH, MAX_SERVICEDESC_LENGTH); 3.x and Icinga 2 set no limit.
# Every held check keeps its names, so this bounds what one held check costs.
NAME_MAX = 255
# Names reach the page, the feeds and log lines: no control characters at all (Nagios allows none), and,
# as in admin input, no lone surrogate (JSON allows "\ud800"; it cannot be written as UTF-8 anywhere).
CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
ERRORS_MAX = 100  # per-item errors listed in one answer (the count is always complete)
T = TypeVar("T")


class Result(NamedTuple):
    """One validated passive check result (service None = a host result)."""

    host: str
    service: str | None
    state: int
    output: str
    timestamp: float


class ItemError(NamedTuple):
    """Why one item of a batch was rejected."""

    index: int
    field: str
    message: str


def check_name(value: object, field: str) -> str:
    """A host or service name: a non-empty string without control characters."""
    if not isinstance(value, str) or not value:
        raise InputError(field, "must be a non-empty string")
    if len(value) > NAME_MAX:
        raise InputError(field, f"is longer than {NAME_MAX} characters")
    if CONTROL.search(value):
        raise InputError(field, "must not contain control characters or lone surrogates")
    return value


def check_state(value: object, is_host: bool, field: str) -> int:
    """A Nagios state number: 0-3 for services, 0-2 (UP, DOWN, UNREACHABLE) for hosts."""
    top = 2 if is_host else 3
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(field, f"must be an integer 0-{top}")
    if not 0 <= value <= top:
        kind = "host states are 0 UP, 1 DOWN, 2 UNREACHABLE" if is_host else "service states are 0-3"
        raise InputError(field, f"{value} is out of range ({kind})")
    return value


def check_time(value: object, field: str, now: float) -> float:
    """A result time (epoch or ISO-8601); None means now, and the future is clamped to now."""
    if value is None:
        return now
    # A clock running ahead must not pin a check: a "future" result could never be replaced.
    return min(parse_time(value, field), now)


def cap_output(text: str, limit: int = OUTPUT_MAX) -> str:
    """text cut to at most limit bytes of UTF-8, at a character boundary (a lone surrogate counts 3 bytes)."""
    if len(text) * 4 <= limit:  # no character takes more than 4 bytes: nothing to measure
        return text
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text
    cut = limit
    while cut > 0 and (raw[cut] & 0xC0) == 0x80:  # never inside a character: back to its first byte
        cut -= 1
    return raw[:cut].decode("utf-8", "surrogatepass")


def split_output(text: str) -> tuple[str, str]:
    """(plugin_output, long_plugin_output) as Nagios splits them, performance data after '|' dropped."""
    first, _, rest = text.partition("\n")
    short = first.partition("|")[0].rstrip()
    # Nagios: in the remaining lines everything up to the first '|' is long output, the rest perf data.
    long = rest.partition("|")[0].rstrip() if rest else ""
    return short, long


def parse_item(item: object, index: int, now: float) -> Result:
    """One native item {host, service?, state, output?, timestamp?}; InputError names results[index].FIELD."""
    at = f"results[{index}]"
    if not isinstance(item, Mapping):
        raise InputError(at, "must be an object")
    host = check_name(item.get("host"), f"{at}.host")
    service = item.get("service")
    if service is not None:
        service = check_name(service, f"{at}.service")
    if "state" not in item:
        raise InputError(f"{at}.state", "is required")
    state = check_state(item["state"], service is None, f"{at}.state")
    output = item.get("output", "")
    if output is None:
        output = ""
    if not isinstance(output, str):
        raise InputError(f"{at}.output", "must be a string")
    return Result(host, service, state, output, check_time(item.get("timestamp"), f"{at}.timestamp", now))


def parse_batch(body: Any, now: float) -> tuple[list[Result], list[ItemError]]:
    """A native body ({"results": [...]} or a bare list) -> valid results and per-item errors."""
    items = body.get("results") if isinstance(body, dict) else body
    if not isinstance(items, list):
        field = "results" if isinstance(body, dict) else "body"
        raise InputError(field, 'expected {"results": [...]} or a JSON list of results')
    return collect(items, parse_item, now)


def collect(
    items: Iterable[T], parse: Callable[[T, int, float], Result], now: float
) -> tuple[list[Result], list[ItemError]]:
    """parse(item, index, now) for each item (native or NRDP) -> valid results and per-item errors."""
    results: list[Result] = []
    errors: list[ItemError] = []
    add = results.append  # bound once: this loop runs for every pushed result
    for i, item in enumerate(items):
        try:
            add(parse(item, i, now))
        except InputError as e:
            errors.append(ItemError(i, e.field, e.message))
    return results, errors
