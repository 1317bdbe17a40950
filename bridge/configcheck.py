"""Validation helpers for the config loader: typed getters that record 'file: key.path: reason' problems."""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
import tomllib
from collections.abc import Collection
from datetime import date, datetime, time
from typing import Any
from urllib.parse import urlsplit

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
# One CSP frame-ancestors source: 'self', a scheme ("https:") or [scheme://]host[:port][/path], host "*" or "*.x".
# The path may not hold ';', ',', quotes or spaces: those would end the directive, or the header, early.
_FRAME_SOURCE_RE = re.compile(
    r"'self'|[a-z][a-z0-9+.-]*:|(?:[a-z][a-z0-9+.-]*://)?(?:\*|(?:\*\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*)"
    r"(?::(?:[0-9]{1,5}|\*))?(?:/[A-Za-z0-9._~!$&()*+=:@%/-]*)?",
    re.IGNORECASE,
)
_TOML_POS_RE = re.compile(r"^(?P<msg>.*) \((?P<pos>at line (?P<line>\d+), column (?P<col>\d+)|at end of document)\)$")

_MISSING = object()


def join(path: str, key: str | int) -> str:
    """Extend a key path: 'group[1]' + 'id' -> 'group[1].id', 'group' + 1 -> 'group[1]'."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def toml_type(value: object) -> str:
    """The TOML name of a parsed value's type, as a sysadmin would recognise it."""
    # bool first: it is a subclass of int.
    for typ, name in ((bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"),
                      (list, "array"), (dict, "table"), (datetime, "datetime"), (date, "date"),
                      (time, "time")):
        if isinstance(value, typ):
            return name
    return type(value).__name__


def describe(value: object) -> str:
    """'integer 5' for scalars; just the type for arrays and tables, whose repr can be huge."""
    name = toml_type(value)
    if isinstance(value, (list, dict)):
        return name
    if isinstance(value, bool):
        return f"{name} {str(value).lower()}"
    return f"{name} {value!r}"


def syntax_problem(label: str, exc: tomllib.TOMLDecodeError) -> str:
    """One problem line for a TOML syntax error, with the position tomllib only puts in its message."""
    m = _TOML_POS_RE.match(str(exc))
    if m is None:
        return f"{label}: invalid TOML: {exc}"
    where = f"line {m['line']}, column {m['col']}" if m["line"] else "end of document"
    return f"{label}: {where}: invalid TOML: {m['msg']}"


def parse_listen(text: str) -> tuple[str, int] | str:
    """Parse 'HOST:PORT' or '[IPv6]:PORT' into (host, port), or return the reason it is invalid."""
    usage = "must be HOST:PORT, e.g. '127.0.0.1:8080' or '[::1]:8080'"
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            return f"{usage} (got {text!r})"
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"{host!r} in brackets is not an IPv6 address"
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            return f"{usage} (got {text!r})"
        if ":" in host:
            return f"IPv6 addresses need brackets, e.g. '[::1]:8080' (got {text!r})"
        if not _HOSTNAME_RE.match(host):
            return f"{host!r} is not a valid host name or IPv4 address"
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"port must be a number from 1 to 65535 (got {port!r})"
    return host, int(port)


def url_problem(text: str) -> str | None:
    """Reason an http(s) URL is unusable as the page's public address, or None when it is fine."""
    try:
        parts = urlsplit(text)
        _ = parts.port  # only evaluated for its ValueError on a port like :http or :99999
    except ValueError as exc:
        return f"not a valid URL: {exc} (got {text!r})"
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in text):
        return f"must be an http:// or https:// URL, or empty (got {text!r})"
    return None


def page_url_problem(text: str) -> str | None:
    """url_problem, plus what breaks the links built below the page's URL (or publishes a secret in every feed)."""
    if (reason := url_problem(text)) is not None:
        return reason
    parts = urlsplit(text)
    if parts.query or parts.fragment or "?" in text or "#" in text:
        return f"must not have a query or fragment: notice links are appended to its path (got {text!r})"
    if parts.username is not None:
        return "must not hold a user name or password: it is published in every feed"
    return None


def frame_source_problem(text: object) -> str | None:
    """Reason a page.frame_ancestors entry is not one CSP source (e.g. https://intranet.example.org), or None."""
    if not isinstance(text, str):
        return f"must be a string such as 'https://intranet.example.org' (got {describe(text)})"
    if text.strip().lower() == "'none'":
        return "'none' is the default: leave frame_ancestors out (or []) to forbid every frame"
    if not text.isascii() or not _FRAME_SOURCE_RE.fullmatch(text):
        return f"not a CSP source ('self', https:, or [scheme://]host[:port][/path]; got {text!r})"
    return None


class Checker:
    """Collects every problem found in one file so they can be reported together."""

    def __init__(self, label: str) -> None:
        """Start with no problems; label is the file name put in front of each problem."""
        self.label = label
        self.problems: list[str] = []

    def problem(self, path: str, reason: str) -> None:
        """Record one problem at a key path."""
        self.problems.append(f"{self.label}: {path}: {reason}" if path else f"{self.label}: {reason}")

    def table(self, value: object, path: str) -> dict[str, Any]:
        """value if it is a table, else record a problem and return an empty one so checking goes on."""
        if isinstance(value, dict):
            return value
        self.problem(path, f"must be a table (got {describe(value)})")
        return {}

    def tables(self, value: object, path: str, header: str) -> list[tuple[int, dict[str, Any]]]:
        """(index, table) for an array of tables such as [[group]]; other entries are reported and skipped."""
        if not isinstance(value, list):
            self.problem(path, f"must be an array of tables ({header}) (got {describe(value)})")
            return []
        out = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                out.append((i, item))
            else:
                self.problem(join(path, i), f"must be a table (got {describe(item)})")
        return out

    def section(self, doc: dict[str, Any], name: str, allowed: Collection[str]) -> dict[str, Any]:
        """A top-level [name] table (empty when absent) with its keys checked."""
        tbl = self.table(doc.get(name, {}), name)
        self.keys(tbl, name, allowed)
        return tbl

    def keys(self, tbl: dict[str, Any], path: str, allowed: Collection[str], required: Collection[str] = ()) -> None:
        """Report unknown keys (likely typos, with a suggestion) and missing required ones."""
        for key in tbl:
            if key not in allowed:
                close = difflib.get_close_matches(key, list(allowed), n=1)
                hint = f"did you mean {close[0]!r}?" if close else "expected one of " + ", ".join(allowed)
                self.problem(join(path, key), f"unknown key ({hint})")
        for key in required:
            if key not in tbl:
                self.problem(join(path, key), "required key is missing")

    def _typed(self, tbl: dict[str, Any], key: str, path: str, types: tuple[type, ...], what: str) -> Any:
        """tbl[key] when present and of one of types (never bool for numbers), else _MISSING."""
        value = tbl.get(key, _MISSING)
        if value is _MISSING:
            return _MISSING
        if isinstance(value, types) and not (isinstance(value, bool) and bool not in types):
            return value
        self.problem(join(path, key), f"must be {what} (got {describe(value)})")
        return _MISSING

    def string(self, tbl: dict[str, Any], key: str, path: str, default: str = "", *, nonempty: bool = False) -> str:
        """A string value; nonempty rejects '' and whitespace-only strings."""
        value = self._typed(tbl, key, path, (str,), "a string")
        if value is _MISSING:
            return default
        if nonempty and not value.strip():
            self.problem(join(path, key), "must not be empty")
        return value

    def slug(self, tbl: dict[str, Any], key: str, path: str) -> str:
        """An id used in URLs and feeds: lower-case letters, digits, '-' and '_'."""
        value = self.string(tbl, key, path)
        if key in tbl and isinstance(value, str) and not SLUG_RE.match(value):
            self.problem(join(path, key), f"must match {SLUG_RE.pattern} (lower-case letters, digits, '-', '_'; got {value!r})")
        return value

    def boolean(self, tbl: dict[str, Any], key: str, path: str, default: bool) -> bool:
        """A true/false value."""
        value = self._typed(tbl, key, path, (bool,), "a boolean (true or false)")
        return default if value is _MISSING else value

    def number(self, tbl: dict[str, Any], key: str, path: str, default: float,
               low: float, high: float = math.inf, *, low_open: bool = True) -> float:
        """A finite int or float in (low, high] (or [low, high] when low_open is False)."""
        value = self._typed(tbl, key, path, (int, float), "a number")
        if value is _MISSING:
            return default
        below = value <= low if low_open else value < low
        if not math.isfinite(value) or below or value > high:
            lo = f"greater than {low:g}" if low_open else f"at least {low:g}"
            rng = lo if high == math.inf else f"{lo} and at most {high:g}"
            self.problem(join(path, key), f"must be {rng} (got {value!r})")
            return default
        return float(value)

    def integer(self, tbl: dict[str, Any], key: str, path: str, default: int, low: int) -> int:
        """A whole number no smaller than low."""
        value = self._typed(tbl, key, path, (int,), "an integer")
        if value is _MISSING:
            return default
        if value < low:
            self.problem(join(path, key), f"must be at least {low} (got {value!r})")
            return default
        return value
