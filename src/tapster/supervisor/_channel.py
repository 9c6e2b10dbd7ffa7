"""The pipe from a worker to its supervisor: one JSON object a line.

Messages, each a JSON object with one ``kind``:

* ``{"kind": "hello", "thread": N}``: the worker's loop runs, on the thread
  whose id ``faulthandler`` will print as ``Thread 0x...`` (to find the stuck
  frame in a stack dump);
* ``{"kind": "beat"}``: a heartbeat, sent by the worker's event loop itself;
* ``{"kind": "ready"}``: the worker's tree is started and listening;
* ``{"kind": "failed", "message": "..."}``: start-up failed, the one line to show.

JSON and nothing else: the supervisor never unpickles what a worker sends. A
line longer than :data:`MAX_LINE` or that is not such an object is dropped.
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["MAX_LINE", "ChannelWriter", "LineSplitter", "decode", "encode"]

#: The longest line kept (a start-up error message fits many times over).
MAX_LINE = 64 * 1024


def encode(kind: str, **fields: Any) -> bytes:
    """One message as a line of bytes."""
    return json.dumps({"kind": kind, **fields}, ensure_ascii=True).encode("ascii") + b"\n"


def decode(line: bytes) -> dict[str, Any] | None:
    """The message in ``line``, or None when it is not one."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("kind"), str):
        return None
    return message


class LineSplitter:
    """Turns chunks read from a pipe into whole lines (without their newline)."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self._partial = b""
        self._limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        """The lines completed by ``data``; the rest waits for the next chunk."""
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > self._limit:
            lines.append(self._partial)  # a line that never ends: let it through in parts
            self._partial = b""
        return lines

    def rest(self) -> bytes:
        """What is left without a newline (at end of file)."""
        rest, self._partial = self._partial, b""
        return rest


class ChannelWriter:
    """The worker's end: writes messages without ever blocking its loop.

    The pipe is non-blocking; a message that does not fit (the supervisor is
    not reading) is dropped, which for a heartbeat is the truth: the
    supervisor did not hear it. A closed pipe (the supervisor is gone) makes
    every later send a no-op.
    """

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd
        os.set_blocking(fd, False)

    def send(self, kind: str, **fields: Any) -> bool:
        """Send one message; True when it was written whole."""
        if self.fd is None:
            return False
        data = encode(kind, **fields)
        try:
            written = os.write(self.fd, data)
        except BlockingIOError:
            return False
        except OSError:
            self.close()
            return False
        return written == len(data)

    def close(self) -> None:
        """Close the pipe."""
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)
