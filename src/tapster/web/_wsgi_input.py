"""``wsgi.input`` for a request body still arriving: the application reads it as it comes.

The connection feeds the chunks httptools hands it (on the loop); the application
reads them in its worker thread, waiting while none are there. When more than
``HIGH_WATER`` bytes wait unread the connection stops reading from its client, and
it reads again once the application has taken them, so a large upload never sits
in memory whole. ``--max-body`` stays the protocol's business: a body that breaks
it cuts the connection, and a read then raises ``ConnectionResetError``, as it does
once the client has gone. While the application waits for bytes, the request
timeout runs.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator

from ._body import HIGH_WATER

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._protocol import HttpConnection
    from ._threadpool import LoopInbox


class WsgiInput:
    """A binary file over one request body; the loop feeds it, one thread reads it."""

    def __init__(self, conn: HttpConnection, inbox: LoopInbox) -> None:
        self._conn = conn
        self._inbox = inbox
        self._cond = threading.Condition(threading.Lock())
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._done = False
        self._lost = False
        self._discard = False
        self._paused = False
        #: Bytes taken from the chunks but not yet read (a line's tail, a short read).
        self._buffer = bytearray()

    # -- the connection's side (the loop) --------------------------------------------

    def feed(self, data: bytes) -> None:
        """One chunk from the parser."""
        with self._cond:
            if self._discard:
                return
            self._chunks.append(data)
            self._size += len(data)
            self._cond.notify()
            pause = self._size > HIGH_WATER and not self._paused
            if pause:
                self._paused = True
        if pause:
            self._conn.pause_body()

    def finish(self) -> None:
        """The body is complete."""
        with self._cond:
            self._done = True
            self._cond.notify()

    def lost(self) -> None:
        """The client went away (or broke a limit): a reader waiting now learns it."""
        with self._cond:
            self._lost = True
            self._cond.notify()

    def discard(self) -> None:
        """The response is complete: drop what comes from now on."""
        with self._cond:
            self._discard = True
            self._chunks.clear()
            self._size = 0
            self._cond.notify()

    @property
    def done(self) -> bool:
        """Whether the last byte has arrived."""
        return self._done

    # -- the application's side (its worker thread) -----------------------------------

    def _next(self) -> bytes:
        """The bytes that came since the last call, waiting for some; ``b""`` at the end."""
        cond = self._cond
        with cond:
            if not self._chunks and not self._done and not self._lost and not self._discard:
                self._inbox.post(self._conn.waiting_for_body, True)
                while not (self._chunks or self._done or self._lost or self._discard):
                    cond.wait()
                self._inbox.post(self._conn.waiting_for_body, False)
            if self._lost:
                raise ConnectionResetError("the client went away before sending the whole body")
            chunks = self._chunks
            if not chunks:
                return b""
            data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
            self._size = 0
            resume = self._paused
            self._paused = False
        if resume:
            self._inbox.post(self._resume)
        return data

    def _resume(self, _: object) -> None:
        """On the loop: read from the client again, unless this body is over."""
        if not self._discard:
            self._conn.resume_body()

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (fewer only at the end); all that is left when negative."""
        buffer = self._buffer
        if size is None or size < 0:
            while piece := self._next():
                buffer += piece
            data = bytes(buffer)
            buffer.clear()
            return data
        while len(buffer) < size:
            piece = self._next()
            if not piece:
                break
            if not buffer and len(piece) == size:
                return piece  # the common case: one chunk, asked for whole
            buffer += piece
        data = bytes(buffer[:size])
        del buffer[:size]
        return data

    def readline(self, size: int | None = -1) -> bytes:
        """One line, with its ``\\n``; at most ``size`` bytes when that is not negative."""
        buffer = self._buffer
        limit = -1 if size is None else size
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end >= 0:
                end += 1
                break
            if 0 <= limit <= len(buffer):
                end = limit
                break
            start = len(buffer)
            piece = self._next()
            if not piece:
                end = len(buffer)
                break
            buffer += piece
        if 0 <= limit < end:
            end = limit
        data = bytes(buffer[:end])
        del buffer[:end]
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        """Lines until the end, or until about ``hint`` bytes are read."""
        lines = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line
