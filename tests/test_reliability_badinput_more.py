"""The route-enumerating fuzz of test_reliability_badinput, extended to raw headers and to dates.

Headers: every route of app.router gets requests written byte by byte (so nothing is normalised on the way):
Authorization with arbitrary bytes (non-UTF-8 included), If-None-Match, Accept, X-Forwarded-For (from a trusted
proxy, so it is parsed), Content-Type, Content-Encoding and Content-Length oddities. Dates: every date-taking query
parameter and body field gets instants from year 1 to 9999 with offsets, fractions, leap seconds and epoch numbers;
after any accepted write every public GET must still render. Always: < 500, the JSON error shape (NRDP's on /nrdp,
an HTML 404 page for browsers on HTML routes), nosniff and a versionless Server header, nothing written by a rejection.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from bridge.keys import LIVE
from bridge.logs import BadRequestFilter
from bridge.views_passive import PASSIVE
from tests.test_reliability_badinput import (
    ADMIN,
    FUZZ,
    PUSH,
    Harness,
    assert_error_shape,
    bodies,
    build_app,
    no_errors_logged,
    public_gets,
    queries,
    routes,
    state_of,
    texts,
)

RATE = {"rate_limit": 1e9, "burst": 10**9}  # on, so X-Forwarded-For from the loopback proxy is parsed, never 429


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """One running app per module (Hypothesis calls the test body many times; a rejection must change nothing)."""
    h = Harness(build_app(tmp_path_factory.mktemp("fuzz"), **RATE))
    yield h
    h.close()


@pytest.fixture
def fuzz_caplog(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog at WARNING, with the daemon's filter that turns the HTTP parser's refusals into DEBUG lines: an ERROR
    record (the gate and aiohttp log every unhandled exception) fails the example."""
    caplog.set_level(logging.WARNING)
    refusals = BadRequestFilter()
    logging.getLogger("aiohttp.server").addFilter(refusals)
    yield caplog
    logging.getLogger("aiohttp.server").removeFilter(refusals)


def assert_secured(status: int, headers: dict[str, str]) -> None:
    """nosniff and a Server header naming no versions, on every answer."""
    lower = {k.lower(): v for k, v in headers.items()}
    assert lower.get("x-content-type-options") == "nosniff", (status, headers)
    assert lower.get("server") == "status-bridge", (status, headers)


# -- headers --------------------------------------------------------------------------------------------------------

# Header values without CR or LF: a line break ends the header (the parser's own business, see MALFORMED).
header_bytes = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
authorizations = st.one_of(
    header_bytes,
    header_bytes.map(lambda b: b"Bearer " + b),
    st.sampled_from([ADMIN, PUSH]).flatmap(lambda t: header_bytes.map(lambda b: b"Bearer " + t.encode() + b)),
    st.sampled_from([b"Bearer \xff", b"Bearer \xc3", b"Bearer \xed\xa0\x80", b"bearer " + ADMIN.encode(), b"Bearer  " + ADMIN.encode()]),
)
etags = st.one_of(header_bytes, st.sampled_from([b"*", b'W/"x"', b'"a", W/"b"', b",,,", b'"' * 50, b"W/", b'"\xff"']))
accepts = st.one_of(header_bytes, st.sampled_from([b"text/html", b"application/json", b"*/*;q=\xff", b"text/html;q=0, */*"]))
forwarded = st.one_of(
    header_bytes,
    st.sampled_from([b"198.51.100.7", b"::1", b"198.51.100.7, 10.0.0.1", b"999.1.1.1", b"[::1]:80", b"unknown", b", ,",
                     b"fe80::1%eth0", b"1.2.3.4:5", b"\xff.1.1.1", b"0" * 60]),  # fmt: skip
)
content_types = st.one_of(
    header_bytes,
    st.sampled_from([b"application/json", b"application/json; charset=\xff", b"application/x-www-form-urlencoded",
                     b"application/x-www-form-urlencoded; charset=latin-9", b"multipart/form-data",
                     b"multipart/form-data; boundary=", b"text/xml; charset=utf-16", b";;;"]),  # fmt: skip
)
# Content-Length spellings of the body's real length n: malformed ones (refused by the parser) and odd but valid
# ones; never a valid number above n, which would leave the server waiting for body that never comes.
ODD_LENGTHS = ["-{n}", "+{n}", "0x{n}", "{n} {n}", "{n},{n}", "{n}e0", "{n}.0", "abc", "", "\xff", " {n}", "0{n}", "{n} "]
encodings = st.sampled_from([b"gzip", b"deflate", b"br", b"identity", b"\xff", b"gzip, gzip"])


@st.composite
def raw_requests(draw: st.DrawFn, harness: Harness) -> tuple[Any, str, bytes]:
    """(route, method, request bytes) for a random route with random odd headers."""
    route = draw(st.sampled_from(routes(harness.app)), label="route")
    values = {p: "/" if p == "slashes" else draw(texts, label=p) for p in route.params}
    query = urllib.parse.urlencode(draw(queries, label="query"))
    method = route.method if route.method != "*" else draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
    path = route.path(values) + (f"?{query}" if query else "")
    body = draw(bodies, label="body") or b""
    headers: list[tuple[bytes, bytes]] = []
    for name, values_of in ((b"Authorization", authorizations), (b"If-None-Match", etags), (b"Accept", accepts),
                            (b"X-Forwarded-For", forwarded), (b"Content-Type", content_types),
                            (b"Content-Encoding", encodings)):  # fmt: skip
        if draw(st.booleans(), label=f"with {name.decode()}"):
            headers.append((name, draw(values_of, label=name.decode())))
    # Content-Length is right (so the server never waits for more body) or malformed (so the parser refuses it).
    length = draw(st.sampled_from(["{n}", *ODD_LENGTHS]), label="Content-Length").format(n=len(body))
    headers.append((b"Content-Length", length.encode("latin-1")))
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: x", *(n + b": " + v for n, v in headers), b"Connection: close"]
    return route, method, b"\r\n".join(lines) + b"\r\n\r\n" + body


@FUZZ
@given(data=st.data())
def test_fuzz_headers_of_every_route(harness: Harness, fuzz_caplog: pytest.LogCaptureFixture, data: st.DataObject) -> None:
    """Odd header bytes on every route: < 500, JSON errors on API paths, secured headers, rejections write nothing."""
    fuzz_caplog.clear()  # each example is judged on its own records (a failed one leaves its records behind)
    route, method, request = data.draw(raw_requests(harness), label="request")
    before = state_of(harness.app)
    status, headers, body = harness.raw_answer(request)
    assert status < 500, (request[:300], status, body[:300])
    assert b"Traceback" not in body and b'File "' not in body
    assert_secured(status, headers)
    if status >= 400 and method != "HEAD":
        api = route.template.startswith("/api/")
        assert_error_shape(route.nrdp, status, headers, body, html_ok=not api)
    if status >= 400 or method in ("GET", "HEAD"):
        assert state_of(harness.app) == before, (request[:300], status)
    no_errors_logged(fuzz_caplog)


# -- dates ----------------------------------------------------------------------------------------------------------

EDGE_TIMES = [
    "9999-12-31T23:59:59.999999", "9999-12-31T23:59:59.9999999", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59-14:00",
    "0001-01-01", "0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00-23:59", "10000-01-01", "0000-01-01", "-0001-01-01",
    "2016-12-31T23:59:60Z", "9999-12-31T23:59:60", "2024-02-29T24:00:00", "2026-02-29", "2026-13-01", "1970-01-01T00:00:00-00:01",
    "2026-01-01T00:00:00.", "2026-01-01T00:00:00,5", "2026-W01-1", "2026-001", "20260101T000000Z", "+275760-09-13",
    "2026-01-01T00:00:00+24:00", "2026-01-01T00:00:00+23:59:59.999999", "1e20", "-1", "nan", "inf", " ", "",
    "253402300799", "253402300799.9999999", "253402300800", "-62135596800", "1.5e9",
]  # fmt: skip
offsets = st.one_of(
    st.just(""),
    st.just("Z"),
    st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)).map(
        lambda d: datetime.min.replace(tzinfo=timezone(d)).isoformat()[-6:]
    ),
)
iso_times = st.builds(
    lambda moment, sep, spec, zone: moment.isoformat(sep, spec) + zone,
    st.datetimes(min_value=datetime.min, max_value=datetime.max),
    st.sampled_from(["T", " "]),
    st.sampled_from(["auto", "hours", "minutes", "seconds", "milliseconds", "microseconds"]),
    offsets,
)
epochs = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -0.0, 253_402_300_799, 253_402_300_799.9999, 253_402_300_800, -62_135_596_800, 1e308]),
)
time_texts = st.one_of(iso_times, st.sampled_from(EDGE_TIMES), epochs.map(str))
times = st.one_of(time_texts, epochs)  # a JSON body takes numbers too
# Windows a write accepts (ahead of now, in order, up to the last second of 9999), so that far dates get stored
# and every renderer meets them.
future_moments = st.one_of(
    st.builds(lambda moment, spec, zone: moment.isoformat("T", spec) + zone,
              st.datetimes(min_value=datetime(2031, 1, 1), max_value=datetime.max),
              st.sampled_from(["seconds", "microseconds"]), offsets),  # fmt: skip
    st.floats(min_value=1.95e9, max_value=253_402_300_799.0),
    st.sampled_from(["9999-12-31T23:59:59Z", "9999-12-31T23:59:59.999999+00:01", 253_402_300_799]),
)
windows = st.one_of(
    st.tuples(times, times),
    st.tuples(future_moments, future_moments).map(lambda w: tuple(sorted(w, key=lambda t: (isinstance(t, str), t)))),
)
day_texts = st.one_of(st.dates(date.min, date.max).map(date.isoformat), st.sampled_from(EDGE_TIMES),
                      st.sampled_from(["0001-01-01", "9999-12-31", "2026-02-29", "0000-00-00"]))  # fmt: skip
OVERLAPS = "filter[impact_timeframe_overlaps][]"


@st.composite
def dated_requests(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
    """(method, path, aiohttp request kwargs) putting odd times into one date-taking parameter or field."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    push = {"Authorization": f"Bearer {PUSH}"}
    kind = draw(st.sampled_from(["overlaps", "metrics", "notice", "notice patch", "override", "override patch", "push", "nrdp"]))
    a, b = draw(windows, label="window")
    if kind == "overlaps":
        n = draw(st.sampled_from([2, 2, 2, 1, 3]))
        return "GET", "/api/v1/notices", {"params": [(OVERLAPS, str(t)) for t in (a, b, a)[:n]]}
    if kind == "metrics":
        params = {k: draw(day_texts, label=k) for k in ("timeframe_start", "timeframe_end") if draw(st.booleans())}
        return "GET", f"/api/v1/components/{draw(st.sampled_from(['website', 'web', 'database']))}/metrics", {"params": params}
    if kind == "notice":
        body = {"type": "planned", "subject": "Fuzzed maintenance", "components": ["website"], "begins_at": a, "ends_at": b}
        return "POST", "/api/v1/admin/notices", {"json": body, "headers": admin}
    if kind == "notice patch":
        return "PATCH", "/api/v1/admin/notices/2", {"json": {"begins_at": a, "ends_at": b}, "headers": admin}
    if kind == "override":
        body = {"component": "website", "status": "partial", "reason": "fuzz", "starts_at": a, "ends_at": b}
        return "POST", "/api/v1/admin/overrides", {"json": body, "headers": admin}
    if kind == "override patch":
        return "PATCH", "/api/v1/admin/overrides/1", {"json": {"starts_at": a, "ends_at": b}, "headers": admin}
    if kind == "push":
        body = {"results": [{"host": "web-1", "service": "HTTP", "state": 0, "output": "OK", "timestamp": a}]}
        return "POST", "/api/v1/check-results", {"json": body, "headers": push}
    result = {"checkresult": {"type": "service"}, "hostname": "web-1", "servicename": "HTTP", "state": "0", "output": "OK",
              "time": str(a)}  # fmt: skip
    form = {"cmd": "submitcheck", "token": PUSH, "json": json.dumps({"checkresults": [result]})}
    return "POST", "/nrdp/", {"data": form}


@pytest.fixture(scope="module")
def dated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """The fuzz app plus notice 2, a planned maintenance a year ahead (so PATCHes of its schedule can succeed)."""
    h = Harness(build_app(tmp_path_factory.mktemp("dates")))
    now = datetime.now(timezone.utc)
    body = {"type": "planned", "subject": "Planned", "begins_at": (now + timedelta(days=365)).isoformat(),
            "ends_at": (now + timedelta(days=366)).isoformat()}  # fmt: skip
    status, _, answer = h.request("POST", "/api/v1/admin/notices", json=body, headers={"Authorization": f"Bearer {ADMIN}"})
    assert status == 201 and json.loads(answer)["notice"]["id"] == 2, answer
    yield h
    h.close()


def settle(h: Harness) -> None:
    """Publish what was pushed and let the history it changes reach the DB (written in a thread, after the answer)."""

    async def go() -> None:
        await h.app[PASSIVE].publish()
        await h.app[LIVE].recorder.flush()

    h.loop.run_until_complete(go())


@settings(FUZZ, max_examples=max(FUZZ.max_examples, 200))
@given(data=st.data())
def test_fuzz_dates_of_every_date_field(dated: Harness, fuzz_caplog: pytest.LogCaptureFixture, data: st.DataObject) -> None:
    """Instants at and past the ends of datetime's range in every date-taking parameter and field: < 500, a JSON error
    naming the field, nothing written when refused; and once something is stored, every public GET still renders."""
    fuzz_caplog.clear()  # each example is judged on its own records (a failed one leaves its records behind)
    method, path, kw = data.draw(dated_requests(), label="request")
    settle(dated)
    before = state_of(dated.app)
    status, headers, body = dated.request(method, path, **kw)
    event(f"{method} {path} {status}")  # --hypothesis-show-statistics: how often each field was accepted
    assert status < 500, (method, path, kw, status, body[:300])
    assert_secured(status, headers)
    if method == "GET":
        assert state_of(dated.app) == before
    if status >= 400:
        nrdp = path.startswith("/nrdp")
        assert_error_shape(nrdp, status, headers, body, html_ok=False)
        assert nrdp or json.loads(body)["error"].get("field"), body  # which parameter or field was wrong
        assert state_of(dated.app) == before, (method, path, kw, status)
    elif state_of(dated.app) != before:
        settle(dated)
        for public in public_gets(dated.app):
            got, _, page = dated.request("GET", public)
            assert got < 500, (kw, public, page[:300])
    no_errors_logged(fuzz_caplog)

