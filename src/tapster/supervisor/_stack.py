"""Reading a ``faulthandler`` stack dump: where a hung worker's loop is stuck.

``faulthandler.dump_traceback(all_threads=True)`` writes, for each thread::

    Thread 0x00007f3a5c1ff740 (most recent call first):
      File "/srv/app/handlers.py", line 12 in handle
      File "/usr/lib/python3.11/asyncio/events.py", line 84 in _run

(``Current thread`` for the one that took the signal). The first ``File`` line
under the event loop's thread is the frame it is stuck in.
"""

from __future__ import annotations

import re

__all__ = ["stuck_frame"]

_HEADER = re.compile(r"^(?:Current thread|Thread) (0x[0-9a-fA-F]+)")
_FRAME = re.compile(r'^\s+File "(.*)", line (\d+) in (.*)$')


def stuck_frame(lines: list[str], thread: int | None) -> str | None:
    """``file:line in function`` of the top frame of ``thread`` (or of the first thread)."""
    current: int | None = None
    first: str | None = None
    for line in lines:
        header = _HEADER.match(line)
        if header is not None:
            current = int(header.group(1), 16)
            continue
        frame = _FRAME.match(line)
        if frame is None or current is None:
            continue
        where = f"{frame.group(1)}:{frame.group(2)} in {frame.group(3)}"
        if thread is None or current == thread:
            return where
        if first is None:
            first = where
        current = None  # only the top frame of each thread counts
    return first
