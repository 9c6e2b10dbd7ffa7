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
  Then a SIGCHLD handler calls ``waitpid(-1, WNOHANG)`` until nothing is left:
  statuses of procmon's own children go to their waiters, anything else is an
  orphan, reaped and logged at debug level. This mode is chosen only when
  ``os.getpid() == 1``, because ``waitpid(-1)`` would also reap children that
  other code in the process started and waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading

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
    """Reaps every child of the process on SIGCHLD; see the module docstring."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._waiting: dict[int, asyncio.Future[int]] = {}
        self.orphans_reaped = 0
        loop.add_signal_handler(signal.SIGCHLD, self.reap)
        self.reap()  # zombies that were there before us

    def watch(self, pid: int) -> asyncio.Future[int]:
        # No status can have been collected for ``pid`` yet: SIGCHLD is handled
        # by the loop, and the caller has not yielded to it since the start.
        fut: asyncio.Future[int] = self.loop.create_future()
        self._waiting[pid] = fut
        return fut

    def reap(self) -> None:
        """Collect every exited child now (runs on SIGCHLD)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            fut = self._waiting.pop(pid, None)
            if fut is not None:
                if not fut.done():
                    fut.set_result(_code(status))
            else:
                self.orphans_reaped += 1
                log.debug("reaped orphan process %d (%s)", pid, _code(status))

    def close(self) -> None:
        self.reap()
        self.loop.remove_signal_handler(signal.SIGCHLD)


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
