"""Signals as events: handlers only record what arrived, the main loop acts on it.

``SIGTERM``/``SIGINT`` ask for a graceful stop, ``SIGUSR1``/``SIGHUP`` for a
log reopen. A handler running in the middle of arbitrary code must not stop
services or touch files, so it appends the signal to a queue and wakes the
loop; :meth:`SignalWatcher.next` hands signals to the runner in order.
Previous dispositions are restored by :meth:`SignalWatcher.restore`.
"""

from __future__ import annotations

import asyncio
import collections
import signal
from types import FrameType
from typing import Any

__all__ = ["HANDLED", "SignalWatcher"]

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP)


class SignalWatcher:
    """Records the handled signals (``signals``, default :data:`HANDLED`) for a loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, signals: tuple[int, ...] = HANDLED) -> None:
        self._loop = loop
        self._signals = signals
        self._queue: collections.deque[int] = collections.deque()
        self._wakeup = asyncio.Event()
        self._previous: dict[int, Any] = {}
        self._via_loop: list[int] = []

    def install(self) -> None:
        """Start recording the handled signals."""
        for signum in self._signals:
            self._previous[signum] = signal.getsignal(signum)
            try:
                self._loop.add_signal_handler(signum, self._record, signum)
                self._via_loop.append(signum)
            except (NotImplementedError, RuntimeError):
                # A loop without signal support: record from a plain handler.
                signal.signal(signum, self._record_threadsafe)

    def _record(self, signum: int) -> None:
        self._queue.append(signum)
        self._wakeup.set()

    def _record_threadsafe(self, signum: int, frame: FrameType | None) -> None:
        self._loop.call_soon_threadsafe(self._record, signum)

    async def next(self) -> int:
        """Wait for the next recorded signal and return its number."""
        while not self._queue:
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._queue.popleft()

    def restore(self) -> None:
        """Put back the dispositions found at :meth:`install`."""
        for signum, previous in self._previous.items():
            if signum in self._via_loop:
                self._loop.remove_signal_handler(signum)
            if previous is not None:
                signal.signal(signum, previous)
        self._previous.clear()
        self._via_loop.clear()
