"""A child's stdout and stderr, read from pipes and logged line by line."""

from __future__ import annotations

import asyncio
import logging
from typing import IO, cast

__all__ = ["MAX_LINE", "LineLogger", "read_pipe"]

log = logging.getLogger("tapster.procmon")

#: A longer line is logged in pieces of this many bytes, so a child that never
#: writes a newline cannot make procmon buffer without bound.
MAX_LINE = 16 * 1024


class LineLogger(asyncio.Protocol):
    """Reads one pipe of a child and logs each line with the child's name.

    stdout lines are logged at INFO, stderr lines at WARNING; each record
    carries ``procmon_child`` and ``procmon_stream`` in its ``extra`` for
    structured log formats. Bytes are decoded as UTF-8 with replacement, and
    a final line without a newline is logged when the pipe closes.
    """

    def __init__(self, name: str, stream: str) -> None:
        self.name = name
        self.stream = stream
        self.level = logging.WARNING if stream == "stderr" else logging.INFO
        self.lines = 0
        self._partial = bytearray()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.ReadTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self.transport = cast(asyncio.ReadTransport, transport)

    def data_received(self, data: bytes) -> None:
        buf = self._partial
        buf += data
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            self._emit(buf[start:end])
            start = end + 1
        del buf[:start]
        while len(buf) >= MAX_LINE:
            self._emit(buf[:MAX_LINE])
            del buf[:MAX_LINE]

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._partial:
            self._emit(self._partial)
            self._partial.clear()
        self.transport = None
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        """Stop reading (the pipe is closed; what is buffered is logged)."""
        if self.transport is not None:
            self.transport.close()

    def _emit(self, raw: bytes | bytearray) -> None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        self.lines += 1
        if log.isEnabledFor(self.level):
            text = raw.decode("utf-8", "replace")
            suffix = " (stderr)" if self.stream == "stderr" else ""
            log.log(
                self.level,
                "%s%s: %s",
                self.name,
                suffix,
                text,
                extra={"procmon_child": self.name, "procmon_stream": self.stream},
            )


async def read_pipe(reader: LineLogger, pipe: IO[bytes]) -> None:
    """Connect ``reader`` to ``pipe`` on the running loop, even if cancelled meanwhile.

    uvloop closes the descriptor of a pipe whose ``connect_read_pipe`` is cancelled
    but leaves the file object open: the object's own close, when it is collected,
    then closes whatever the number was given to next (seen as ``EBADF`` on another
    child's pipe). So the connection is shielded: when the caller is cancelled it
    still completes, with the file in the transport's hands, and is closed at once.
    """
    loop = asyncio.get_running_loop()
    connecting = asyncio.ensure_future(loop.connect_read_pipe(lambda: reader, pipe))
    try:
        await asyncio.shield(connecting)
    except asyncio.CancelledError:
        connecting.add_done_callback(_close_connected)
        raise


def _close_connected(connecting: asyncio.Future[tuple[asyncio.ReadTransport, LineLogger]]) -> None:
    if not connecting.cancelled() and connecting.exception() is None:
        connecting.result()[0].close()
