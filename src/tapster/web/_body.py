"""A request body that streams from the parser to an ASGI application, with backpressure.

The protocol feeds the chunks httptools hands it; the application takes them with
``read``. When more than ``HIGH_WATER`` bytes wait unread, the connection stops
reading from the socket (the client's sends then block in its kernel), and it
reads again once the application has taken them. Nothing here touches a socket:
the connection is asked to pause and resume.
"""

from __future__ import annotations

import asyncio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    from ._protocol import HttpConnection

    class BodyFeed(Protocol):
        """What the protocol feeds a streaming body through (``RequestBody``, ``WsgiInput``)."""

        def feed(self, data: bytes) -> None: ...
        def finish(self) -> None: ...
        def lost(self) -> None: ...
        def discard(self) -> None: ...
        @property
        def done(self) -> bool: ...


#: Unread body bytes above which the connection stops reading from its client.
HIGH_WATER = 64 * 1024


class RequestBody:
    """The body of one request, as it arrives."""

    __slots__ = ("_chunks", "_conn", "_discard", "_done", "_lost", "_size", "_waiter")

    def __init__(self, conn: HttpConnection) -> None:
        self._conn = conn
        self._chunks: list[bytes] = []
        self._size = 0
        self._done = False
        self._lost = False
        self._discard = False
        self._waiter: asyncio.Future[None] | None = None

    # -- the parser's side ---------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """One chunk from the parser."""
        if self._discard:
            return
        self._chunks.append(data)
        self._size += len(data)
        self._wake()
        if self._size > HIGH_WATER:
            self._conn.pause_body()

    def finish(self) -> None:
        """The body is complete."""
        self._done = True
        self._wake()

    def lost(self) -> None:
        """The client went away: a reader waiting now learns it."""
        self._lost = True
        self._wake()

    def discard(self) -> None:
        """Nobody will read the rest (the response is complete): drop it as it comes."""
        self._discard = True
        self._chunks.clear()
        self._size = 0

    @property
    def done(self) -> bool:
        """Whether the last byte has arrived."""
        return self._done

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the application's side ----------------------------------------------------

    async def read(self) -> tuple[bytes, bool] | None:
        """What arrived since the last read and whether more follows; ``None`` once
        the client is gone. Waits (timed by the request timeout) while nothing came."""
        while not self._chunks and not self._done and not self._lost:
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            self._conn.waiting_for_body(True)
            try:
                await waiter
            finally:
                self._waiter = None
                self._conn.waiting_for_body(False)
        if self._lost:
            return None
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        if self._size > HIGH_WATER:
            self._conn.resume_body()
        self._size = 0
        return data, not self._done
