"""The asyncio protocol: bytes in through httptools, responses out, per connection.

One ``HttpConnection`` per client. httptools parses; every complete request is
queued, and the queue is answered in order (pipelining). Responses a handler
can give at once are gathered and written together in one ``transport.write``;
a handler that must wait (a first read, a WSGI call, a login) gets a task, and
the queue waits behind it. Limits and timeouts are enforced here; the handlers
never see a request that broke them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections import deque
from collections.abc import Coroutine

import httptools

from ._accesslog import format_line, printable
from ._body import RequestBody
from ._http import (
    SERVER,
    ChannelCall,
    FileSpan,
    Handled,
    Pending,
    Request,
    Response,
    date_cache,
    error_response,
    status_line,
)
from ._metrics import count_rejected, count_request
from ._sending import SENDFILE_FAMILIES, ResponseWriter, Resume, flush, one_span

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Protocol

    from ._body import BodyFeed
    from ._server import WebServer

    class Upgraded(Protocol):
        """What takes a connection's bytes after an upgrade (a WebSocket session)."""

        def data_received(self, data: bytes) -> None: ...
        def connection_lost(self) -> None: ...
        def going_away(self) -> None: ...

    class _Watcher(Protocol):
        def lost(self) -> None: ...
        def ended(self) -> None: ...


log = logging.getLogger("tapster.web")

_SERVER_LINE = b"Server: " + SERVER + b"\r\n"
_KEEP_ALIVE = b"Connection: keep-alive\r\n"
_CLOSE = b"Connection: close\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_FRAMING = frozenset({b"content-length", b"expect", b"transfer-encoding"})
_NO_BODY_STATUS = frozenset({204, 304})
#: How long a connection we closed waits for the client's own close (see ``_close``).
_LINGER = 1.0


class HttpConnection(ResponseWriter, asyncio.Protocol):
    """HTTP/1.1 for one client connection (keep-alive, pipelining, limits)."""

    def __init__(self, server: WebServer) -> None:
        self._server = server
        self._limits = server.config.limits
        self._app = server.app
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._queue: deque[Request] = deque()
        self._busy = False
        self._closing = False
        self._read_paused = False
        self._write_paused = False
        self._paused_since = 0.0
        self._sendfile_since: float | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._client = "-"
        self._task: asyncio.Task[None] | None = None
        #: The request being received, from its first byte to its last; None between requests.
        self._incoming: _Incoming | None = None
        # The unfinished-header bound: parser callbacks seen so far, and bytes
        # fed since the last one (httptools holds a header until its end).
        self._progress = 0
        self._stall = 0
        self._upgrade = False
        self._eof = False
        #: Monotonic time after which this connection is cut off; None while we work.
        #: Changed only through ``_set_deadline``.
        self._deadline: float | None = None
        #: ASGI: requests go to the handler as soon as their head is parsed, their
        #: bodies stream, and the handler answers on this connection itself.
        self._streams: bool = server.app.streams
        #: WSGI: a request with a body goes to a worker as soon as its head is parsed,
        #: and the application reads the body as it arrives (``wsgi.input``).
        self._wsgi = server.app.wsgi
        #: A response a worker thread is making (WSGI), and the request it answers.
        self._pending: Pending | None = None
        self._pending_req: Request | None = None
        #: Whether the connection is TLS: requests say ``https`` (known with ASGI and WSGI).
        self._tls = False
        #: Told when the client leaves, instead of cancelling the task (an ASGI call).
        self._watcher: _Watcher | None = None
        #: After a WebSocket upgrade: the session that takes every byte from now on.
        self._upgraded: Upgraded | None = None
        #: Bytes that followed an upgrade request's head, for the session.
        self._leftover = b""
        self._addresses: tuple[object, object] | None = None
        #: The socket's descriptor, for sendfile; -1 where sendfile cannot go (TLS).
        self._sock_fd = -1
        #: ASGI: what every scope on this connection shares (``AsgiHandler.scope``).
        self.scope_base: tuple[dict[str, Any], str] | None = None
        #: The timer that ends a gentle close (``_close``) if the client never closes.
        self._linger: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not inherit from asyncio.Transport: no isinstance.
        self._transport = transport  # type: ignore[assignment]
        from tapster.internet import is_tls

        self._tls = is_tls(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Responses are written whole: never let Nagle hold one back.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if sock is not None and not self._tls and sock.family in SENDFILE_FAMILIES:
            self._sock_fd = sock.fileno()
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self._client = str(peer[0])
        elif peer:
            self._client = str(peer)
        self._server.connections.add(self)
        # Accepted as the server began to stop: still served (its answer says
        # ``Connection: close``); closing now would reset a request on its way.
        self._set_deadline(self._limits.request_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._linger is not None:
            self._linger.cancel()
        self._server.connections.discard(self)
        incoming = self._incoming
        if incoming is not None and incoming.stream is not None:
            incoming.stream.lost()  # a reader waiting for the rest learns it will not come
        if self._pending is not None:
            self._pending.cancel()
        if self._upgraded is not None:
            self._upgraded.connection_lost()
        elif self._watcher is not None:
            # An ASGI application is told (http.disconnect), not cancelled.
            self._watcher.lost()
        elif self._task is not None and not self._task.done():
            self._task.cancel()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("client went away"))
        self._server.connection_closed()

    def eof_received(self) -> bool:
        # The client will send nothing more (it may still read): answer what it
        # asked, then close. A half-sent request is simply dropped.
        self._eof = True
        if self._upgraded is not None or self._linger is not None:
            return False  # a WebSocket client that stops sending has gone; or we closed
        if self._watcher is not None:
            self._watcher.ended()  # ASGI: http.disconnect, as other servers say it
        incoming = self._incoming
        if incoming is not None and incoming.stream is not None:
            incoming.stream.lost()  # the rest of the body will not come (wsgi.input raises)
        if not self._busy and not self._queue:
            self._close()
        # Stay half-open to reply on plain TCP; a TLS connection closes regardless.
        return self._transport is not None and not self._tls

    def pause_writing(self) -> None:
        self._write_paused = True
        self._paused_since = time.monotonic()

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if not self._busy:
            self._answer_queue()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        upgraded = self._upgraded
        if upgraded is not None:
            upgraded.data_received(data)
            return
        progress = self._progress
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # Answer what was asked, then hang up; or (ASGI) hand the connection
            # to a WebSocket session, with what came after the request's head.
            self._upgrade = True
            self._stop_reading()
            if self._streams and exc.args:
                self._leftover = data[exc.args[0] :]
        except httptools.HttpParserError as exc:
            if not self._closing:
                cause = exc.__context__
                if isinstance(cause, _RejectError):
                    self._reject(cause.status, cause.message)
                else:
                    self._reject(400, "The request is not valid HTTP/1.1.")
            return
        incoming = self._incoming
        if incoming is not None and incoming.request is None:
            # Bytes httptools holds for a header it has not finished: bound them too.
            self._stall = len(data) if progress != self._progress else self._stall + len(data)
            if self._stall > self._limits.max_header_size + self._limits.max_request_line:
                self._reject(431, "The request header section is too large.")
                return
        if self._queue and not self._busy:
            self._answer_queue()

    # -- httptools callbacks -----------------------------------------------------

    def on_message_begin(self) -> None:
        self._incoming = _Incoming()
        self._progress += 1
        if not self._busy and not self._queue:
            self._set_deadline(self._limits.request_timeout)

    def on_url(self, url: bytes) -> None:
        incoming = self._incoming
        assert incoming is not None
        incoming.url_len += len(url)
        self._progress += 1
        if incoming.url_len > self._limits.max_request_line:
            raise _RejectError(414, "The request target is too long.")
        incoming.url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        incoming = self._incoming
        assert incoming is not None
        self._progress += 1
        incoming.head_size += len(name) + len(value) + 4
        if incoming.head_size > self._limits.max_header_size:
            raise _RejectError(431, "The request header section is too large.")
        headers = incoming.headers
        if len(headers) >= self._limits.max_headers:
            raise _RejectError(431, "The request has too many header fields.")
        lname = name.lower()
        headers.append((lname, value))
        if lname in _FRAMING:
            incoming.framed = True

    def on_headers_complete(self) -> None:
        incoming = self._incoming
        assert incoming is not None
        self._progress += 1
        parser = self._parser
        target = b"".join(incoming.url)
        if target[:1] == b"/":  # a slice, not startswith: no argument parsing
            path, _, query = target.partition(b"?")
            path = path.partition(b"#")[0]
        elif target == b"*":
            path, query = b"*", b""
        else:
            try:
                parsed = httptools.parse_url(target)
            except httptools.HttpParserInvalidURLError:
                raise _RejectError(400, "The request target is not a valid URL.") from None
            path = parsed.path or b"/"
            query = parsed.query or b""
        req = Request(
            parser.get_method().decode("ascii", "replace"),
            target,
            path,
            query,
            parser.get_http_version(),
            incoming.headers,
            parser.should_keep_alive(),
            self._client,
        )
        incoming.request = req
        if self._tls:
            req.scheme = "https"
        if incoming.framed:
            self._check_framing(req)
        if self._streams:
            req.channel = self
            if incoming.framed or self._parser.should_upgrade():
                self._dispatch_early(req, incoming)
        elif (
            self._wsgi is not None
            and incoming.framed
            and not self._busy
            and not self._queue
            and _has_body(req)
        ):
            req.stream = incoming.stream = self._wsgi.input_for(self)
            self._queue.append(req)

    def _dispatch_early(self, req: Request, incoming: _Incoming) -> None:
        """ASGI, a request that has a body or asks for an upgrade: hand it over now,
        its body to follow as it arrives.

        Only on an idle connection: a request pipelined behind another waits in
        the queue with its body whole, as with files and WSGI. A request without
        ``Content-Length`` or ``Transfer-Encoding`` has no body and does not come
        here: it is queued whole as it completes (in the same parse), with no stream.
        """
        if self._parser.should_upgrade():
            upgrade = req.get(b"upgrade")
            if upgrade is not None and b"websocket" in upgrade.lower():
                req.scheme = "wss" if self._tls else "ws"
            return
        if not self._busy and not self._queue:
            body = RequestBody(self)
            req.stream = incoming.stream = body
            self._queue.append(req)

    def _check_framing(self, req: Request) -> None:
        """Refuse a body that is too large before reading it; answer 100-continue."""
        length = req.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise _RejectError(400, "Content-Length is not a number.") from None
            if declared > self._limits.max_body:
                raise _RejectError(413, "The request body is too large.")
        expect = req.get(b"expect")
        if (
            expect is not None
            and expect.lower() == b"100-continue"
            and self._transport
            and not self._queue
            and not self._busy
        ):
            self._transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        incoming = self._incoming
        assert incoming is not None
        incoming.body_len += len(body)
        if incoming.body_len > self._limits.max_body:
            raise _RejectError(413, "The request body is too large.")
        stream = incoming.stream
        if stream is not None:
            stream.feed(body)
        else:
            incoming.body.append(body)

    def on_message_complete(self) -> None:
        incoming = self._incoming
        self._incoming = None
        if incoming is None or incoming.request is None or self._closing:
            return
        req = incoming.request
        if incoming.stream is not None:
            incoming.stream.finish()  # queued when its head came
            return
        if incoming.body:
            req.body = b"".join(incoming.body)
        self._queue.append(req)
        self._set_deadline(None)
        if len(self._queue) >= self._limits.max_pipeline:
            self._stop_reading()

    # -- answering ---------------------------------------------------------------

    def _answer_queue(self) -> None:
        """Answer queued requests in order; gather what is ready into one write."""
        transport = self._transport
        if transport is None:
            return
        out: list[bytes] = []
        queue = self._queue
        app = self._app
        while queue and not self._closing and not self._write_paused:
            req = queue.popleft()
            try:
                result = app.handle(req)
            except Exception:
                log.exception("Error while handling %s %s", req.method, printable(req.target))
                result = error_response(500, "The server failed to handle this request.")
            if type(result) is Response:
                body = result.body
                if type(body) is list and one_span(body):
                    # One file span (``_static``): sendfile where it can go, else from memory.
                    span: FileSpan = body[0]  # type: ignore[assignment]
                    if self._sock_fd >= 0 and span.file is None and req.method != "HEAD":
                        if out:
                            flush(transport, out)
                            out = []
                        if self._send_file_now(req, result, span):
                            continue
                        return
                    if span.data is not None:
                        body = result.body = span.from_memory() or b""
                if type(body) is bytes:
                    if req.stream is not None:
                        req.stream.discard()  # answered before its body: drop that
                    self._emit(out, req, result)
                    continue
            elif type(result) is Pending:
                # A worker thread makes it (WSGI): no task, one callback when it comes.
                if out:
                    flush(transport, out)
                self._busy = True
                self._set_deadline(None)
                self._pending, self._pending_req = result, req
                result.then(self._answered)
                return
            if out:
                flush(transport, out)
            self._busy = True
            self._set_deadline(None)
            loop = asyncio.get_running_loop()
            if isinstance(result, ChannelCall):
                self._watcher = result
                self._task = _call_task(loop, result.run(True))  # ends with ``call_done``
            else:
                self._task = loop.create_task(self._answer_later(req, result))
            return
        if out:
            flush(transport, out)
        self._after_answers()

    def _after_answers(self) -> None:
        if self._closing:
            return
        if self._write_paused:
            self._stop_reading()
            return
        if not self._queue:
            receiving = self._incoming is not None
            if self._eof or (self._server.draining and not receiving):
                self._close()
                return
            # The next request began arriving while we were busy: time it;
            # else wait for one as long as an idle connection may stay.
            self._set_deadline(
                self._limits.request_timeout if receiving else self._limits.keep_alive_timeout
            )
            if self._read_paused and self._transport is not None:
                self._read_paused = False
                self._transport.resume_reading()

    def _head(self, req: Request, resp: Response, extra: bytes = b"") -> tuple[bytes, bool]:
        """The status line and headers for ``resp``; also whether to close afterwards."""
        close = (
            resp.close
            or not req.keep_alive
            or self._server.draining
            or (self._upgrade and not self._queue)
        )
        if close:
            conn = _CLOSE
        elif req.version == "1.0":
            conn = _KEEP_ALIVE
        else:
            conn = b""
        return (
            b"".join((date_cache.prefix(resp.status), resp.headers, extra, conn, b"\r\n")),
            close,
        )

    def _emit(self, out: list[bytes], req: Request, resp: Response) -> None:
        head, close = self._head(req, resp)
        out.append(head)
        body = resp.body
        if body and resp.status not in _NO_BODY_STATUS and req.method != "HEAD":
            out.append(body)  # type: ignore[arg-type]
        self._log(req, resp)
        if close:
            if self._transport is not None:
                flush(self._transport, out)
            out.clear()
            self._close()

    def _answered(self, resp: Response) -> None:
        """A worker thread's response came (on the loop): write it, or stream it in a task."""
        req = self._pending_req
        assert req is not None
        self._pending = self._pending_req = None
        if type(resp.body) is not bytes:
            self._task = asyncio.get_running_loop().create_task(self._answer_later(req, resp))
            return
        self._busy = False
        transport = self._transport
        if not self._closing and transport is not None:
            out: list[bytes] = []
            self._emit(out, req, resp)
            if out:
                flush(transport, out)
        if req.stream is not None:
            req.stream.discard()
        if not self._closing:
            if self._queue:
                self._answer_queue()
            else:
                self._after_answers()

    async def _answer_later(
        self, req: Request, result: Handled, resume: Resume | None = None
    ) -> None:
        """Answer ``req`` once ``result`` is ready, then carry on with the queue.

        ``resume``: the head and the first bytes of a file already went out
        (``_send_file_now``); send the rest.
        """
        try:
            try:
                # Inline rather than ``resolve``: a first read of a file comes here.
                resp = result if isinstance(result, Response) else await result
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Error while handling %s %s", req.method, printable(req.target))
                resp = error_response(500, "The server failed to handle this request.")
            if resume is not None:
                assert isinstance(resp, Response)
                await self._finish_file(req, resp, resume)
            elif resp is not None:  # else answered on the connection (ASGI)
                try:
                    await self._send(req, resp)
                finally:
                    aclose = getattr(resp.body, "aclose", None)
                    if aclose is not None:
                        await aclose()
        except asyncio.CancelledError:
            self._abort()
            raise
        except (ConnectionError, OSError):
            self._abort()
            return
        except Exception:
            log.exception("Error while sending a response")
            self._abort()
            return
        finally:
            self._end_call(req)
        self._next_request()

    async def _drain(self) -> None:
        if self._closing:
            raise ConnectionResetError("connection closed")
        if not self._write_paused:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._drain_waiter = waiter
        try:
            await waiter
        finally:
            self._drain_waiter = None

    # -- closing, errors, timeouts -----------------------------------------------

    def _stop_reading(self) -> None:
        if not self._read_paused and self._transport is not None and not self._closing:
            self._read_paused = True
            self._transport.pause_reading()

    def _reject(self, status: int, message: str) -> None:
        """Answer a request that broke the rules, then close: nothing after it is trusted."""
        self._queue.clear()
        transport = self._transport
        if transport is None or self._closing:
            return
        if self._busy:
            # A response is still going out; a second one would interleave.
            self._abort()
            return
        resp = error_response(status, message, close=True)
        head = b"".join(
            (status_line(status), date_cache.line(), _SERVER_LINE, resp.headers, _CLOSE, b"\r\n")
        )
        transport.write(head + resp.body)  # type: ignore[operator]
        count_rejected(status, resp.body_length)
        access = self._server.access
        if access.enabled:
            access.write(format_line(None, self._client, status, resp.body_length))
        self._close()

    def _close(self) -> None:
        """Close from our side, gently: on plain TCP send FIN, then read and drop
        whatever the client still sends until it closes too, for at most
        ``_LINGER`` seconds. Closing at once would make the kernel answer a request
        already on its way (keep-alive, or a stop racing a new client) with a reset;
        after a FIN the client reads end of file and may retry."""
        if self._closing:
            return
        self._closing = True
        self._set_deadline(None)
        transport = self._transport
        if transport is None:
            return
        if self._eof or self._upgraded is not None or not transport.can_write_eof():
            transport.close()
            return
        from tapster.internet import is_tls

        if is_tls(transport):
            transport.close()
            return
        transport.write_eof()
        if self._read_paused:
            self._read_paused = False
            transport.resume_reading()
        self._linger = asyncio.get_running_loop().call_later(_LINGER, transport.close)

    def abort(self) -> None:
        """Close the connection at once, dropping anything unsent; stop its handler."""
        self._abort()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._pending is not None:
            self._pending.cancel()

    def cut(self) -> None:
        """Close the connection at once (a handler's response went wrong)."""
        self._abort()

    def _reset(self) -> None:
        """Make the coming close a reset: the kernel drops what the client never read."""
        transport = self._transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def _abort(self) -> None:
        self._closing = True
        self._set_deadline(None)
        if self._transport is not None:
            self._transport.abort()

    def _set_deadline(self, seconds: float | None) -> None:
        """Cut the connection off ``seconds`` from now unless this is called
        again first; ``None`` while the server, not the client, is the one working.

        ``check_timeout`` does the cutting, so the hot path only stores a number.
        """
        self._deadline = None if seconds is None else time.monotonic() + seconds

    def check_timeout(self, now: float) -> None:
        """Called about once a second by the server: cut off clients that stall."""
        if self._closing:
            return
        stalled = self._paused_since if self._write_paused else self._sendfile_since
        if stalled is not None and now - stalled > self._limits.send_timeout:
            log.info("Closing connection from %s: it stopped reading", self._client)
            self._reset()
            self._abort()
            return
        deadline = self._deadline
        if deadline is not None and now > deadline:
            if self._incoming is not None and not self._busy:
                self._reject(408, "The request took too long to arrive.")
            else:
                self._close()

    def begin_drain(self) -> None:
        """The server is stopping: close if idle, else after the response in progress."""
        if self._upgraded is not None:
            self._upgraded.going_away()
        elif not self._busy and not self._queue and self._incoming is None:
            if self._progress:
                self._close()
            else:
                # Accepted, first request not here yet: it is on its way (clients
                # write as soon as they connect), so wait a little for it.
                deadline = time.monotonic() + _LINGER
                if self._deadline is None or self._deadline > deadline:
                    self._deadline = deadline

    # -- for handlers that answer on the connection (ASGI) -------------------------

    def addresses(self) -> tuple[object, object]:
        """The ASGI ``client`` and ``server``: ``(host, port)`` pairs, or ``None``."""
        pair = self._addresses
        if pair is None:
            transport = self._transport
            peer = transport.get_extra_info("peername") if transport is not None else None
            here = transport.get_extra_info("sockname") if transport is not None else None
            pair = self._addresses = (_address(peer), _address(here))
        return pair

    @property
    def peer(self) -> str:
        """The client's address as the connection sees it (before any proxy header)."""
        return self._client

    def watch(self, watcher: _Watcher) -> None:
        """Tell ``watcher`` when the client leaves, rather than cancel the handler's task."""
        self._watcher = watcher

    def pause_body(self) -> None:
        """Too much body waits unread: stop reading from the client."""
        self._stop_reading()

    def resume_body(self) -> None:
        """The application took the body it had: read again (unless other limits hold)."""
        if (
            self._read_paused
            and not self._closing
            and (self._upgraded is not None or not self._upgrade)
            and len(self._queue) < self._limits.max_pipeline
            and self._transport is not None
        ):
            self._read_paused = False
            self._transport.resume_reading()

    def waiting_for_body(self, waiting: bool) -> None:
        """Time the client while the application waits for its body; not otherwise."""
        self._set_deadline(self._limits.request_timeout if waiting else None)

    # The head of ``resp``, and whether to close after it (``_head`` itself: no extra call).
    response_head = _head

    def write(self, data: bytes) -> None:
        """Write to the client unless the connection is closing."""
        if not self._closing and self._transport is not None:
            self._transport.write(data)

    async def drain(self) -> None:
        """Wait while the client is not reading; raises ``ConnectionResetError`` once closed.

        A write that failed (the client reset the connection) closes the transport
        at once but tells us only on a later turn of the loop: an application that
        sends without ever waiting must learn it here, or it would spin forever.
        """
        transport = self._transport
        if transport is not None and transport.is_closing():
            raise ConnectionResetError("connection closed")
        await self._drain()

    def call_done(self, req: Request) -> None:
        """A ``ChannelCall`` run as this connection's task ended: on to the next request
        (what ``_answer_later`` does after the answers it awaits)."""
        self._end_call(req)
        self._next_request()

    def _end_call(self, req: Request) -> None:
        """The handler's task for ``req`` is over: drop it and what is left of the body."""
        self._busy = False
        self._task = None
        self._watcher = None
        body = req.stream
        if body is not None:
            body.discard()

    def _next_request(self) -> None:
        if not self._closing and self._upgraded is None:
            if self._queue:
                self._answer_queue()
            else:
                self._after_answers()

    def response_done(self, req: Request, resp: Response, close: bool) -> None:
        """Log a response the handler wrote, and close after it if it said so."""
        count_request(req, resp.status, resp.body_length)  # ``_log``, inlined: once a response
        access = self._server.access
        if access.on and access.enabled:
            access.write(format_line(req, req.client, resp.status, resp.body_length))
        if close:
            self._close()

    async def send_file(self, span: FileSpan, fh: BinaryIO) -> None:
        """Send ``span`` of the open file ``fh`` the way file bodies go (an ASGI
        ``pathsend``); the head went out already. Raises ``OSError`` if it cannot."""
        await self._send_span(span, fh.fileno())

    def response_cut(self, req: Request, resp: Response) -> None:
        """Log a response the handler could not finish (as far as it went), then
        close the connection at once: the client must not take it as complete."""
        self._log(req, resp)
        self._abort()

    def take_over(self, session: Upgraded) -> bytes:
        """Give the connection to ``session`` (a WebSocket): every byte goes to it now.

        Returns the bytes that came after the upgrade request's head.
        """
        self._upgraded = session
        leftover, self._leftover = self._leftover, b""
        self._set_deadline(None)
        if self._read_paused and self._transport is not None and not self._closing:
            self._read_paused = False
            self._transport.resume_reading()
        return leftover

    def close(self) -> None:
        """Close after what was written has gone out."""
        self._close()

    @property
    def closing(self) -> bool:
        """Whether the connection is closing or closed."""
        return self._closing

    # -- logging -----------------------------------------------------------------

    def _log(self, req: Request, resp: Response) -> None:
        count_request(req, resp.status, resp.body_length)
        access = self._server.access
        if access.on and access.enabled:
            access.write(format_line(req, req.client, resp.status, resp.body_length))


def _call_task(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]
) -> asyncio.Task[None]:
    """A task for an application's call, named up front: a task made without a name
    formats one (``Task-N``), about a sixth of what making and running it costs
    (uvloop's ``create_task`` cannot pass a name on). A loop's task factory is kept."""
    if loop.get_task_factory() is None:
        return asyncio.Task(coro, loop=loop, name="tapster.web call")
    return loop.create_task(coro)


def _address(info: object) -> object:
    """An address as ASGI gives it: ``[host, port]`` for IP, else ``None``."""
    if isinstance(info, tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None


#: Where ``os.sendfile`` can write: TCP and unix stream sockets.
def _has_body(req: Request) -> bool:
    """Whether a body follows ``req``'s head (chunked, or a length other than 0)."""
    length = req.get(b"content-length")
    if length is not None:
        return length.strip() not in (b"0", b"")
    return req.get(b"transfer-encoding") is not None


class _Incoming:
    """One request as it arrives, from ``on_message_begin`` to ``on_message_complete``.

    Made afresh for each request, so nothing of one request can leak into the
    next; ``request`` is set once the head is parsed (the body may follow).
    """

    __slots__ = (
        "body",
        "body_len",
        "framed",
        "head_size",
        "headers",
        "request",
        "stream",
        "url",
        "url_len",
    )

    def __init__(self) -> None:
        self.url: list[bytes] = []
        self.url_len = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_size = 0
        #: A Content-Length or Expect header came: check it before the body.
        self.framed = False
        self.body: list[bytes] = []
        self.body_len = 0
        self.request: Request | None = None
        #: ASGI or WSGI: the body streams to the application, not into ``body``.
        self.stream: BodyFeed | None = None


class _RejectError(Exception):
    """Raised from a parser callback to refuse the request being parsed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
