"""Sans-IO HTTP pieces: the request and response objects, status lines, dates.

Nothing here touches a socket. The protocol module feeds parsed requests in and
serialises the responses that the handlers give back.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from email.utils import formatdate
from http import HTTPStatus
from typing import Final

SERVER: Final = b"tapster"
_SERVER_LINE: Final = b"Server: " + SERVER + b"\r\n"

#: Pre-encoded status lines, built once for every status the standard library knows.
_STATUS_LINES: Final[dict[int, bytes]] = {
    s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode("ascii") for s in HTTPStatus
}


def status_line(status: int) -> bytes:
    """The ``HTTP/1.1 NNN Reason`` line (with CRLF) for ``status``."""
    line = _STATUS_LINES.get(status)
    if line is None:
        line = f"HTTP/1.1 {status} Unknown\r\n".encode("ascii")
    return line


def reason(status: int) -> str:
    """The reason phrase of ``status`` ("Not Found" for 404)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class _DateCache:
    """The ``Date:`` header line, formatted at most once per second, and the
    status line + ``Date`` + ``Server`` prefix of each status, built with it."""

    __slots__ = ("_line", "_prefixes", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._line = b""
        self._prefixes: dict[int, bytes] = {}

    def line(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._tick(now)
        return self._line

    def prefix(self, status: int) -> bytes:
        """``HTTP/1.1 200 OK``, ``Date`` and ``Server`` lines for ``status``."""
        now = int(time.time())
        if now != self._second:
            self._tick(now)
        prefix = self._prefixes.get(status)
        if prefix is None:
            prefix = self._prefixes[status] = status_line(status) + self._line + _SERVER_LINE
        return prefix

    def _tick(self, now: int) -> None:
        self._second = now
        self._line = b"Date: " + formatdate(now, usegmt=True).encode("ascii") + b"\r\n"
        self._prefixes = {}


date_cache: Final = _DateCache()


def http_date(timestamp: float) -> str:
    """Format ``timestamp`` as an IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``)."""
    return formatdate(timestamp, usegmt=True)


def header_block(headers: Iterable[tuple[str, str]]) -> bytes:
    """Encode header pairs as ``Name: value\\r\\n`` lines (latin-1, as HTTP requires).

    Values must not carry CR or LF: a handler that lets user input into a header
    would otherwise split the response, so such a value raises ``ValueError``.
    """
    out = []
    for name, value in headers:
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} contains a line break")
        out.append(f"{name}: {value}\r\n")
    return "".join(out).encode("latin-1")


class Request:
    """One parsed HTTP request.

    ``headers`` keeps every header in arrival order with lower-cased names;
    ``get`` answers from a map where repeated headers are joined with ", ".
    """

    __slots__ = (
        "_map",
        "body",
        "client",
        "headers",
        "keep_alive",
        "method",
        "path",
        "query",
        "remote_user",
        "target",
        "version",
    )

    def __init__(  # noqa: PLR0917 -- built in one place, by the protocol
        self,
        method: str,
        target: bytes,
        path: bytes,
        query: bytes,
        version: str,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        client: str = "-",
    ) -> None:
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.client = client
        self.body = b""
        self.remote_user: str | None = None
        self._map: dict[bytes, bytes] | None = None

    def get(self, name: bytes, default: bytes | None = None) -> bytes | None:
        """The value of header ``name`` (lower-case bytes), or ``default``."""
        m = self._map
        if m is None:
            m = {}
            for key, value in self.headers:
                old = m.get(key)
                m[key] = value if old is None else old + b", " + value
            self._map = m
        return m.get(name, default)


class FileSpan:
    """``count`` bytes of the file at ``path`` from ``offset``, sent with sendfile."""

    __slots__ = ("count", "offset", "path")

    def __init__(self, path: str, offset: int, count: int) -> None:
        self.path = path
        self.offset = offset
        self.count = count


Body = bytes | list[bytes | FileSpan] | AsyncIterator[bytes]


class Response:
    """What a handler answers: a status, encoded header lines and a body.

    ``headers`` holds complete ``Name: value\\r\\n`` lines and must carry
    ``Content-Length`` unless the body is an async iterator (then the protocol
    uses chunked encoding, or closes the connection for HTTP/1.0). The protocol
    adds the status line, ``Date``, ``Server`` and ``Connection``. ``body_length``
    is the size the access log reports.
    """

    __slots__ = ("body", "body_length", "close", "headers", "status")

    def __init__(
        self,
        status: int,
        headers: bytes,
        body: Body = b"",
        body_length: int = 0,
        close: bool = False,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.body_length = body_length
        self.close = close


_ERROR_PAGE = (
    '<!doctype html>\n<html><head><meta charset="utf-8"><title>{code} {phrase}</title></head>\n'
    "<body><h1>{code} {phrase}</h1>\n<p>{message}</p></body></html>\n"
)


def error_response(
    status: int,
    message: str = "",
    extra: Iterable[tuple[str, str]] = (),
    close: bool = False,
    head: bool = False,
) -> Response:
    """A small HTML error page. ``message`` must already be safe to show (no paths)."""
    import html

    phrase = reason(status)
    body = _ERROR_PAGE.format(
        code=status, phrase=phrase, message=html.escape(message or phrase)
    ).encode("utf-8")
    headers = header_block(
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *extra,
        ]
    )
    return Response(status, headers, b"" if head else body, len(body), close=close)
