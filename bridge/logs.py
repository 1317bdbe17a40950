"""Logging: one `LEVEL logger: message key=value` line per event on stderr, journald-aware; state-change lines."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import TextIO
from urllib.parse import unquote_plus

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from bridge.encoded import Published
from bridge.keys import LIVE
from bridge.live import Live
from bridge.model import Snapshot
from bridge.ratelimit import request_client

state_log = logging.getLogger("bridge.state")
access_log = logging.getLogger("bridge.access")

# syslog priorities, as journald reads them from a "<N>" line prefix.
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
_PLAIN = re.compile(r"[^\s\"=\\]+")
_VISIBLE = re.compile(r"[!-~]+")  # printable ASCII without spaces
# Query parameter names that may carry a secret (NRDP accepts its token in the query string), matched anywhere in
# the decoded name: token, access_token, bearer_token, auth, authorization, api_key, password, secret, ...
_SECRET_NAME = re.compile(r"token|auth|passw|secret|api.?key|credential", re.IGNORECASE)
_PAIRS = re.compile(r"([&;])")  # separators: "&", and ";" which some parsers accept too


def quote(value: object) -> str:
    """A value as is when plain, JSON-quoted when it holds spaces, quotes or '=' (so lines stay parseable)."""
    text = "" if value is None else str(value)
    return text if _PLAIN.fullmatch(text) else json.dumps(text, ensure_ascii=False)


def kv(fields: Mapping[str, object]) -> str:
    """key=value pairs separated by spaces."""
    return " ".join(f"{key}={quote(value)}" for key, value in fields.items())


def on_journal(stream: TextIO = sys.stderr, env: Mapping[str, str] | None = None) -> bool:
    """True when stream is the journal's own stream ($JOURNAL_STREAM names its device:inode)."""
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    try:
        st = os.fstat(stream.fileno())
        return bool(value) and (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError, AttributeError):
        # A redirected stderr (a file, a pipe to something else) keeps its timestamps.
        return False


class LineFormatter(logging.Formatter):
    """`LEVEL logger: message`, behind a timestamp, or behind a <priority> prefix for journald."""

    def __init__(self, journal: bool) -> None:
        """journal: journald stamps lines itself but learns the priority from a prefix."""
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        """One line (a traceback adds lines, each carrying the prefix)."""
        text = f"{record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if self.journal:
            prefix = f"<{_PRIORITY.get(record.levelno, 6)}>"
        else:
            prefix = datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds") + " "
        return "\n".join(prefix + line for line in text.splitlines())


def setup_logging(level: str, stream: TextIO | None = None) -> None:
    """Log to stderr at level; chatty libraries stay at WARNING unless debugging."""
    root = logging.getLogger()
    # Like logging.basicConfig: a host that set up logging already (pytest, an embedding app) keeps it.
    if not root.handlers:
        stream = sys.stderr if stream is None else stream
        handler = logging.StreamHandler(stream)
        handler.setFormatter(LineFormatter(on_journal(stream)))
        root.addHandler(handler)
        root.setLevel(level.upper())
    # watchfiles and APScheduler log routine events at INFO (every file batch, every job run).
    for noisy in ("watchfiles", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadRequestFilter) for f in server.filters):
        server.addFilter(BadRequestFilter())


class BadRequestFilter(logging.Filter):
    """aiohttp logs each request its HTTP parser refuses (400) at ERROR with a traceback quoting the raw bytes,
    a token in the URL or a header included: one DEBUG line without them instead (scanners are not news).
    So too a body it cannot decode (Content-Encoding: gzip over junk) that it drains after the answer was sent."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite parser errors in place (dropped unless debugging); pass everything else through."""
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (HttpProcessingError, web.RequestPayloadError)):
            what = "refused with 400" if isinstance(exc, HttpProcessingError) else "undecodable body dropped"
            record.msg, record.args = "%s: %s (%s)", (record.getMessage(), what, type(exc).__name__)
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            record.exc_info, record.exc_text = None, None
            # The logger's level check passed at ERROR: decide again for the level the line now has.
            return logging.getLogger("aiohttp.server").isEnabledFor(logging.DEBUG)
        return True


def redacted_query(query: str) -> str:
    """The raw query string with the value of every parameter whose decoded name looks secret replaced by ***."""
    # Decoded, as the server decodes it: ?%74oken=SECRET is the token parameter too.
    parts = _PAIRS.split(query)
    for i in range(0, len(parts), 2):
        name, eq, _ = parts[i].partition("=")
        if eq and _SECRET_NAME.search(unquote_plus(name)):
            parts[i] = name + "=***"
    return "".join(parts)


class AccessLogger(AbstractAccessLogger):
    """`--access-log`: one line per request with the real client address and no secrets."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Log method, path (secrets in the query redacted), status, size, client and duration."""
        try:
            app = request.app  # type: ignore[attr-defined]
        except (AttributeError, AssertionError):  # a request the HTTP parser refused never reached the router
            app = None
        trusted = app[LIVE].config.trusted_proxies if app is not None and LIVE in app else ()
        # The raw target: a decoded path could carry a newline (%0A) into the log.
        path, sep, query = request.raw_path.partition("?")
        target = path + sep + redacted_query(query)
        if not _VISIBLE.fullmatch(target):
            target = json.dumps(target)
        # A refused request carries no parsed headers (no X-Forwarded-For to read): its peer is the client.
        client = request_client(request, trusted) if app is not None else request.remote
        fields = {"status": response.status, "bytes": response.body_length, "client": client}
        self.logger.info("%s %s %s", request.method, target, kv({**fields, "seconds": f"{time:.4f}"}))


class StateLoggingLive(Live):
    """Live that logs each change of a component's shown status and of data freshness, once, at INFO."""

    def on_published(self, old: Published, new: Published) -> None:
        """Log what changed between two generations."""
        if old.snapshot is not new.snapshot:
            try:
                log_changes(old.snapshot, new.snapshot)
            except Exception:  # logging must never stop publishing
                state_log.exception("logging state changes failed")


def log_changes(old: Snapshot, new: Snapshot) -> None:
    """One line per component whose shown status changed, one when the data goes stale or fresh again."""
    if old.data_created is None:
        return  # start-up: "no data" to the first real states is not news
    if new.stale != old.stale:
        if new.stale:
            state_log.warning("monitoring data stale %s", kv({"reason": new.stale_reason}))
        else:
            state_log.info("monitoring data fresh again")
    before = {c.id: c.status for g in old.groups for c in g.components}
    for g in new.groups:
        for c in g.components:
            prev = before.get(c.id)
            if prev is not None and prev != c.status:
                fields = {"component": c.id, "group": g.id, "from": prev.value, "to": c.status.value}
                state_log.info("component state change %s", kv({**fields, "monitored": c.monitored_status.value}))
