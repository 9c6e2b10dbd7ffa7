"""Call something every N seconds while the service runs."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from tapster.service import Service

logger = logging.getLogger("tapster.internet")


class TimerService(Service):
    """Call ``function(*args)`` every ``interval`` seconds while running.

    The first call happens at ``start`` (``now=False``: one interval later).
    ``function`` may be sync or async; a sync one runs on the event loop, so
    it must be quick (hand blocking work to ``asyncio.to_thread``).

    Error handling: an exception from a call is logged (logger
    ``tapster.internet``) and the timer goes on, because one failed run of a
    periodic job (a cache refresh, a health check) should not end the job.
    Calls never overlap: a call that takes longer than ``interval`` delays the
    next one, and missed ticks are skipped rather than run in a burst.
    ``stop`` waits for a call in progress to finish (within the shutdown
    budget, after which the call is cancelled).
    """

    def __init__(
        self,
        interval: float,
        function: Callable[..., Any],
        *args: Any,
        now: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__()
        if not interval > 0:
            raise ValueError(f"interval must be positive, not {interval}")
        self.interval = interval
        self.function = function
        self.args = args
        self.now = now
        self.name = name
        self.calls = 0
        self._task: asyncio.Task[None] | None = None
        self._in_call = False
        self._stopping = False

    async def start(self) -> None:
        """Schedule the calls."""
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + (0.0 if self.now else self.interval)
        while not self._stopping:
            await asyncio.sleep(max(0.0, due - loop.time()))
            if self._stop_requested():
                return
            self._in_call = True
            try:
                result = self.function(*self.args)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                logger.error("timer %s: call failed: %s", self.label, exc, exc_info=exc)
            finally:
                self._in_call = False
                self.calls += 1
            due += self.interval
            if due < loop.time():
                # Skip the ticks that passed during a long call.
                missed = int((loop.time() - due) // self.interval) + 1
                due += missed * self.interval

    def _stop_requested(self) -> bool:
        return self._stopping

    async def stop(self) -> None:
        """Stop scheduling; wait for a call in progress to finish."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        if not self._in_call:
            task.cancel()
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            raise
