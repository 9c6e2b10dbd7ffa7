"""WSGI (PEP 3333) applications run in a bounded pool of worker threads.

The event loop never runs application code. A request's body is read in full
(bounded by ``--max-body``) before the application is called; the response
streams back through a small queue, so an application that produces faster
than the client reads is held back instead of filling memory.

The workers are daemon threads: a call still running when the server has
stopped (the shutdown budget spent, its client's connection closed) is
abandoned, and neither holds the process at exit nor reports anything.
"""

from __future__ import annotations

import asyncio
import io
import logging
import queue
import sys
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any
from urllib.parse import unquote_to_bytes

from ._config import WsgiApp
from ._http import Request, Response, error_response, header_block

log = logging.getLogger("tapster.web")

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade"})
_END = object()
_QUEUE_SIZE = 8

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class WsgiHandler:
    """Calls one WSGI application for requests, at most ``threads`` at a time."""

    def __init__(self, app: WsgiApp, threads: int = 10) -> None:
        self._app = app
        self._pool = _DaemonPool(threads, "tapster-wsgi")
        self._closed = False

    def handle(self, req: Request) -> asyncio.Future[Response] | Any:
        """An awaitable of the response the application gives for ``req``."""
        return self._call(req)

    async def _call(self, req: Request) -> Response:
        loop = asyncio.get_running_loop()
        channel = _Channel(loop)
        environ = build_environ(req)
        self._pool.submit(self._run, environ, channel)
        try:
            status, headers = await channel.head
        except _AppFailedError:
            return error_response(500, "The application failed to handle this request.")
        except asyncio.CancelledError:
            channel.close()  # the client left: let the worker thread stop
            raise
        pairs: list[tuple[str, str]] = []
        declared: int | None = None
        for name, value in headers:
            lname = name.lower()
            if lname in _HOP_BY_HOP:
                continue
            if lname == "content-length":
                try:
                    declared = int(value)
                except ValueError:
                    continue
            pairs.append((name, value))
        try:
            block = header_block(pairs)
        except ValueError:
            channel.close()
            log.error("The WSGI application sent a header with a line break")
            return error_response(500, "The application failed to handle this request.")
        return Response(status, block, _Stream(channel, declared), declared or 0)

    def _run(self, environ: dict[str, Any], channel: _Channel) -> None:
        """Worker thread: call the application and feed its output to the channel."""
        state: dict[str, Any] = {"head": None, "sent": False}

        def send_head() -> None:
            if not state["sent"]:
                if state["head"] is None:
                    raise RuntimeError("the application did not call start_response")
                state["sent"] = True
                channel.send_head(*state["head"])

        def write(data: bytes) -> None:
            send_head()
            channel.put(bytes(data))

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], None]:
            if exc_info is not None:
                if state["sent"]:
                    raise exc_info[1].with_traceback(exc_info[2])
            elif state["head"] is not None:
                raise RuntimeError("start_response was called twice")
            code = int(str(status).split(" ", 1)[0])
            if not 100 <= code <= 999:
                raise ValueError(f"bad status {status!r}")
            state["head"] = (code, [(str(n), str(v)) for n, v in headers])
            return write

        if channel.closed:
            return  # the client left while the call waited for a thread
        result: Iterable[bytes] | None = None
        try:
            result = self._app(environ, start_response)
            for chunk in result:
                if chunk:
                    send_head()
                    if not channel.put(bytes(chunk)):
                        break
            send_head()
            channel.finish()
        except BaseException as exc:
            if not self._closed:  # else abandoned: the server and its log are gone
                log.exception("The WSGI application failed")
            channel.fail(exc)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    if not self._closed:
                        log.exception("The WSGI application's close() failed")

    def close(self) -> None:
        """The server has stopped: drop calls not started, abandon those running."""
        self._closed = True
        self._pool.close()


class _DaemonPool:
    """Runs calls in at most ``size`` daemon threads, started as calls arrive.

    Not a ``ThreadPoolExecutor``: the interpreter joins its threads at exit, so
    one application call that outlives the shutdown budget would keep the
    process alive until it returned. Calls here have no result to wait for
    (they answer through their channel) and are simply dropped after ``close``.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._calls: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._threads = 0
        self._closed = False

    def submit(self, func: Callable[..., None], *args: Any) -> None:
        """Queue ``func(*args)``; start a thread for it unless one is idle or all run."""
        with self._lock:
            if self._closed:
                return
            self._calls.put((func, args))
            if self._idle.acquire(blocking=False) or self._threads >= self._size:
                return
            self._threads += 1
            name = f"{self._name}-{self._threads}"
            threading.Thread(target=self._work, name=name, daemon=True).start()

    def _work(self) -> None:
        while (call := self._calls.get()) is not None and not self._closed:
            func, args = call
            func(*args)
            del call, func, args  # nothing of the last request is kept while idle
            self._idle.release()

    def close(self) -> None:
        """Drop queued calls and let idle threads end; running calls are not waited for."""
        with self._lock:
            self._closed = True
            for _ in range(self._threads):
                self._calls.put(None)


class _AppFailedError(Exception):
    pass


class _Channel:
    """Carries a response from a worker thread to the event loop, with backpressure."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.head: asyncio.Future[tuple[int, list[tuple[str, str]]]] = loop.create_future()
        self._queue: asyncio.Queue[object] = asyncio.Queue(_QUEUE_SIZE)
        self._closed = threading.Event()

    # Thread side.

    @property
    def closed(self) -> bool:
        """True once the loop side gave up on this response (the client left)."""
        return self._closed.is_set()

    def send_head(self, status: int, headers: list[tuple[str, str]]) -> None:
        self._to_loop(_set_result, self.head, (status, headers))

    def _to_loop(self, func: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(func, *args)
        except RuntimeError:  # the loop is closed: the server stopped, nobody waits
            self._closed.set()

    def put(self, item: object) -> bool:
        """Queue ``item`` for the loop; ``False`` once the client is gone."""
        if self._closed.is_set():
            return False
        putting = self._queue.put(item)
        try:
            fut = asyncio.run_coroutine_threadsafe(putting, self._loop)
        except RuntimeError:  # the loop is closed
            putting.close()
            self._closed.set()
            return False
        try:
            fut.result()
        except (RuntimeError, asyncio.CancelledError, Exception):
            return False
        return not self._closed.is_set()

    def finish(self) -> None:
        self.put(_END)

    def fail(self, exc: BaseException) -> None:
        if not self.head.done():
            self._to_loop(_set_exception, self.head, _AppFailedError())
        else:
            self.put(_AppFailedError())

    # Loop side.

    def close(self) -> None:
        self._closed.set()
        while not self._queue.empty():
            self._queue.get_nowait()

    async def get(self) -> object:
        return await self._queue.get()


class _Stream:
    """The response body as the protocol reads it; ``aclose`` releases the worker.

    Enforces the declared ``Content-Length``: extra bytes are dropped, and a
    short body aborts the connection (the client would otherwise wait forever).
    """

    def __init__(self, channel: _Channel, declared: int | None) -> None:
        self._channel = channel
        self._declared = declared
        self._sent = 0
        self._done = False

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> bytes:
        while not self._done:
            item = await self._channel.get()
            if item is _END:
                self._done = True
                if self._declared is not None and self._sent < self._declared:
                    raise ConnectionAbortedError("the WSGI application sent less than it declared")
                break
            if isinstance(item, BaseException):
                self._done = True
                raise ConnectionAbortedError("the WSGI application failed mid-response")
            assert isinstance(item, bytes)
            if self._declared is not None and self._sent + len(item) > self._declared:
                item = item[: self._declared - self._sent]
            self._sent += len(item)
            if item:
                return item
        self._channel.close()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._done = True
        self._channel.close()


def _set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


def build_environ(req: Request, url_scheme: str = "http") -> dict[str, Any]:
    """The PEP 3333 environ for ``req`` (text values are latin-1 "bytes as str")."""
    host = (req.get(b"host") or b"localhost").decode("latin-1")
    name, _, port = host.rpartition(":") if host.rfind(":") > host.rfind("]") else (host, "", "")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": req.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(req.path).decode("latin-1"),
        "QUERY_STRING": req.query.decode("latin-1"),
        "SERVER_NAME": name or "localhost",
        "SERVER_PORT": port or ("443" if url_scheme == "https" else "80"),
        "SERVER_PROTOCOL": f"HTTP/{req.version}",
        "REMOTE_ADDR": req.client,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url_scheme,
        "wsgi.input": io.BytesIO(req.body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if req.remote_user is not None:
        environ["REMOTE_USER"] = req.remote_user
    for key, value in req.headers:
        text = value.decode("latin-1")
        if key == b"content-type":
            environ["CONTENT_TYPE"] = text
            continue
        if key == b"content-length":
            environ["CONTENT_LENGTH"] = text
            continue
        if b"_" in key:
            continue  # could pose as a dashed header (X_User vs X-User)
        wkey = "HTTP_" + key.decode("latin-1").upper().replace("-", "_")
        old = environ.get(wkey)
        environ[wkey] = text if old is None else old + "," + text
    if req.body and "CONTENT_LENGTH" not in environ:
        environ["CONTENT_LENGTH"] = str(len(req.body))
    return environ
