"""Response bodies out: bytes, streams, and files (``os.sendfile`` on plain connections).

``ResponseWriter`` is the half of ``HttpConnection`` that writes what a handler
answered, once the connection (``_protocol``) has parsed the request and chosen
the answer; the connection class inherits it. The file part is the one
hand-tuned place for files: a file at least ``SENDFILE_FROM`` big (``_static``)
comes as one ``FileSpan``; on a plain connection its head goes through the
transport and its bytes with ``os.sendfile`` on the socket, from the kernel's
page cache, inline while the client keeps up (no task, no copy through Python).
That is safe only while the transport holds nothing unsent, so every sendfile
waits for its buffer to empty first. When the socket is full, a task waits for
it on a duplicate descriptor: the loops refuse ``add_writer`` on a descriptor
their transport owns.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator

from ._http import FileSpan, Request, Response, error_response

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._http import Handled

_CHUNKED = b"Transfer-Encoding: chunked\r\n"
_NO_BODY_STATUS = frozenset({204, 304})
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC
_FALLBACK_CHUNK = 1024 * 1024
_JOIN_LIMIT = 16 * 1024


class ResponseWriter:
    """Writing responses for ``HttpConnection`` (which defines what is declared here)."""

    _transport: asyncio.Transport | None
    _closing: bool
    _busy: bool
    _sock_fd: int
    _task: asyncio.Task[None] | None
    _drain_waiter: asyncio.Future[None] | None
    _sendfile_since: float | None

    if TYPE_CHECKING:

        def _head(self, req: Request, resp: Response, extra: bytes = b"") -> tuple[bytes, bool]: ...
        def _emit(self, out: list[bytes], req: Request, resp: Response) -> None: ...
        def _log(self, req: Request, resp: Response) -> None: ...
        def _close(self) -> None: ...
        def _abort(self) -> None: ...
        def _set_deadline(self, seconds: float | None) -> None: ...
        async def _drain(self) -> None: ...
        async def _answer_later(
            self, req: Request, result: Handled, resume: Resume | None = None
        ) -> None: ...

    async def _send(self, req: Request, resp: Response) -> None:
        transport = self._transport
        if transport is None or self._closing:
            return
        body = resp.body
        if type(body) is bytes:
            out: list[bytes] = []
            self._emit(out, req, resp)
            if out:
                flush(transport, out)
            return
        if isinstance(body, list):
            # Open the files before the status line goes out: a file that cannot
            # be read still gets a proper error instead of a cut connection.
            files: dict[str, int] = {}
            try:
                if req.method != "HEAD":
                    for part in body:
                        # A span with its file already open (wsgi.file_wrapper) needs none.
                        if (
                            isinstance(part, FileSpan)
                            and part.file is None
                            and part.path not in files
                        ):
                            files[part.path] = os.open(part.path, _OPEN_FLAGS)
            except OSError:
                for fd in files.values():
                    os.close(fd)
                self._not_found(req)
                return
            try:
                head, close = self._head(req, resp)
                transport.write(head)
                for part in body if req.method != "HEAD" else ():
                    if isinstance(part, FileSpan):
                        fd = files[part.path] if part.file is None else part.file.fileno()
                        await self._send_span(part, fd)
                    else:
                        transport.write(part)
                        await self._drain()
            finally:
                for fd in files.values():
                    os.close(fd)
            self._log(req, resp)
            if close:
                self._close()
            return
        stream: AsyncIterator[bytes] = body  # type: ignore[assignment]
        chunked = (
            b"content-length:" not in resp.headers.lower() and resp.status not in _NO_BODY_STATUS
        )
        if chunked and req.version == "1.0":
            resp.close = True
            chunked = False
        head, close = self._head(req, resp, _CHUNKED if chunked else b"")
        transport.write(head)
        sent = 0
        try:
            async for chunk in stream:
                if not chunk or req.method == "HEAD":
                    continue
                sent += len(chunk)
                if chunked:
                    transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                else:
                    transport.write(chunk)
                await self._drain()
        except BaseException:
            # The head went out: counted and logged as far as it went, then cut.
            resp.body_length = sent
            self._log(req, resp)
            raise
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        if chunked and req.method != "HEAD":
            transport.write(b"0\r\n\r\n")
        resp.body_length = sent
        self._log(req, resp)
        if close:
            self._close()

    # -- file bodies: sendfile on plain connections (see the module docstring) ----

    def _send_file_now(self, req: Request, resp: Response, span: FileSpan) -> bool:
        """Send a one-file response at once; False when a task sends the rest."""
        if req.stream is not None:
            req.stream.discard()
        try:
            fd = os.open(span.path, _OPEN_FLAGS)
        except OSError:
            self._not_found(req)
            return True
        transport = self._transport
        assert transport is not None
        head, close = self._head(req, resp)
        transport.write(head)
        done = 0
        try:
            if not transport.get_write_buffer_size():
                done = _sendfile(self._sock_fd, fd, span.offset, span.count)
        except OSError:
            os.close(fd)
            self._abort()
            return False
        if done == span.count:
            os.close(fd)
            self._log(req, resp)
            if close:
                self._close()
            return True
        self._busy = True
        self._set_deadline(None)
        resume = Resume(span, fd, done, close)
        self._task = asyncio.get_running_loop().create_task(self._answer_later(req, resp, resume))
        return False

    async def _finish_file(self, req: Request, resp: Response, resume: Resume) -> None:
        """The rest of what ``_send_file_now`` began."""
        try:
            await self._send_span(resume.span, resume.fd, resume.done)
        finally:
            os.close(resume.fd)
        self._log(req, resp)
        if resume.close:
            self._close()

    async def _send_span(self, span: FileSpan, fd: int, done: int = 0) -> None:
        """Send ``span`` from ``fd`` (``done`` bytes of it already went out)."""
        transport = self._transport
        assert transport is not None
        if self._sock_fd < 0:
            data = span.from_memory()
            if data is None:
                await self._send_by_chunks(span, fd)
            else:
                transport.write(data)
                await self._drain()
            return
        loop = asyncio.get_running_loop()
        spare = -1  # a duplicate of the socket's descriptor, to wait on
        try:
            while done < span.count:
                if transport.get_write_buffer_size():
                    await self._flushed()
                done += _sendfile(self._sock_fd, fd, span.offset + done, span.count - done)
                if done < span.count:
                    if spare < 0:
                        spare = os.dup(self._sock_fd)
                    await self._writable(loop, spare)
        finally:
            if spare >= 0:
                os.close(spare)

    async def _writable(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        """Wait until the client's socket takes more; timed by the stall sweep."""
        if self._closing:
            raise ConnectionResetError("connection closed")
        waiter = loop.create_future()
        self._drain_waiter = waiter
        self._sendfile_since = time.monotonic()
        loop.add_writer(fd, _wake, waiter)
        try:
            await waiter
        finally:
            loop.remove_writer(fd)
            self._drain_waiter = None
            self._sendfile_since = None

    async def _flushed(self) -> None:
        """Wait until the transport has handed everything it holds to the kernel.

        Flow control with both marks at zero pauses the protocol while anything
        is held and resumes it once nothing is, on every loop.
        """
        transport = self._transport
        assert transport is not None
        low, high = transport.get_write_buffer_limits()
        transport.set_write_buffer_limits(high=0, low=0)
        try:
            await self._drain()
        finally:
            if not self._closing:
                transport.set_write_buffer_limits(high=high, low=low)

    async def _send_by_chunks(self, span: FileSpan, fd: int) -> None:
        """Read and write ``span`` in pieces (TLS: the loop encrypts what it sends)."""
        loop = asyncio.get_running_loop()
        transport = self._transport
        assert transport is not None
        offset, left = span.offset, span.count
        while left > 0:
            data = await loop.run_in_executor(
                None, os.pread, fd, min(left, _FALLBACK_CHUNK), offset
            )
            if not data:
                raise ConnectionAbortedError("file changed while being sent")
            transport.write(data)
            offset += len(data)
            left -= len(data)
            await self._drain()

    def _not_found(self, req: Request) -> None:
        """Answer 404 for a file that went away between its lookup and its sending."""
        transport = self._transport
        out: list[bytes] = []
        self._emit(out, req, error_response(404, "Nothing here."))
        if out and transport is not None:
            flush(transport, out)


SENDFILE_FAMILIES = (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX)


def one_span(body: list[bytes | FileSpan]) -> bool:
    """Whether a list body is one file span alone (a whole file, or one range)."""
    return len(body) == 1 and type(body[0]) is FileSpan


def _sendfile(sock: int, fd: int, offset: int, count: int) -> int:
    """``os.sendfile`` until ``count`` bytes went or the socket is full; the bytes sent.

    A short send means a full socket: stop there rather than ask again for ``EAGAIN``.
    Raises ``ConnectionAbortedError`` when the file ends early (it shrank).
    """
    sent = 0
    while sent < count:
        try:
            n = os.sendfile(sock, fd, offset + sent, count - sent)
        except BlockingIOError:
            break
        if n == 0:
            raise ConnectionAbortedError("file changed while being sent")
        sent += n
        if sent < count and n < _SENDFILE_MAX:
            break
    return sent


#: The most Linux's sendfile moves in one call.
_SENDFILE_MAX = 0x7FFFF000


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Resume:
    """A file response ``_send_file_now`` began and a task finishes."""

    __slots__ = ("close", "done", "fd", "span")

    def __init__(self, span: FileSpan, fd: int, done: int, close: bool) -> None:
        self.span = span
        self.fd = fd
        self.done = done
        self.close = close


def flush(transport: asyncio.Transport, out: list[bytes]) -> None:
    """Write gathered responses: one buffer when small, a vector when large.

    Joining copies, which is cheaper than an extra system call for small
    bodies; large bodies go by ``writelines`` (``writev`` on uvloop), uncopied.
    """
    if len(out) == 1:
        transport.write(out[0])
    elif len(out) == 2 and len(out[1]) > _JOIN_LIMIT:
        transport.writelines(out)
    else:
        transport.write(b"".join(out))
