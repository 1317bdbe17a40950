"""What surrounds every handler: headers on every response, Expect handling, JSON for requests refused before routing."""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import hdrs, http_exceptions, web
from aiohttp.http import HttpVersion11
from multidict import CIMultiDict

from bridge.http import error_response

log = logging.getLogger("bridge.http")

SERVER_NAME = "status-bridge"  # no versions: they only tell an attacker which advisories to try
# The protocol hook below overrides a method of aiohttp 3's RequestHandler; aiohttp 4 routes these errors
# through the application instead, so on any other major version the server is left as aiohttp builds it.
SUPPORTED = aiohttp.__version__.split(".")[0] == "3" and callable(getattr(web.RequestHandler, "handle_error", None))

# What a request refused by aiohttp's HTTP parser is told: fixed text, since the parser's own message
# quotes the offending bytes (a header line carrying a token, say) back to whoever sent them.
_REFUSED: tuple[tuple[type[Exception], str, str], ...] = (
    (http_exceptions.BadHttpMethod, "malformed request line: unknown method", "method"),
    (http_exceptions.InvalidURLError, "malformed request target", "path"),
    (http_exceptions.BadStatusLine, "malformed request line", "request line"),
    (http_exceptions.LineTooLong, "request line or header too long", "headers"),
    (http_exceptions.InvalidHeader, "malformed header", "headers"),
    (http_exceptions.PayloadEncodingError, "malformed body framing", "body"),
)


def secure(headers: CIMultiDict[str]) -> None:
    """Add the headers every answer carries: no MIME sniffing (error JSON quotes the URL) and a versionless Server."""
    headers[hdrs.X_CONTENT_TYPE_OPTIONS] = "nosniff"
    headers[hdrs.SERVER] = SERVER_NAME


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """app.on_response_prepare: every routed response (304s, HEAD, 404/405/429/500 from the gate) is secured."""
    secure(response.headers)


async def expect_handler(request: web.Request) -> None:
    """Expect: 100-continue as aiohttp answers it; any other expectation is ignored, as RFC 9110 allows.

    aiohttp's default answers those with a plain-text 417 quoting the header value, outside the gate.
    """
    if request.version == HttpVersion11 and request.headers.get(hdrs.EXPECT, "").lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the interim answer is not the start of the response


def refused(status: int, exc: BaseException | None) -> web.Response:
    """The JSON answer to a request aiohttp failed before or around the handler; it quotes nothing from the request."""
    if status == 500:
        message, field = "internal error", None
    elif status == 504:
        message, field = "request timed out", None
    else:
        message, field = next(((m, f) for kind, m, f in _REFUSED if isinstance(exc, kind)), ("malformed HTTP request", "request"))
    resp = error_response(status, message, field)
    secure(resp.headers)
    resp.force_close()
    return resp


class JsonErrorHandler(web.RequestHandler):
    """aiohttp's connection protocol, answering its own errors (parser refusals, escaped exceptions) in our JSON shape."""

    __slots__ = ()

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:  # fmt: skip
        """aiohttp's logging and its check for a response already under way, then our answer instead of its text."""
        super().handle_error(request, status, exc, message)
        return refused(status, exc)


class JsonErrorServer(web.Server):
    """aiohttp's low-level server, speaking through JsonErrorHandler."""

    def __call__(self) -> web.RequestHandler:
        """One protocol instance per connection, built as aiohttp's Server builds its own."""
        return JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class BridgeRunner(web.AppRunner):
    """web.AppRunner whose server answers requests refused before routing with the JSON error shape."""

    async def _make_server(self) -> web.Server:
        """aiohttp's server for the app, rebuilt as a JsonErrorServer when this aiohttp is one the hook fits."""
        server = await super()._make_server()
        if not SUPPORTED or not hasattr(server, "_kwargs"):
            log.warning("aiohttp %s: malformed requests get aiohttp's own plain-text 400", aiohttp.__version__)
            return server
        return JsonErrorServer(server.request_handler, request_factory=server.request_factory,
                               handler_cancellation=server.handler_cancellation, **server._kwargs)  # fmt: skip
