"""NRDP's request fields from the query string and a streamed form body (urlencoded or multipart), bounded in memory.

Only the fields NRDP reads are kept; every other name and value is counted against the body cap and dropped.
Each kept field is handed to a callback as soon as it is complete, so a bad token ends the request before the
rest of the body is read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import unquote_to_bytes

from aiohttp import web
from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header

from bridge.body import Budget
from bridge.nrdp import JSON_FIELDS, XML_FIELDS, NrdpError

# What NRDP's server reads from a request (grab_request_var): anything else is ignored there too.
FIELDS = frozenset({"token", "cmd", "output_type", "pretty", *JSON_FIELDS, *XML_FIELDS})
_LONGEST = max(len(name) for name in FIELDS)
OnField = Callable[[str, str], None]


def query_fields(query: Mapping[str, str] | web.Request) -> dict[str, str]:
    """NRDP's fields from the query string; the last of a repeated name wins, as in PHP."""
    items = query.query.items() if isinstance(query, web.Request) else query.items()
    return {name: value for name, value in items if name in FIELDS}


async def read_fields(request: web.Request, limit: int, on_field: OnField) -> dict[str, str]:
    """NRDP's fields from the body (multipart/* or else urlencoded), at most limit bytes of it (TooLarge past that)."""
    budget = Budget(request, limit)
    if request.content_type.startswith("multipart/"):
        return await _multipart(request.headers.get("Content-Type", ""), budget, on_field)
    return await _urlencoded(budget, on_field)


async def _urlencoded(budget: Budget, on_field: OnField) -> dict[str, str]:
    """application/x-www-form-urlencoded, split at each "&" as the bytes arrive."""
    splitter = UrlencodedSplitter(on_field)
    while chunk := await budget.read():
        splitter.feed(chunk)
    return splitter.close()


class UrlencodedSplitter:
    """Push parser for a urlencoded form: keeps NRDP's fields (the last of a repeated name wins, as in PHP).

    Pairs split at "&" only, as PHP does: send_nrdp.sh posts its XML with `curl -d` unencoded, so raw spaces,
    quotes, newlines and perfdata's ";" must survive.
    """

    def __init__(self, on_field: OnField | None = None) -> None:
        """on_field(name, value) is called as each kept field completes."""
        self.fields: dict[str, str] = {}
        self.on_field = on_field
        self._pending = bytearray()

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the body."""
        self._pending += chunk
        if b"&" in chunk:
            # Only the part after the last "&" stays pending, so each byte is split once: linear in the body.
            *complete, rest = self._pending.split(b"&")
            self._pending = bytearray(rest)
            for pair in complete:
                self._take(pair)

    def close(self) -> dict[str, str]:
        """The end of the body: the fields kept."""
        self._take(self._pending)
        self._pending = bytearray()
        return self.fields

    def _take(self, pair: bytes | bytearray) -> None:
        """Keep one name=value pair when NRDP reads that name."""
        raw_name, _, raw_value = bytes(pair).partition(b"=")
        if not raw_name or len(raw_name) > 3 * _LONGEST:  # longer than any field name, even fully percent-encoded
            return
        name = unquote(raw_name).decode("utf-8", "replace")
        if name in FIELDS:
            self.fields[name] = value = unquote(raw_value).decode("utf-8", "replace")
            if self.on_field is not None:
                self.on_field(name, value)


async def _multipart(content_type: str, budget: Budget, on_field: OnField) -> dict[str, str]:
    """multipart/form-data through a push parser whose header limits bound each part's header."""
    boundary = parse_options_header(content_type)[1].get("boundary")
    if not boundary:
        raise NrdpError("BAD DATA", "multipart body without a boundary")
    fields: dict[str, str] = {}
    name, value = "", None  # value: the bytes of a kept part so far, None while in a part nobody reads
    try:
        with PushMultipartParser(boundary) as parser:
            while not parser.closed:
                chunk = await budget.read()
                for event in parser.parse(chunk):  # b"" ends the stream: the parser then checks it was complete
                    if isinstance(event, MultipartSegment):
                        name = event.name or ""
                        value = bytearray() if name in FIELDS else None
                    elif event is None:
                        if value is not None:
                            fields[name] = text = value.decode("utf-8", "replace")
                            value = None
                            on_field(name, text)
                    elif value is not None:
                        value += event
    except MultipartError as e:
        raise NrdpError("BAD DATA", f"malformed multipart body: {str(e)[:200]}") from None
    return fields


def unquote(part: bytes) -> bytes:
    """Percent- and plus-decoding of one form-encoded name or value, as urllib's unquote_to_bytes does."""
    part = part.replace(b"+", b" ")
    if b"%" not in part:
        return part
    # unquote_to_bytes loops in Python per escape: 1.4 ms for a 20 KB NRDP json field, most of a request.
    # As \xHH escapes (backslashes doubled first) the unicode_escape codec decodes them in C, 10x faster;
    # latin-1 maps its code points 0-255 back to the same bytes.
    try:
        return part.replace(b"\\", b"\\\\").replace(b"%", b"\\x").decode("unicode_escape").encode("latin-1")
    except UnicodeDecodeError:  # a "%" without two hex digits: urllib keeps it literally
        return unquote_to_bytes(part)
