"""A bounded pool of daemon threads, and the one door from those threads back to the loop.

Made for many short calls (WSGI requests) under one GIL, where every thread woken and
every loop wake-up costs more than the call itself:

* ``ThreadPool.submit`` wakes a thread only when none is already on its way to the
  queue (or leaves that to one ``wake`` for many calls: the WSGI handler wakes once
  per loop iteration); a thread that takes a call while more wait wakes one more, so
  calls that block (a database, ``time.sleep``) still spread over every thread, while
  fast calls are taken one after another by the thread already running.
* ``LoopInbox.post`` hands a result to the loop: results posted while the loop has
  not yet run the previous batch ride along with it, one wake-up for them all.

The threads are daemons: a call still running when the server has stopped (the
shutdown budget spent) is abandoned, and neither holds the process at exit nor
reports anything. Not a ``ThreadPoolExecutor``, whose threads the interpreter joins
at exit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("tapster.web")

Call = Callable[[Any], None]


class ThreadPool:
    """Runs ``func(arg)`` calls in at most ``size`` daemon threads, started as needed."""

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._calls: deque[tuple[Call, Any]] = deque()
        self._lock = threading.Lock()
        #: Idle threads, each asleep on its own locked lock (the last to sleep wakes first).
        self._idle: list[threading.Lock] = []
        #: Threads woken or started that have not yet looked at the queue.
        self._waking = 0
        self._threads = 0
        self._closed = False

    def submit(self, func: Call, arg: Any, wake: bool = True) -> bool:
        """Queue ``func(arg)``; ``False`` once the pool is closed (the call is dropped).

        ``wake=False``: the caller calls ``wake`` itself later, once for many calls.
        """
        with self._lock:
            if self._closed:
                return False
            self._calls.append((func, arg))
            if wake and not self._waking:
                self._wake_one()
        return True

    def wake(self) -> None:
        """Make sure a thread is on its way to the calls queued (after ``submit(wake=False)``)."""
        with self._lock:
            if self._calls and not self._waking and not self._closed:
                self._wake_one()

    def _wake_one(self) -> None:
        """Wake an idle thread, or start one if the pool is not full (lock held)."""
        if self._idle:
            self._waking += 1
            self._idle.pop().release()
        elif self._threads < self._size:
            self._waking += 1
            self._threads += 1
            name = f"{self._name}-{self._threads}"
            threading.Thread(target=self._work, name=name, daemon=True).start()

    def _work(self) -> None:
        bell = threading.Lock()
        bell.acquire()
        woken = True
        lock = self._lock
        calls = self._calls
        while True:
            with lock:
                if woken:
                    self._waking -= 1
                    woken = False
                if self._closed:
                    return
                if calls:
                    func, arg = calls.popleft()
                    if calls and not self._waking:
                        self._wake_one()  # more wait: in case this call blocks
                else:
                    self._idle.append(bell)
                    func = None
            if func is None:
                bell.acquire()
                woken = True
                continue
            try:
                func(arg)
            except Exception:  # a call's own failures are its business; the thread lives on
                log.exception("Error in a %s thread", self._name)
            del func, arg  # nothing of the last call is kept while idle

    def close(self) -> None:
        """Drop calls not started and let idle threads end; running calls are not waited for."""
        with self._lock:
            self._closed = True
            self._calls.clear()
            while self._idle:
                self._waking += 1
                self._idle.pop().release()


class LoopInbox:
    """Runs ``func(arg)`` on the loop for any thread, many per loop wake-up.

    ``post`` appends to a queue and asks the loop to empty it only when no such
    request is outstanding; the loop clears that mark before it starts emptying, so
    a result posted at any moment is either taken by the run in progress or wakes
    the loop again. Once the loop is closed, posts are dropped.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[tuple[Call, Any]] = deque()
        self._scheduled = False

    def post(self, func: Call, arg: Any = None) -> None:
        """Call ``func(arg)`` on the loop soon (from any thread)."""
        self._items.append((func, arg))
        if not self._scheduled:
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._run)
            except RuntimeError:  # the loop is closed: the server stopped, nobody waits
                self._items.clear()

    def _run(self) -> None:
        self._scheduled = False
        items = self._items
        while items:
            func, arg = items.popleft()
            try:
                func(arg)
            except Exception:
                log.exception("Error while handing a result to the event loop")
