"""Heartbeats: sent by a worker's event loop, judged by the supervisor.

The beat is a callback scheduled on the worker's own loop (``call_later``),
not a thread: a loop blocked by a handler (``time.sleep``, a busy loop, a
blocking call) sends nothing, and that silence is what the supervisor sees.
A helper thread would keep beating for a worker that serves nobody.
"""

from __future__ import annotations

import asyncio

from tapster.supervisor._channel import ChannelWriter

__all__ = ["Heartbeat", "beat_interval"]


def beat_interval(timeout: float) -> float:
    """Seconds between beats for a supervisor that waits ``timeout``: 4 a timeout, 1 s at most."""
    return min(1.0, timeout / 4)


class Heartbeat:
    """Sends ``beat`` every ``interval`` seconds from ``loop`` until stopped."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, channel: ChannelWriter, interval: float
    ) -> None:
        self._loop = loop
        self._channel = channel
        self._interval = interval
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Beat now, then every interval."""
        self._beat()

    def _beat(self) -> None:
        self._channel.send("beat")
        self._handle = self._loop.call_later(self._interval, self._beat)

    def stop(self) -> None:
        """No more beats."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
