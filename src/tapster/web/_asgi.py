"""ASGI 3 applications over HTTP/1.1: the ``http`` scope (spec 2.4), on the event loop.

``AsgiHandler.handle`` gives the protocol an awaitable that runs the application
for one request and writes its answer on the connection itself (``Request.channel``):
the head as soon as the first body part is known (a one-part body gets a
``Content-Length``, more parts go chunked), each part as it comes, and ``send``
waits while the client does not read. The request body streams in (``_body``);
``receive`` gives ``http.disconnect`` once the response is complete or the client
has gone, and ``send`` raises ``ClientDisconnectedError`` (an ``OSError``) after
that. Trailers are not offered (no ``http.response.trailers`` extension); the
``http.response.pathsend`` extension is: the file at the path the application names
goes out the way ``--path`` sends files (``HttpConnection.send_file``).
WebSocket upgrades go to ``_websocket``, lifespan events to ``_lifespan``.

The hot path (a hello-world request: about 98,000 machine instructions, 122,900
before, uvicorn 111,500; docs/benchmarks.md) is kept lean in a few measured ways,
each with its comment: the call is the connection's task itself (``ChannelCall``),
made with a name (``_protocol._call_task``); the scope is a copy of the
connection's shared part; header blocks are kept by their pairs (``_BLOCKS``); a
body part is written by a plain function; a request without a body gets no stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import stat
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, cast
from urllib.parse import unquote_to_bytes

from ._accesslog import printable
from ._http import ChannelCall, FileSpan, Handled, Request, Response, error_response

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

    from ._body import RequestBody
    from ._protocol import HttpConnection

log = logging.getLogger("tapster.web")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The ``asgi`` entry of every scope.
ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
_NO_BODY_STATUS = frozenset({204, 304})
#: Response headers the server sets itself: framing and the connection's fate.
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection", b"keep-alive"})
_CHUNKED = b"Transfer-Encoding: chunked\r\n"
_FAILED = "The application failed to handle this request."


class ClientDisconnectedError(ConnectionResetError):
    """Raised by ``send`` once the client has gone (ASGI spec 2.4: an ``OSError``)."""


class AsgiHandler:
    """Runs one ASGI application for the requests the files do not answer."""

    def __init__(
        self,
        app: AsgiApp,
        *,
        root_path: str = "",
        limit_concurrency: int | None = None,
        ws_max_size: int = 16 * 1024 * 1024,
    ) -> None:
        self.app = app
        self.root_path = root_path.rstrip("/")
        self._raw_root = self.root_path.encode("utf-8")
        self.limit = limit_concurrency
        self.ws_max_size = ws_max_size
        #: The lifespan state: each scope gets a shallow copy (``scope["state"]``).
        self.state: dict[str, Any] = {}
        #: Requests and WebSocket sessions in progress (``--limit-concurrency``).
        self.active = 0
        self.tasks: set[asyncio.Task[Any]] = set()

    def handle(self, req: Request) -> Handled:
        """An awaitable that answers ``req`` on its connection."""
        limit = self.limit
        if limit is not None and self.active >= limit:
            return error_response(503, "The server is too busy; try again soon.", close=True)
        if req.scheme[0] == "w":
            from ._websocket import WebSocketSession

            return WebSocketSession(self, req).run()
        return _HttpCycle(self, req)

    def scope(self, req: Request, kind: str) -> dict[str, Any]:
        """The scope ``req`` gives an application (``kind``: ``http`` or ``websocket``).

        A copy of the connection's own part (``_scope_base``), then the request's.
        """
        conn = req.channel
        assert conn is not None
        base = conn.scope_base
        if base is None:
            base = conn.scope_base = self._scope_base(conn)
        scope = base[0].copy()
        if req.client != base[1]:
            scope["client"] = (req.client, 0)  # a trusted proxy named the client (--proxy-headers)
        raw = req.path
        path = raw.decode("utf-8", "replace")
        if "%" in path:  # (in the text: ``in`` on bytes first tries an int, then formats an error)
            path = unquote_to_bytes(raw).decode("utf-8", "replace")
        root = self.root_path
        if root:
            path = root + path
            scope["raw_path"] = self._raw_root + raw
        else:
            scope["raw_path"] = raw
        scope["path"] = path
        scope["http_version"] = req.version
        scope["scheme"] = req.scheme
        scope["query_string"] = req.query
        scope["headers"] = req.headers
        scope["state"] = self.state.copy()
        if kind == "http":
            scope["method"] = req.method
            scope["extensions"] = {"http.response.pathsend": {}}
        else:
            scope["type"] = kind
            scope["subprotocols"] = offered_subprotocols(req)
        return scope

    def _scope_base(self, conn: HttpConnection) -> tuple[dict[str, Any], str]:
        """What every scope on ``conn`` shares, and the peer address it was made for."""
        client, server = conn.addresses()
        base = {
            "type": "http",
            "asgi": ASGI_VERSION,
            "root_path": self.root_path,
            "client": client,
            "server": server,
        }
        return base, conn.peer

    def spawned(self, task: asyncio.Task[Any]) -> None:
        """Keep ``task`` (a WebSocket's application call) until it ends."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def cancel_all(self) -> None:
        """The shutdown budget ran out: cancel calls still running."""
        for task in list(self.tasks):
            task.cancel()


class _HttpCycle(ChannelCall):
    """One request's trip through the application, answered on its connection."""

    __slots__ = (
        "_conn",
        "_declared",
        "_done",
        "_gone",
        "_handler",
        "_head_out",
        "_lost",
        "_mode",
        "_received",
        "_req",
        "_resp",
        "_sent",
        "_started",
    )

    def __init__(self, handler: AsgiHandler, req: Request) -> None:
        self._handler = handler
        self._req = req
        conn = req.channel
        assert conn is not None
        self._conn: HttpConnection = conn
        self._resp: Response | None = None
        self._started = False
        self._head_out = False
        self._done = False
        self._lost = False
        self._received = False
        self._gone: asyncio.Future[None] | None = None
        self._declared: int | None = None
        self._sent = 0
        #: How the body goes out: 0 length-framed, 1 chunked, 2 until close.
        self._mode = 0

    async def run(self, own_turn: bool = False) -> None:
        handler = self._handler
        req = self._req
        conn = self._conn
        handler.active += 1
        if not own_turn:
            conn.watch(self)
        try:
            await handler.app(handler.scope(req, "http"), self.receive, self.send)
        except ClientDisconnectedError:
            pass  # the client left and the application let send() tell it so
        except Exception:
            log.exception("The ASGI application failed on %s %s", req.method, printable(req.target))
            if not self._done:
                self._cut()
        except asyncio.CancelledError:  # the connection is being cut off (``abort``)
            handler.active -= 1
            if own_turn:
                conn.cut()
                conn.call_done(req)
            raise
        except BaseException:  # the loop is going away (the coroutine closed), or exiting
            handler.active -= 1
            raise
        handler.active -= 1
        if not self._done:
            self._unfinished()
        if own_turn:
            conn.call_done(req)

    def _unfinished(self) -> None:
        """The application returned without finishing its response."""
        req = self._req
        if self._lost:
            if self._head_out:
                self._cut()  # the client left mid-response: counted as far as it went
            return
        if self._conn.closing:
            return
        if not self._started:
            log.error(
                "The ASGI application returned without answering %s %s",
                req.method,
                printable(req.target),
            )
            self._fail()
        else:
            log.error(
                "The ASGI application returned before finishing its response to %s %s",
                req.method,
                printable(req.target),
            )
            self._cut()

    def _fail(self) -> None:
        """Answer 500 (nothing went out yet)."""
        self._started = self._done = True
        resp = error_response(500, _FAILED)
        req = self._req
        head, close = self._conn.response_head(req, resp)
        body = resp.body if req.method != "HEAD" else b""
        self._conn.write(head + body)  # type: ignore[operator]
        self._conn.response_done(req, resp, close)

    def _cut(self) -> None:
        """End a response the application did not finish: a 500 while nothing
        went out, else cut the connection (the client must not take a short body
        as whole). Counted and logged once either way, as far as it went."""
        if not self._head_out:
            self._fail()
            return
        self._done = True
        resp = self._resp
        assert resp is not None
        resp.body_length = self._sent
        self._conn.response_cut(self._req, resp)

    def ended(self) -> None:
        """The client will send no more (it may still read): ``receive`` says
        ``http.disconnect``, while ``send`` still works."""
        stream = self._req.stream
        if stream is not None and not stream.done:
            stream.lost()
        gone = self._gone
        if gone is None:
            gone = self._gone = asyncio.get_running_loop().create_future()
        if not gone.done():
            gone.set_result(None)

    def lost(self) -> None:
        """The client went away (called by the connection)."""
        self._lost = True
        stream = self._req.stream
        if stream is not None:
            stream.lost()
        gone = self._gone
        if gone is not None and not gone.done():
            gone.set_result(None)

    async def receive(self) -> Message:
        if not self._received:
            req = self._req
            stream = cast("RequestBody | None", req.stream)  # ASGI's own kind
            if stream is None:
                self._received = True
                return {"type": "http.request", "body": req.body, "more_body": False}
            if not self._lost:
                got = await stream.read()
                if got is not None:
                    data, more = got
                    self._received = not more
                    return {"type": "http.request", "body": data, "more_body": more}
            self._received = True
        if not self._done and not self._lost:
            # Nothing more to read: wait for the response to end or the client to go.
            gone = self._gone
            if gone is None:
                gone = self._gone = asyncio.get_running_loop().create_future()
            await gone
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        # Every response passes here twice: the start inline, one call for a body
        # part, and the connection's ``_closing`` read as a field, not a property.
        kind = message["type"]
        conn = self._conn
        if self._lost or conn._closing:
            raise ClientDisconnectedError("the client has gone")
        if kind == "http.response.body":
            resp = self._resp
            if resp is None:
                raise RuntimeError("http.response.body sent before http.response.start")
            if self._done:
                raise RuntimeError("http.response.body sent after the response ended")
            if self._body(resp, message.get("body", b""), message.get("more_body", False)):
                try:
                    await conn.drain()
                except ConnectionResetError:
                    raise ClientDisconnectedError("the client has gone") from None
        elif kind == "http.response.start":
            if self._started:
                raise RuntimeError("http.response.start sent twice")
            status = message["status"]
            if type(status) is not int or not 100 <= status <= 999:
                raise TypeError(f"http.response.start: bad status {status!r}")
            pairs = tuple(message.get("headers", ()))
            try:
                found = _BLOCKS.get(pairs)
            except TypeError:  # unhashable pairs (lists, bytearrays)
                found = None
            if found is None:
                found = _head_block(pairs)
            block, self._declared, close = found
            self._resp = Response(status, block, b"", 0, close)  # positional: no keyword dict
            self._started = True
        elif kind == "http.response.pathsend":
            if self._resp is None:
                raise RuntimeError("http.response.pathsend sent before http.response.start")
            if self._head_out or self._done:
                raise RuntimeError("http.response.pathsend sent after the response's body began")
            await self._pathsend(message.get("path"))
        elif kind == "http.response.trailers":
            return  # never offered: nothing to send
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on an HTTP connection")

    def _body(self, resp: Response, body: bytes, more: bool) -> bool:
        """Write one part of the body (the head with the first); whether more follows,
        in which case ``send`` waits while the client does not read. A plain function,
        not a coroutine: a one-part body, the usual, waits for nothing."""
        conn = self._conn
        req = self._req
        declared = self._declared
        silent = req.method == "HEAD" or resp.status in _NO_BODY_STATUS
        if declared is not None and self._sent + len(body) > declared:
            body = body[: declared - self._sent]
        if not self._head_out:
            # The head goes out with the first part, so its framing is known.
            self._head_out = True
            extra = b""
            if declared is None and not silent:
                if not more:
                    extra = b"Content-Length: %d\r\n" % len(body)
                elif req.version == "1.0":
                    resp.close = True
                    self._mode = 2
                else:
                    extra = _CHUNKED
                    self._mode = 1
            head, close = conn.response_head(req, resp, extra)
            resp.close = close
            if silent or not body:
                conn.write(head)
            elif self._mode == 1:
                conn.write(b"%b%x\r\n%b\r\n" % (head, len(body), body))
            else:
                conn.write(head + body)
        elif body and not silent:
            if self._mode == 1:
                conn.write(b"%x\r\n%b\r\n" % (len(body), body))
            else:
                conn.write(body)
        if not silent:
            self._sent += len(body)
        if more:
            return True
        self._done = True
        if self._mode == 1:
            conn.write(b"0\r\n\r\n")
        if declared is not None and self._sent < declared and not silent:
            log.error(
                "The ASGI application sent %d of the %d bytes it declared for %s %s",
                self._sent,
                declared,
                req.method,
                printable(req.target),
            )
            self._cut()
        else:
            self._complete(resp)
        return False

    def _complete(self, resp: Response) -> None:
        """The response went out whole: log it, tell ``receive``, close if it said so."""
        resp.body_length = self._sent
        gone = self._gone
        if gone is not None and not gone.done():
            gone.set_result(None)
        self._conn.response_done(self._req, resp, resp.close)

    async def _pathsend(self, path: object) -> None:
        """The whole body from the file at ``path``, sent as files are.

        The application gives the headers (a missing ``Content-Length`` is added
        from the file's size). The file is opened before the head goes out, so a
        path that cannot be sent raises here and the client gets a 500; once the
        head is out, a failure cuts the connection (and ``send`` raises).
        """
        if type(path) is not str:
            raise TypeError(f"http.response.pathsend: the path must be a string, not {path!r}")
        resp = self._resp
        assert resp is not None
        req = self._req
        if req.method == "HEAD" or resp.status in _NO_BODY_STATUS:
            self._body(resp, b"", False)  # the head alone, as with a body
            return
        fh = _open_regular(path)
        try:
            size = os.fstat(fh.fileno()).st_size
            declared = self._declared
            if declared is not None and declared > size:
                raise ValueError(
                    f"http.response.pathsend: the response declares {declared} bytes, "
                    f"but {path} has {size}"
                )
            count = size if declared is None else declared
            conn = self._conn
            self._head_out = True
            extra = b"" if declared is not None else b"Content-Length: %d\r\n" % size
            head, close = conn.response_head(req, resp, extra)
            resp.close = close
            conn.write(head)
            try:
                await conn.send_file(FileSpan(path, 0, count), fh)
            except ConnectionAbortedError as exc:  # the file shrank while it went out
                log.error(
                    "Cutting the response to %s %s: %s: %s",
                    req.method,
                    printable(req.target),
                    path,
                    exc,
                )
                self._cut()
                raise ClientDisconnectedError("the response was cut") from None
            except OSError:
                self._cut()
                raise ClientDisconnectedError("the client has gone") from None
        finally:
            fh.close()
        self._sent = count
        self._done = True
        self._complete(resp)


#: Header blocks already checked and encoded, by the application's header pairs:
#: an application's responses mostly repeat a few header lists (the same type and
#: length), and one dict lookup is much cheaper than the loop of ``_head_block``.
#: Cleared when full, so varied headers (cookies, ETags) cost a miss, never memory.
_BLOCKS: dict[tuple[Any, ...], tuple[bytes, int | None, bool]] = {}
_BLOCKS_MAX = 256


def _head_block(pairs: tuple[Any, ...]) -> tuple[bytes, int | None, bool]:
    """An ``http.response.start``'s headers as lines, less the framing ones the
    server writes itself; the declared ``Content-Length``; whether it said
    ``Connection: close``; kept in ``_BLOCKS``. Raises ``ValueError`` for a line
    break in a header."""
    parts: list[bytes] = []
    close = False
    declared = None
    for name, value in pairs:
        lname = name.lower()
        if lname in _FRAMING:
            if lname == b"content-length":
                declared = int(value)
            elif lname == b"connection":
                close = b"close" in value.lower()
                continue
            else:
                continue
        parts += (name, b": ", value, b"\r\n")
    block = b"".join(parts)
    lines = len(parts) // 4
    if block.count(b"\n") != lines or block.count(b"\r") != lines:
        raise ValueError("http.response.start: a header contains a line break")
    found = block, declared, close
    if len(_BLOCKS) >= _BLOCKS_MAX:
        _BLOCKS.clear()
    with contextlib.suppress(TypeError):  # unhashable pairs: encoded every time
        _BLOCKS[pairs] = found
    return found


def _open_regular(path: str) -> BinaryIO:
    """``path`` opened for reading: a regular file only, and never blocking on a
    pipe or a device (``O_NONBLOCK`` while opening and checking)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            code = errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL
            text = os.strerror(code) if stat.S_ISDIR(mode) else "Not a regular file"
            raise OSError(code, text, path)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def offered_subprotocols(req: Request) -> list[str]:
    """The subprotocols a WebSocket opening request offers (``Sec-WebSocket-Protocol``)."""
    offered = (req.get(b"sec-websocket-protocol") or b"").split(b",")
    return [p.strip().decode("latin-1") for p in offered if p.strip()]
