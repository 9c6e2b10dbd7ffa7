"""The loop's tick (lag, last turn) and the watchdog thread that sees stalls.

The tick is a ``call_later`` callback, so a blocked loop stops ticking: that
silence is the stall. The watchdog is a thread because only a thread can look
while the loop is blocked: once the loop has not turned for the threshold, it
reads the loop thread's current frame (``sys._current_frames()``) and logs one
warning naming the innermost frame (the code that blocks: a ``time.sleep``, a
blocking call, a busy loop) with the whole stack, then one line with the
stall's length when the loop turns again.

Cost on the loop: one callback every :data:`TICK` seconds (a clock read, a
bisect, a ``call_later``); the thread wakes a few times per threshold.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback

from tapster.metrics import counter, histogram

__all__ = ["TICK", "LoopWatch"]

log = logging.getLogger("tapster.loopwatch")

#: Seconds between two ticks of the loop.
TICK = 0.1

_LAG = histogram(
    "tapster_event_loop_lag_seconds",
    "How late a callback scheduled on the event loop ran, in seconds.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
_STALLS = counter(
    "tapster_event_loop_stalls",
    "Times the event loop did not turn for the --loop-stall threshold or longer.",
)
_STALL_SECONDS = counter(
    "tapster_event_loop_stall_seconds",
    "Seconds the event loop spent in stalls (counted when each stall ends).",
)


class LoopWatch:
    """Ticks on ``loop``; with ``stall`` > 0, a watchdog thread that logs stalls."""

    def __init__(self, stall: float = 0.0) -> None:
        self.stall = stall
        #: ``time.monotonic()`` of the loop's last tick.
        self.last_turn = time.monotonic()
        #: Where the loop is stuck (``file:line in function``) during a stall, else "".
        self.stuck_at = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._thread_id: int | None = None
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin ticking on ``loop`` (call from its thread), and watching when asked."""
        self._loop = loop
        self._thread_id = threading.get_ident()
        self._tick()
        if self.stall > 0:
            self._stop.clear()
            self._watchdog = threading.Thread(
                target=self._watch, name="tapster-loop-watchdog", daemon=True
            )
            self._watchdog.start()

    def stop(self) -> None:
        """No more ticks; the watchdog ends."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join(1.0)
            self._watchdog = None

    def blocked_for(self) -> float:
        """Seconds the loop has gone without turning beyond its tick (0 when it turns)."""
        return max(0.0, time.monotonic() - self.last_turn - TICK)

    def where(self) -> str:
        """Where the loop's thread is now (``file:line in function``), "" when unknown."""
        stack = self._stack()
        return _place(stack[-1]) if stack else ""

    def _stack(self) -> traceback.StackSummary | None:
        frame = sys._current_frames().get(self._thread_id or 0)
        if frame is None:
            return None
        try:
            return traceback.extract_stack(frame)
        finally:
            del frame

    def _tick(self) -> None:
        now = time.monotonic()
        if self._due:
            _LAG.observe(max(0.0, now - self._due))
        self.last_turn = now
        self._due = now + TICK
        assert self._loop is not None
        self._handle = self._loop.call_later(TICK, self._tick)

    # -- the watchdog thread ---------------------------------------------------------

    def _watch(self) -> None:
        pause = min(0.1, max(0.01, self.stall / 5))
        stalled_since: float | None = None  # the last turn before the stall
        while not self._stop.wait(pause):
            last = self.last_turn
            if stalled_since is None:
                if time.monotonic() - last - TICK >= self.stall:
                    stalled_since = last
                    self._report_start()
            elif last != stalled_since:
                length = max(0.0, last - stalled_since - TICK)
                stalled_since = None
                self.stuck_at = ""
                _STALL_SECONDS.inc(length)
                log.warning("the event loop turned again after a stall of %.2f s", length)

    def _report_start(self) -> None:
        _STALLS.inc()
        stack = self._stack()
        if not stack:
            self.stuck_at = "(unknown)"
            log.warning("the event loop has not turned for %.2f s", self.blocked_for())
            return
        self.stuck_at = _place(stack[-1])
        log.warning(
            "the event loop has not turned for %.2f s: it is blocked at %s. "
            "Its stack (most recent call last):\n%s",
            self.blocked_for(),
            self.stuck_at,
            "".join(traceback.format_list(stack)).rstrip(),
        )


def _place(frame: traceback.FrameSummary) -> str:
    return f"{frame.filename}:{frame.lineno} in {frame.name}"
