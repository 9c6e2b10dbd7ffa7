"""WSGI (PEP 3333) applications, called in a bounded pool of worker threads.

The event loop never runs application code. ``WsgiHandler.handle`` queues the
request for a worker thread and gives the protocol a ``Pending``; the thread builds
the environ, calls the application and hands back the whole response in one go
when it can -- a list or tuple body (the common case), or a small one of declared
length from any iterable, goes out as one ``Response`` with a ``Content-Length``; a
``wsgi.file_wrapper`` over a regular file as a span sent like static files -- so a
request costs the loop one wake-up at most, shared with every other response
finished meanwhile (``_threadpool``). Other bodies (generators, ``write()``) stream
through ``_wsgi_output`` with backpressure. A request body that is still arriving
streams in through ``wsgi.input`` (``_wsgi_input``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType

from ._accesslog import printable
from ._config import WsgiApp
from ._http import (
    FileSpan,
    Handled,
    Pending,
    Request,
    Response,
    error_response,
    header_block,
)
from ._threadpool import LoopInbox, ThreadPool
from ._wsgi_environ import EnvironBuilder
from ._wsgi_file import FileBody, FileWrapper, file_span
from ._wsgi_input import WsgiInput
from ._wsgi_output import BodyStream, Outbox

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._protocol import HttpConnection

log = logging.getLogger("tapster.web")

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade"})
_NO_BODY_STATUS = frozenset({204, 304})
_FAILED = "The application failed to handle this request."
#: Bodies up to this size known whole go out as one piece (and gathered from an
#: iterable that declared its length); larger ones part by part.
_WHOLE_LIMIT = 256 * 1024

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class WsgiHandler:
    """Calls one WSGI application for requests, at most ``threads`` at a time."""

    def __init__(self, app: WsgiApp, threads: int = 10) -> None:
        self._app = app
        self._pool = ThreadPool(threads, "tapster-wsgi")
        self._environ = EnvironBuilder(FileWrapper)
        self._inbox: LoopInbox | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_soon = False
        self._closed = False

    def _loop_inbox(self) -> LoopInbox:
        inbox = self._inbox
        if inbox is None:
            loop = asyncio.get_running_loop()
            self._loop = loop
            inbox = self._inbox = LoopInbox(loop)
        return inbox

    def handle(self, req: Request) -> Handled:
        """A ``Pending`` of the response the application gives for ``req``."""
        if self._inbox is None:
            self._loop_inbox()
        pending = Pending()
        if not self._pool.submit(self._run, (req, pending), wake=False):
            return error_response(503, "The server is stopping.", close=True)
        if not self._wake_soon:
            # Wake a thread once the loop has read every request that came together,
            # not once per request: a thread woken at once would take the GIL from the
            # loop between two reads, and sleep again after one call.
            self._wake_soon = True
            loop = self._loop
            assert loop is not None
            loop.call_soon(self._wake)
        return pending

    def _wake(self) -> None:
        self._wake_soon = False
        self._pool.wake()

    def input_for(self, conn: HttpConnection) -> WsgiInput:
        """A ``wsgi.input`` for a body that will arrive on ``conn`` after its head."""
        return WsgiInput(conn, self._loop_inbox())

    def close(self) -> None:
        """The server has stopped: drop calls not started, abandon those running."""
        self._closed = True
        self._pool.close()

    # -- in a worker thread ---------------------------------------------------------

    def _run(self, job: tuple[Request, Pending]) -> None:
        req, pending = job
        if pending.cancelled:
            return  # the client left while the call waited for a thread
        call = _Call(self, req, pending)
        result: Iterable[bytes] | None = None
        keep_open = False
        try:
            body = req.stream
            environ = self._environ.build(req, body if isinstance(body, WsgiInput) else None)
            result = self._app(environ, call.start_response)
            keep_open = call.finish(result)
        except BaseException as exc:
            if not self._closed:  # else abandoned: the server and its log are gone
                if isinstance(exc, _BadHeaderError):
                    log.error("The WSGI application sent a header with a line break")
                else:
                    log.exception(
                        "The WSGI application failed on %s %s", req.method, printable(req.target)
                    )
            call.fail()
        finally:
            if result is not None and not keep_open:
                self.close_iterable(result)

    def close_iterable(self, result: object) -> None:
        """PEP 3333: call the body's ``close()`` when it has one (in a worker thread)."""
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                if not self._closed:
                    log.exception("The WSGI application's close() failed")

    def deliver(self, pending: Pending, resp: Response) -> None:
        """From a worker thread: hand ``resp`` to the connection, on the loop."""
        inbox = self._inbox
        assert inbox is not None
        inbox.post(self._deliver, (pending, resp))

    def _deliver(self, item: tuple[Pending, Response]) -> None:
        pending, resp = item
        if not pending.cancelled:
            pending.deliver(resp)
            return
        # The client left meanwhile: release what the body holds (a worker, a file).
        release = getattr(resp.body, "close", None)
        if release is not None:
            release()

    def release_later(self, result: object) -> Callable[[], None]:
        """What closes ``result`` in a worker thread once its file has been sent."""

        def release() -> None:
            if not self._pool.submit(self.close_iterable, result):
                self.close_iterable(result)  # the pool is closed: the server is stopping

        return release

    def outbox(self) -> Outbox:
        """A new stream from a worker thread to the loop."""
        inbox = self._inbox
        assert inbox is not None
        return Outbox(inbox)


class _BadHeaderError(ValueError):
    pass


class _Call:
    """One application call's ``start_response``, ``write`` and way back to the loop."""

    __slots__ = (
        "declared",
        "delivered",
        "handler",
        "headers",
        "outbox",
        "pending",
        "req",
        "status",
    )

    def __init__(self, handler: WsgiHandler, req: Request, pending: Pending) -> None:
        self.handler = handler
        self.req = req
        self.pending = pending
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.declared: int | None = None
        #: Set once the head went to the loop with a streaming body (``write``, a generator).
        self.outbox: Outbox | None = None
        self.delivered = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            if self.delivered:
                raise exc_info[1].with_traceback(exc_info[2])
        elif self.status is not None:
            raise RuntimeError("start_response was called twice")
        code = int(str(status).split(" ", 1)[0])
        if not 100 <= code <= 999:
            raise ValueError(f"bad status {status!r}")
        pairs: list[tuple[str, str]] = []
        declared: int | None = None
        for raw_name, raw_value in headers:
            name, value = str(raw_name), str(raw_value)
            lname = name.lower()
            if lname in _HOP_BY_HOP:
                continue
            if lname == "content-length":
                try:
                    declared = int(value)
                except ValueError:
                    continue
            pairs.append((name, value))
        self.status, self.headers, self.declared = code, pairs, declared
        return self.write

    def _block(self, extra: tuple[str, str] | None = None) -> bytes:
        if self.status is None:
            raise RuntimeError("the application did not call start_response")
        try:
            return header_block(self.headers if extra is None else [*self.headers, extra])
        except ValueError:
            raise _BadHeaderError from None

    def _send(self, resp: Response) -> None:
        self.delivered = True
        self.handler.deliver(self.pending, resp)

    def _open_stream(self) -> Outbox:
        """Send the head now; the body follows part by part."""
        block = self._block()
        assert self.status is not None
        outbox = self.outbox = self.handler.outbox()
        self._send(Response(self.status, block, BodyStream(outbox, self.declared), 0))
        return outbox

    def write(self, data: bytes) -> None:
        """PEP 3333's ``write()``: the head goes out now, and ``data`` after it."""
        outbox = self.outbox
        if outbox is None:
            outbox = self._open_stream()
        if data:
            outbox.put(bytes(data))

    def finish(self, result: Iterable[bytes]) -> bool:
        """Send the response ``result`` makes; ``True`` when the body's file was handed
        to the loop (closed once sent, not now)."""
        if self.outbox is None:
            kind = type(result)
            if kind is list or kind is tuple:
                self._whole(result)  # type: ignore[arg-type]
                return False
            if kind is FileWrapper and self.status is not None:
                span = file_span(result, self.declared)  # type: ignore[arg-type]
                if span is not None:
                    extra = None
                    if self.declared is None:
                        extra = ("Content-Length", str(span.count))
                    files = FileBody(span, self.handler.release_later(result))
                    self._send(Response(self.status, self._block(extra), files, span.count))
                    return True
        parts = iter(result)
        declared = self.declared
        if self.outbox is None and declared is not None and declared <= _WHOLE_LIMIT:
            # A small body of known length from an iterable (a framework's response
            # object): gather it here, so that it too goes out whole.
            gathered: list[bytes] = []
            size = 0
            for part in parts:
                if part:
                    gathered.append(bytes(part))
                    size += len(part)
                if size >= declared or self.outbox is not None:
                    break  # all it declared; or it called write(), and streams
            opened = self._opened()  # write() may have opened a stream meanwhile
            if opened is None:
                self._whole(gathered)
                return False
            for part in gathered:
                opened.put(part)
        for part in parts:
            if part:
                outbox = self.outbox
                if outbox is None:
                    outbox = self._open_stream()
                if not outbox.put(bytes(part)):
                    break  # the client left
        if self.outbox is None:
            self._complete(b"")
        else:
            self.outbox.end()
        return False

    def _opened(self) -> Outbox | None:
        return self.outbox

    def _whole(self, parts: Sequence[bytes]) -> None:
        """A body known whole (a list, a tuple, or gathered): one response, one wake-up."""
        if len(parts) == 1 and type(parts[0]) is bytes:
            self._complete(parts[0])
            return
        chunks = [part if type(part) is bytes else bytes(part) for part in parts]
        total = sum(map(len, chunks))
        status = self.status
        if total <= _WHOLE_LIMIT or status is None or self.declared not in (None, total):
            self._complete(b"".join(chunks))
            return
        # Large: its parts go out one by one (each waiting for the client), uncopied.
        framed = self.declared is None and status >= 200 and status not in _NO_BODY_STATUS
        block = self._block(("Content-Length", str(total)) if framed else None)
        body: list[bytes | FileSpan] = [chunk for chunk in chunks if chunk]
        self._send(Response(status, block, body, total))

    def _complete(self, body: bytes) -> None:
        """The whole body is known: one response, framed by its length."""
        status = self.status
        if status is None:
            raise RuntimeError("the application did not call start_response")
        declared = self.declared
        if declared is None:
            framed = status >= 200 and status not in _NO_BODY_STATUS
            if framed and (body or self.req.method != "HEAD"):
                block = self._block(("Content-Length", str(len(body))))
            else:
                block = self._block()
            self._send(Response(status, block, body, len(body)))
        elif declared <= len(body) or self.req.method == "HEAD":
            self._send(Response(status, self._block(), body[:declared], declared))
        else:
            outbox = self._open_stream()  # short of what it declared: the stream says so
            outbox.put(body)
            outbox.end()

    def fail(self) -> None:
        """The application raised: a 500 if nothing went out yet, else cut the response."""
        if self.outbox is not None:
            self.outbox.end(failed=True)
        elif not self.delivered:
            self._send(error_response(500, _FAILED))
