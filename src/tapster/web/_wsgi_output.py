"""A WSGI response body that streams: from the application's thread to the connection.

Used when the body is not known whole when the application returns (a generator,
``write()``, a file that cannot be sent with sendfile). The worker thread ``put``s
parts; the protocol iterates ``BodyStream``, which takes every part waiting at once
(one write for many small parts). At most ``LIMIT`` bytes wait: past that, ``put``
blocks the worker until the client has read, so a fast producer cannot fill memory.
The loop is woken only when it waits for a part, not for each one.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

from ._threadpool import LoopInbox

#: Bytes that may wait between the application and the connection.
LIMIT = 256 * 1024


class Outbox:
    """The parts one response's worker thread has made and the connection not yet taken."""

    def __init__(self, inbox: LoopInbox) -> None:
        self._inbox = inbox
        self._cond = threading.Condition(threading.Lock())
        self._parts: deque[bytes] = deque()
        self._size = 0
        self._ended = False
        self._failed = False
        self._closed = False
        #: The loop's waiter while it waits for a part; set and taken under the lock.
        self._waiter: asyncio.Future[None] | None = None

    # -- the worker thread's side ---------------------------------------------------

    def put(self, data: bytes) -> bool:
        """Queue ``data``, waiting while too much waits; ``False`` once nobody reads."""
        with self._cond:
            while self._size >= LIMIT and not self._closed:
                self._cond.wait()
            if self._closed:
                return False
            self._parts.append(data)
            self._size += len(data)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._inbox.post(_wake, waiter)
        return True

    def end(self, failed: bool = False) -> None:
        """No more parts; ``failed``: the application broke off mid-response."""
        with self._cond:
            self._ended = True
            self._failed = failed
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._inbox.post(_wake, waiter)

    @property
    def closed(self) -> bool:
        """Whether the connection gave up on this response (the client left)."""
        return self._closed

    # -- the loop's side ------------------------------------------------------------

    async def get(self) -> bytes | None:
        """Every part waiting, joined; ``None`` at the end. Raises when the application
        failed mid-response."""
        while True:
            with self._cond:
                parts = self._parts
                if parts:
                    data = parts.popleft() if len(parts) == 1 else b"".join(parts)
                    parts.clear()
                    self._size = 0
                    self._cond.notify()
                    return data
                if self._ended:
                    if self._failed:
                        raise ConnectionAbortedError("the WSGI application failed mid-response")
                    return None
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter

    def close(self) -> None:
        """Nobody will read more: drop what waits and release the worker."""
        with self._cond:
            self._closed = True
            self._parts.clear()
            self._size = 0
            self._cond.notify_all()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class BodyStream:
    """The response body as the protocol reads it; ``aclose`` releases the worker.

    Enforces the declared ``Content-Length``: extra bytes are dropped, and a short
    body aborts the connection (the client would otherwise wait forever).
    """

    __slots__ = ("_declared", "_done", "_outbox", "_sent")

    def __init__(self, outbox: Outbox, declared: int | None) -> None:
        self._outbox = outbox
        self._declared = declared
        self._sent = 0
        self._done = False

    def __aiter__(self) -> BodyStream:
        return self

    async def __anext__(self) -> bytes:
        declared = self._declared
        while not self._done:
            item = await self._outbox.get()
            if item is None:
                self._done = True
                if declared is not None and self._sent < declared:
                    raise ConnectionAbortedError("the WSGI application sent less than it declared")
                break
            if declared is not None and self._sent + len(item) > declared:
                item = item[: declared - self._sent]
            self._sent += len(item)
            if item:
                return item
        self._outbox.close()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        """Nobody will read on: release the worker thread."""
        self._done = True
        self._outbox.close()
