"""Sans-IO HTTP pieces: the request and response objects, status lines, dates.

Nothing here touches a socket. The protocol module feeds parsed requests in and
serialises the responses that the handlers give back.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Iterable
from http import HTTPStatus
from typing import Any, BinaryIO, Final

from tapster._lazy import import_later

import_later("html")  # error_response

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._body import BodyFeed
    from ._protocol import HttpConnection

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
        self._line = b"Date: " + http_date(now).encode("ascii") + b"\r\n"
        self._prefixes = {}


date_cache: Final = _DateCache()


_DAY_NAMES: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_LONG_DAY_NAMES: Final = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)
_MONTH_NAMES: Final = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip
_MONTH_NUMBERS: Final = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}


def http_date(timestamp: float) -> str:
    """Format ``timestamp`` as an IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``).

    Written here rather than taken from ``email.utils``, whose import (the
    ``email`` package, ``random``, ``datetime``, ``calendar``) costs a server's
    start more than the whole HTTP layer does; the tests check both agree.
    """
    t = time.gmtime(timestamp)
    return (
        f"{_DAY_NAMES[t.tm_wday]}, {t.tm_mday:02d} {_MONTH_NAMES[t.tm_mon - 1]} "
        f"{t.tm_year:04d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def parse_http_date(value: str) -> int | None:
    """The POSIX timestamp of an HTTP-date, or ``None`` when ``value`` is not one.

    Accepts the three forms RFC 9110 (section 5.6.7) requires a recipient to
    read: IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``), the obsolete RFC 850
    form (``Sunday, 06-Nov-94 08:49:37 GMT``) and C's asctime
    (``Sun Nov  6 08:49:37 1994``). Anything else -- other time zones, missing
    fields, impossible dates -- is not an HTTP-date, and a conditional request
    carrying one is answered as if the header were absent.
    """
    parts = value.split()
    try:
        if len(parts) == 6 and parts[5] == "GMT" and parts[0][:-1] in _DAY_NAMES:
            # IMF-fixdate: day-name "," day month year time "GMT"
            if not parts[0].endswith(",") or len(parts[1]) != 2 or len(parts[3]) != 4:
                return None
            day, month, year, clock = int(parts[1]), parts[2], int(parts[3]), parts[4]
        elif len(parts) == 4 and parts[3] == "GMT" and parts[0][:-1] in _LONG_DAY_NAMES:
            # RFC 850: day-name-l "," day "-" month "-" 2DIGIT time "GMT"
            pieces = parts[1].split("-")
            if not parts[0].endswith(",") or len(pieces) != 3 or len(pieces[2]) != 2:
                return None
            day, month, clock = int(pieces[0]), pieces[1], parts[2]
            year = _full_year(int(pieces[2]))
        elif len(parts) == 5 and parts[0] in _DAY_NAMES:
            # asctime: day-name month day time year (the day may be space-padded)
            month, day, clock, year = parts[1], int(parts[2]), parts[3], int(parts[4])
            if len(parts[4]) != 4:
                return None
        else:
            return None
        hour, minute, second = _clock(clock)
    except ValueError:
        return None
    number = _MONTH_NUMBERS.get(month)
    if number is None or not 1 <= day <= _days_in_month(year, number):
        return None
    days = _days_from_civil(year, number, day)
    return ((days * 24 + hour) * 60 + minute) * 60 + second


def _clock(text: str) -> tuple[int, int, int]:
    fields = text.split(":")
    if len(fields) != 3 or any(len(f) != 2 or not f.isdigit() for f in fields):
        raise ValueError(text)
    hour, minute, second = (int(f) for f in fields)
    if hour > 23 or minute > 59 or second > 60:  # 60: a leap second
        raise ValueError(text)
    return hour, minute, second


def _full_year(two_digits: int) -> int:
    """RFC 9110: a two-digit year more than 50 years ahead is in the past century."""
    this_year = time.gmtime().tm_year
    year = this_year - this_year % 100 + two_digits
    return year - 100 if year > this_year + 50 else year


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a date of the proleptic Gregorian calendar."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


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
        "channel",
        "client",
        "headers",
        "keep_alive",
        "method",
        "path",
        "query",
        "remote_user",
        "scheme",
        "started",
        "stream",
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
        #: When the head was parsed (``time.monotonic()``): the request duration's start.
        self.started = time.monotonic()
        #: ``http``, ``https``; ``ws`` or ``wss`` for a WebSocket upgrade (set with ASGI only).
        self.scheme = "http"
        #: The connection, for handlers that answer on it themselves (ASGI); else None.
        self.channel: HttpConnection | None = None
        #: The body as it streams in (ASGI, or WSGI's ``wsgi.input``, when nothing was
        #: queued before it); else None and ``body`` holds it whole.
        self.stream: BodyFeed | None = None

    def get(self, name: bytes, default: bytes | None = None) -> bytes | None:
        """The value of header ``name`` (lower-case bytes), or ``default``."""
        m = self._map
        if m is None:
            m = self.header_map()
        return m.get(name, default)

    def header_map(self) -> dict[bytes, bytes]:
        """Every header by lower-case name, repeated ones joined with ", " (built once).

        For a handler that looks up several headers: one call, then plain dict lookups.
        """
        m = self._map
        if m is None:
            m = {}
            for key, value in self.headers:
                old = m.get(key)
                m[key] = value if old is None else old + b", " + value
            self._map = m
        return m


class FileSpan:
    """``count`` bytes of the file at ``path`` from ``offset``, sent with sendfile.

    ``file``: the file already open (a WSGI ``wsgi.file_wrapper``); the protocol then
    sends from it rather than opening ``path``, and leaves closing it to its owner.
    ``data``, when given, is the whole file as it was read (the version the headers
    describe): where sendfile cannot go (TLS) the span is written from it instead.
    """

    __slots__ = ("count", "data", "file", "offset", "path")

    def __init__(
        self,
        path: str,
        offset: int,
        count: int,
        file: BinaryIO | None = None,
        data: bytes | None = None,
    ) -> None:
        self.path = path
        self.offset = offset
        self.count = count
        self.file = file
        self.data = data

    def from_memory(self) -> bytes | None:
        """The span's bytes from ``data``, or ``None`` when the file is not in memory."""
        data = self.data
        if data is None or (self.offset == 0 and self.count == len(data)):
            return data
        return data[self.offset : self.offset + self.count]


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


class Pending:
    """A response another thread is making (a WSGI call), delivered once on the loop.

    Lighter than a future and a task per request: the connection registers one
    callback with ``then`` and the maker calls ``deliver`` on the loop thread.
    Awaitable too, for code that waits anyway (a login before the call).
    ``cancelled`` tells the maker's thread that nobody wants the response any more; the
    maker then releases what the response holds (a streaming body's ``close()``).
    """

    __slots__ = ("_callback", "_result", "cancelled")

    def __init__(self) -> None:
        self._callback: Callable[[Response], None] | None = None
        self._result: Response | None = None
        self.cancelled = False

    def then(self, callback: Callable[[Response], None]) -> None:
        """Call ``callback(response)`` on delivery (at once if it has come)."""
        result = self._result
        if result is None:
            self._callback = callback
        else:
            self._result = None
            callback(result)

    def deliver(self, resp: Response) -> None:
        """The response is ready (on the loop thread)."""
        callback = self._callback
        if callback is None:
            if not self.cancelled:
                self._result = resp
        else:
            self._callback = None
            callback(resp)

    def cancel(self) -> None:
        """The client left: drop the callback, and let the maker see it."""
        self.cancelled = True
        self._callback = None

    def __await__(self) -> Generator[Any, None, Response]:
        import asyncio

        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

        def arrived(resp: Response) -> None:
            if not fut.done():
                fut.set_result(resp)

        self.then(arrived)
        try:
            return (yield from fut.__await__())
        except BaseException:  # cancelled: the client left while this waited
            self.cancel()
            if fut.done() and not fut.cancelled():
                release = getattr(fut.result().body, "close", None)
                if release is not None:
                    release()  # a body still held by the worker: let it go
            raise


class ChannelCall:
    """A call that answers on ``Request.channel`` itself (an ASGI application's).

    Awaitable like any answer (``None`` when done); the connection instead runs
    ``run(True)`` as its task, which ends the connection's turn itself
    (``HttpConnection.call_done``): no wrapping coroutine per request.
    """

    __slots__ = ()

    def run(self, own_turn: bool = False) -> Coroutine[Any, Any, None]:
        """The call; ``own_turn``: run as the connection's task (which has made this
        call its watcher already), and end its turn."""
        raise NotImplementedError

    def lost(self) -> None:
        """The client went away."""
        raise NotImplementedError

    def ended(self) -> None:
        """The client will send no more (it may still read)."""
        raise NotImplementedError

    def __await__(self) -> Generator[Any, None, None]:
        return self.run().__await__()


#: What a handler gives back: the response when it has it at once (a cached
#: file), else an awaitable of it (a first read, a login, a WSGI call: ``Pending``).
#: An awaitable of ``None`` answered on ``Request.channel`` itself (ASGI, WebSocket).
Handled = Response | Awaitable[Response | None]


#: What static files, WSGI and login give back: never ``None``.
Answer = Response | Awaitable[Response]


async def resolve(result: Answer) -> Response:
    """The response ``result`` is or will give, for code that may wait anyway."""
    if isinstance(result, Response):
        return result
    return await result


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
    import html  # with its entity table: by the first error page, not at start-up

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
