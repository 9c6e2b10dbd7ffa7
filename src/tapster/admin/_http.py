"""A tiny HTTP/1.1 server for the admin endpoint: one request at a time per connection.

httptools parses (already a dependency); requests are small (a path, a few
headers, at most :data:`MAX_BODY` bytes of body), answers carry a
``Content-Length``, and connections are kept alive between requests (Prometheus
reuses its connection) until :data:`IDLE_TIMEOUT` seconds pass with nothing.
Pipelined requests are answered in order. What breaks those rules gets a 4xx
answer and the connection is closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import NamedTuple
from urllib.parse import parse_qs, unquote

import httptools

__all__ = ["IDLE_TIMEOUT", "MAX_BODY", "AdminConnection", "Request", "Response"]

log = logging.getLogger("tapster.admin")

#: Seconds an idle connection is kept open.
IDLE_TIMEOUT = 30.0
#: The largest request body accepted (control actions carry a few bytes).
MAX_BODY = 4096
#: The largest request head (URL and headers) accepted.
MAX_HEAD = 16384


class Request(NamedTuple):
    """One admin request."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes


class Response(NamedTuple):
    """One admin answer."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


Handler = Callable[[Request], Awaitable[Response]]


class _RefusedError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class AdminConnection(asyncio.Protocol):
    """One client of the admin endpoint."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body = b""
        self._head = 0
        self._busy = False
        # Requests parsed but not answered yet, with whether each keeps the connection.
        self._pending: deque[tuple[Request, bool]] = deque()
        self._idle: asyncio.TimerHandle | None = None

    # -- transport events ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._idle is not None:
            self._idle.cancel()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except _RefusedError as exc:
            self._refuse(exc.status, str(exc))
        except httptools.HttpParserUpgrade:
            self._refuse(400, "upgrades are not served here")
        except httptools.HttpParserError:
            self._refuse(400, "malformed request")

    # -- parser callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url, self._headers, self._body, self._head = b"", {}, b"", 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self._headers[key] = f"{self._headers[key]}, {text}" if key in self._headers else text

    def on_body(self, body: bytes) -> None:
        if len(self._body) + len(body) > MAX_BODY:
            raise _RefusedError(413, "request body too large")
        self._body += body

    def on_message_complete(self) -> None:
        if self._transport is None:
            return
        parsed = httptools.parse_url(self._url)
        query = parse_qs(parsed.query.decode("latin-1")) if parsed.query else {}
        request = Request(
            self._parser.get_method().decode("ascii", "replace"),
            unquote(parsed.path.decode("latin-1")),
            query,
            self._headers,
            self._body,
        )
        # Read now: the parser forgets the request's Connection header once it returns.
        self._pending.append((request, self._parser.should_keep_alive()))
        if not self._busy:
            # One request at a time: hold the rest until the queue is answered.
            self._transport.pause_reading()
            self._busy = True
            if self._idle is not None:
                self._idle.cancel()
            asyncio.get_running_loop().create_task(self._answer_pending())

    def _count(self, size: int) -> None:
        self._head += size
        if self._head > MAX_HEAD:
            raise _RefusedError(431, "request head too large")

    # -- answers ---------------------------------------------------------------------

    async def _answer_pending(self) -> None:
        """Answer the queued requests in order (pipelined ones arrive in one read)."""
        while self._pending:
            request, keep = self._pending.popleft()
            try:
                response = await self._handler(request)
            except Exception:
                log.exception(
                    "the admin endpoint failed to answer %s %s", request.method, request.path
                )
                response = text_response(500, "internal error\n")
            transport = self._transport
            if transport is None or transport.is_closing():
                return
            transport.write(_encode(response, keep))
            if not keep:
                self._pending.clear()
                transport.close()
                return
        self._busy = False
        if self._transport is not None and not self._transport.is_closing():
            self._arm()
            self._transport.resume_reading()

    def _refuse(self, status: int, message: str) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(_encode(text_response(status, message + "\n"), False))
        transport.close()

    def _arm(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self._idle = asyncio.get_running_loop().call_later(IDLE_TIMEOUT, self._timed_out)

    def _timed_out(self) -> None:
        if self._transport is not None and not self._busy:
            self._transport.close()


def text_response(status: int, text: str) -> Response:
    """A plain-text answer."""
    return Response(status, "text/plain; charset=utf-8", text.encode("utf-8"))


def _encode(response: Response, keep_alive: bool) -> bytes:
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Cache-Control: no-store",
        "Connection: keep-alive" if keep_alive else "Connection: close",
        *(f"{name}: {value}" for name, value in response.headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body
