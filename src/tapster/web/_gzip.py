"""Gzip bodies, compressed once per file version and kept in a bounded cache.

A version is (path, modification time, size): when a file changes its old
compressed copy is simply never asked for again and ages out of the cache.
Compression runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from tapster._lazy import import_later

import_later("gzip")  # by the first compression, in a worker thread

log = logging.getLogger("tapster.web")

#: Bodies smaller than this are not worth the header overhead of gzip.
MIN_SIZE = 256
#: Larger files are sent as they are, to bound memory and CPU per file.
MAX_SIZE = 8 * 1024 * 1024

Key = tuple[str, int, int]


def accepts_gzip(accept_encoding: bytes | None) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (``q=0`` refuses it)."""
    if not accept_encoding or b"gzip" not in accept_encoding:
        return False
    for item in accept_encoding.split(b","):
        coding, _, params = item.strip().partition(b";")
        if coding.strip().lower() in (b"gzip", b"x-gzip"):
            params = params.replace(b" ", b"")
            if params.startswith(b"q="):
                try:
                    return float(params[2:]) > 0
                except ValueError:
                    return False
            return True
    return False


class GzipCache:
    """Compressed copies of files, least recently used dropped beyond ``budget`` bytes."""

    def __init__(self, budget: int = 32 * 1024 * 1024) -> None:
        self._budget = budget
        self._used = 0
        self._items: OrderedDict[Key, bytes | None] = OrderedDict()
        self._running: dict[Key, asyncio.Future[bytes]] = {}

    def get(self, key: Key) -> bytes | None:
        """The cached compressed body for ``key``; ``b""`` means "not worth it"."""
        item = self._items.get(key, ...)
        if item is ...:
            return None
        self._items.move_to_end(key)
        return item if item is not None else b""

    async def compress(self, key: Key, data: bytes) -> bytes:
        """Compress ``data`` in a thread and cache it; ``b""`` if gzip does not help.

        Requests that arrive while the same version is being compressed wait
        for that one job instead of starting their own.
        """
        running = self._running.get(key)
        if running is None:
            loop = asyncio.get_running_loop()
            running = self._running[key] = loop.run_in_executor(None, _pack, key, data)
            running.add_done_callback(forget(self._running, key))
        packed = await asyncio.shield(running)
        stored = packed if len(packed) < len(data) else None
        old = self._items.pop(key, None)
        if old:
            self._used -= len(old)
        self._items[key] = stored
        if stored:
            self._used += len(stored)
        while self._used > self._budget and self._items:
            _, dropped = self._items.popitem(last=False)
            if dropped:
                self._used -= len(dropped)
        return stored or b""


def forget(
    table: dict[Any, asyncio.Future[Any]], key: Any
) -> Callable[[asyncio.Future[Any]], None]:
    """A done-callback that drops ``table[key]`` and marks any exception as seen
    (the waiters may all have gone; an unread exception would be reported)."""

    def done(fut: asyncio.Future[Any]) -> None:
        table.pop(key, None)
        if not fut.cancelled():
            fut.exception()

    return done


def _pack(key: Key, data: bytes) -> bytes:
    import gzip  # in the worker thread, on the first compression: not at start-up

    packed = gzip.compress(data, compresslevel=6, mtime=0)
    # Once per file version; the tests count these lines to see the work shared.
    log.debug("Compressed %s: %d bytes to %d", key[0], len(data), len(packed))
    return packed
