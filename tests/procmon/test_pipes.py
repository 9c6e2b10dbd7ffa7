"""A child's output pipe handed to the loop: its descriptor is closed once, by its owner.

On both loops, with real pipes. A connection cancelled half-way (a stop arriving while a
child is being started) must leave the file object and its descriptor in agreement:
uvloop closed the descriptor and left the object open, whose later close then hit the
next file given that number.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import Any

from tapster.procmon._output import LineLogger, read_pipe


def _open_at_os_level(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_cancelled_connection_closes_the_pipe_once(run_async: Callable[[Any], Any]) -> None:
    async def main() -> None:
        r, w = os.pipe()
        pipe = os.fdopen(r, "rb", buffering=0)
        reader = LineLogger("child", "stdout")
        task = asyncio.get_running_loop().create_task(read_pipe(reader, pipe))
        await asyncio.sleep(0)  # the connection is under way
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        async with asyncio.timeout(5):
            await reader.closed
        assert pipe.closed
        assert not _open_at_os_level(r)
        os.close(w)

    run_async(main())


def test_connected_pipe_is_read_and_closed_at_its_end(run_async: Callable[[Any], Any]) -> None:
    async def main() -> None:
        r, w = os.pipe()
        pipe = os.fdopen(r, "rb", buffering=0)
        reader = LineLogger("child", "stdout")
        await read_pipe(reader, pipe)
        os.write(w, b"one\ntwo\nthree")
        os.close(w)
        async with asyncio.timeout(5):
            await reader.closed
        assert reader.lines == 3
        assert pipe.closed and not _open_at_os_level(r)

    run_async(main())
