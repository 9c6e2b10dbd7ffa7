"""One worker process as the supervisor sees it: spawn, pipes, messages, state.

A worker is spawned, not forked: a fresh interpreter runs the same
``tapster`` command line (``python -m tapster ARGS``), so it imports the code
as it is on disk now, and nothing of the supervisor's memory (its service
tree, threads, locks) is shared. It gets, by descriptor number (``pass_fds``)
and described in ``$TAPSTER_WORKER``:

* the listening sockets;
* the write end of the *channel* (messages to the supervisor, ``_channel``);
* the read end of the *watch* pipe, whose write end only the supervisor
  holds: its end of file tells the worker that the supervisor is gone;
* stderr and stdout: the write end of the *output* pipe (its log lines);
* for a spare worker (number 0), the read end of the *control* pipe, where
  :meth:`WorkerProcess.promote` writes its ``go`` and number.

Exits are seen through ``tapster.procmon``'s exit watcher (a pidfd per child).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from tapster.endpoints._inherited import Listener
from tapster.procmon._reaper import ExitWatcher
from tapster.runner._roles import WORKER_ENV
from tapster.supervisor._channel import LineSplitter, decode, encode
from tapster.supervisor._output import WorkerOutput
from tapster.supervisor._upgrade import AdoptedWorker
from tapster.supervisor._worker import WorkerSpec

__all__ = ["WorkerProcess"]

#: Variables a worker must not see: only the supervisor talks to systemd.
_PRIVATE_ENV = ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC")


class WorkerProcess:
    """A running worker: its process, its pipes and what it said."""

    def __init__(
        self,
        number: int,
        *,
        argv: Sequence[str],
        cwd: str,
        listeners: list[Listener],
        timeout: float,
        log_handler: logging.Handler | None,
        exits: ExitWatcher,
        on_message: Callable[[WorkerProcess, dict[str, object]], None],
    ) -> None:
        self.number = number
        self.started = time.monotonic()
        self.last_beat = self.started
        self.ready_at: float | None = None
        self.thread: int | None = None
        self.failure: str | None = None
        #: ``starting``, ``spare`` (a warm spare), ``ready``, ``hung`` (being dumped
        #: and killed), ``stopping``.
        self.state = "starting"
        self._on_message = on_message
        channel_r, channel_w = os.pipe()
        watch_r, watch_w = os.pipe()
        output_r, output_w = os.pipe()
        control_r, self._control_w = os.pipe() if number == 0 else (-1, -1)
        listener_fds = [fd for _, fds in listeners for fd in fds]
        spec = WorkerSpec(number, os.getpid(), channel_w, watch_r, timeout, listeners, control_r)
        extra_fds = (control_r,) if control_r >= 0 else ()
        env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
        env[WORKER_ENV] = spec.to_json()
        self.proc: subprocess.Popen[bytes] | None
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tapster", *argv],
                stdin=subprocess.DEVNULL,
                stdout=output_w,
                stderr=output_w,
                pass_fds=(channel_w, watch_r, *extra_fds, *listener_fds),
                cwd=cwd,
                env=env,
            )
        except BaseException:
            for fd in (channel_r, watch_w, output_r, self._control_w):
                if fd >= 0:
                    os.close(fd)
            raise
        finally:
            for fd in (channel_w, watch_r, output_w, control_r):
                if fd >= 0:
                    os.close(fd)
        self._attach(
            self.proc.pid,
            channel_r=channel_r,
            output_r=output_r,
            watch_w=watch_w,
            log_handler=log_handler,
            exits=exits,
        )

    @classmethod
    def adopt(
        cls,
        worker: AdoptedWorker,
        *,
        log_handler: logging.Handler | None,
        exits: ExitWatcher,
        on_message: Callable[[WorkerProcess, dict[str, object]], None],
    ) -> WorkerProcess:
        """A worker the previous supervisor image started, from its handed-over pipes."""
        self = cls.__new__(cls)
        self.number = worker.number
        self.started = time.monotonic() - worker.age
        self.last_beat = time.monotonic()
        self.ready_at = self.started if worker.state == "ready" else None
        self.thread = None
        self.failure = None
        self.state = worker.state
        self._on_message = on_message
        self._control_w = -1
        self.proc = None
        for fd in (worker.channel, worker.output, worker.watch):
            os.set_inheritable(fd, False)
        self._attach(
            worker.pid,
            channel_r=worker.channel,
            output_r=worker.output,
            watch_w=worker.watch,
            log_handler=log_handler,
            exits=exits,
        )
        return self

    def _attach(
        self,
        pid: int,
        *,
        channel_r: int,
        output_r: int,
        watch_w: int,
        log_handler: logging.Handler | None,
        exits: ExitWatcher,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.pid = pid
        # Watch before yielding to the loop (see procmon's _reaper).
        self.exited: asyncio.Future[int] = exits.watch(self.pid)
        self.exited.add_done_callback(self._settle)
        self._watch_w = watch_w
        self._channel_fd = channel_r
        self._output_fd = output_r
        self._channel = LineSplitter()
        self.output = WorkerOutput(log_handler, self.number, self.pid)
        self._loop = loop
        for fd, reader in ((channel_r, self._read_channel), (output_r, self._read_output)):
            os.set_blocking(fd, False)
            loop.add_reader(fd, reader)
        self.output_closed: asyncio.Future[None] = loop.create_future()

    def handover(self) -> AdoptedWorker | None:
        """What a new supervisor image needs to adopt this worker; None for a spare."""
        if not self.number or self.state not in ("ready", "stopping") or self.exited.done():
            return None
        if min(self._channel_fd, self._output_fd, self._watch_w) < 0:
            return None
        return AdoptedWorker(
            number=self.number,
            pid=self.pid,
            channel=self._channel_fd,
            output=self._output_fd,
            watch=self._watch_w,
            state=self.state,
            age=self.uptime,
        )

    def __repr__(self) -> str:
        if not self.number:
            return f"spare worker (pid {self.pid})"
        return f"worker {self.number} (pid {self.pid})"

    def promote(self, number: int) -> None:
        """Make this spare worker number ``number``: it starts serving at once.

        Its start (and its start-up deadline) now counts from this moment.
        """
        self.number = number
        self.output.renumber(number)
        self.started = self.last_beat = time.monotonic()
        self.state = "starting"
        line = encode("go", number=number)
        with contextlib.suppress(OSError):  # gone: its exit is being reported
            os.write(self._control_w, line)  # a fresh pipe: always room for one line
        os.close(self._control_w)
        self._control_w = -1

    @property
    def uptime(self) -> float:
        """Seconds since the worker was started."""
        return time.monotonic() - self.started

    def _settle(self, fut: asyncio.Future[int]) -> None:
        if not fut.cancelled() and self.proc is not None:
            self.proc.returncode = fut.result()  # Popen must not wait for it again

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the worker, unless it is gone."""
        if not self.exited.done():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    # -- reading -------------------------------------------------------------------

    def _read_channel(self) -> None:
        data = self._read(self._channel_fd)
        if data is None:
            return
        if not data:
            self._close_reader("_channel_fd")
            return
        for line in self._channel.feed(data):
            message = decode(line)
            if message is not None:
                self._on_message(self, message)

    def _read_output(self) -> None:
        data = self._read(self._output_fd)
        if data is None:
            return
        if not data:
            self.output.close()
            self._close_reader("_output_fd")
            if not self.output_closed.done():
                self.output_closed.set_result(None)
            return
        self.output.feed(data)

    @staticmethod
    def _read(fd: int) -> bytes | None:
        try:
            return os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return b""

    def _close_reader(self, name: str) -> None:
        fd = getattr(self, name)
        if fd >= 0:
            self._loop.remove_reader(fd)
            os.close(fd)
            setattr(self, name, -1)

    def close(self) -> None:
        """Release the pipes (the worker has exited); its last lines are passed on first."""
        while self._output_fd >= 0:
            data = self._read(self._output_fd)
            if not data:  # end of file, or nothing more now (its children hold the pipe)
                break
            self.output.feed(data)
        self.output.close()
        self._close_reader("_channel_fd")
        self._close_reader("_output_fd")
        if not self.output_closed.done():
            self.output_closed.set_result(None)
        for name in ("_watch_w", "_control_w"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)
