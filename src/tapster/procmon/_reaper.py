"""Waiting for children to exit without blocking the loop, and reaping orphans as PID 1.

procmon starts its children with :class:`subprocess.Popen` and waits for them
itself, so the same code runs on the standard asyncio loop and on uvloop and
asyncio's own child watchers never compete with it:

* Normally each child gets a pidfd (``os.pidfd_open``, Linux 5.3+), watched
  with ``loop.add_reader``; when it becomes readable the child has exited and
  ``waitpid(pid, WNOHANG)`` reaps exactly that child. Where pidfds are missing,
  a small thread per child blocks in ``waitpid(pid, 0)`` instead.
* When tapster runs as PID 1 (the init process of a container), orphaned
  grandchildren are re-parented to it and nobody else will ever reap them.
  Then one thread reaps every child with ``waitpid(-1, 0)``: statuses of
  procmon's own children go to their waiters, anything else is an orphan,
  reaped and logged at debug level. This mode is chosen only when
  ``os.getpid() == 1``, because ``waitpid(-1)`` would also reap children that
  other code in the process started and waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from typing import ClassVar

__all__ = ["ExitWatcher", "make_exit_watcher"]

log = logging.getLogger("tapster.procmon")


class ExitWatcher:
    """Delivers the exit status of children to futures; base of the strategies."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def watch(self, pid: int) -> asyncio.Future[int]:
        """A future that gets the child's return code (negative: killed by that signal).

        Call it right after the child was started, before the next ``await``.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Stop watching (pending futures are left as they are)."""


def _code(status: int) -> int:
    return os.waitstatus_to_exitcode(status)


class _PidfdWatcher(ExitWatcher):
    """One pidfd per child, read-ready once the child has exited."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._fds: dict[int, int] = {}

    def watch(self, pid: int) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = self.loop.create_future()
        fd = os.pidfd_open(pid)
        self._fds[pid] = fd
        self.loop.add_reader(fd, self._ready, pid, fut)
        # The child may already be gone: check once now.
        self._ready(pid, fut)
        return fut

    def _ready(self, pid: int, fut: asyncio.Future[int]) -> None:
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            log.warning("process %d was reaped by someone else; its status is lost", pid)
            got, status = pid, 255 << 8
        if got == 0:
            return
        self._forget(pid)
        if not fut.done():
            fut.set_result(_code(status))

    def _forget(self, pid: int) -> None:
        fd = self._fds.pop(pid, None)
        if fd is not None:
            self.loop.remove_reader(fd)
            os.close(fd)

    def close(self) -> None:
        for pid in list(self._fds):
            self._forget(pid)


class _ThreadWatcher(ExitWatcher):
    """A daemon thread per child blocked in ``waitpid``: the portable fallback."""

    def watch(self, pid: int) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = self.loop.create_future()

        def deliver(code: int) -> None:
            if not fut.done():
                fut.set_result(code)

        def wait() -> None:
            try:
                _, status = os.waitpid(pid, 0)
                code = _code(status)
            except ChildProcessError:
                code = 255
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self.loop.call_soon_threadsafe(deliver, code)

        threading.Thread(target=wait, name=f"procmon-wait-{pid}", daemon=True).start()
        return fut


class _Pid1Reaper(ExitWatcher):
    """Reaps every child of the process; see the module docstring.

    A daemon thread blocks in ``waitpid(-1, 0)`` (a SIGCHLD handler is not an
    option: uvloop keeps SIGCHLD for itself). Statuses of watched children go
    to their futures through ``call_soon_threadsafe``; any other child is an
    orphan. A status can arrive before :meth:`watch` registers its child (the
    thread runs while ``Popen`` returns), so unclaimed statuses are kept for
    a few seconds and claimed by a later :meth:`watch`.
    """

    #: Seconds an unclaimed status is kept (far less than PID reuse takes).
    KEEP = 5.0

    _lock = threading.Lock()
    _thread: threading.Thread | None = None
    _waiting: ClassVar[dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[int]]]] = {}
    _unclaimed: ClassVar[dict[int, tuple[float, int]]] = {}
    _children = threading.Event()
    orphans_reaped = 0

    def watch(self, pid: int) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = self.loop.create_future()
        cls = type(self)
        with cls._lock:
            early = cls._unclaimed.pop(pid, None)
            if early is None:
                cls._waiting[pid] = (self.loop, fut)
            if cls._thread is None:
                cls._thread = threading.Thread(target=cls._run, name="procmon-reaper", daemon=True)
                cls._thread.start()
        if early is not None:
            fut.set_result(early[1])
        cls._children.set()
        return fut

    @classmethod
    def _run(cls) -> None:
        while True:
            cls._children.wait()
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                # No child at all: none can appear (not even an orphan) before
                # the next start, which sets the event again.
                cls._children.clear()
                # A child started between waitpid() and clear() must not be missed.
                try:
                    os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                except ChildProcessError:
                    continue
                cls._children.set()
                continue
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
            cls._deliver(pid, _code(status))

    @classmethod
    def _deliver(cls, pid: int, code: int) -> None:
        with cls._lock:
            entry = cls._waiting.pop(pid, None)
            if entry is None:
                now = time.monotonic()
                for old, (when, _) in list(cls._unclaimed.items()):
                    if now - when > cls.KEEP:
                        del cls._unclaimed[old]
                cls._unclaimed[pid] = (now, code)
                cls.orphans_reaped += 1
        if entry is None:
            log.debug("reaped orphan process %d (%s)", pid, code)
            return
        loop, fut = entry

        def settle() -> None:
            if not fut.done():
                fut.set_result(code)

        with contextlib.suppress(RuntimeError):  # the loop is closed
            loop.call_soon_threadsafe(settle)

    def close(self) -> None:
        cls = type(self)
        with cls._lock:
            for pid, (loop, _) in list(cls._waiting.items()):
                if loop is self.loop:
                    del cls._waiting[pid]


def make_exit_watcher(
    loop: asyncio.AbstractEventLoop, *, reap_orphans: bool | None = None
) -> ExitWatcher:
    """The right strategy here: the orphan reaper as PID 1, else pidfds, else threads.

    ``reap_orphans`` overrides the PID 1 test (None means "reap only as PID 1").
    """
    if reap_orphans is None:
        reap_orphans = os.getpid() == 1
    if reap_orphans:
        return _Pid1Reaper(loop)
    if hasattr(os, "pidfd_open"):
        return _PidfdWatcher(loop)
    return _ThreadWatcher(loop)
