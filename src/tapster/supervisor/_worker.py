"""The worker's side: a ``tapster`` process started by a supervisor.

A worker is the ordinary ``tapster`` command line run again by the supervisor,
in a fresh interpreter, with ``$TAPSTER_WORKER`` describing what it inherited
(a JSON object, see :class:`WorkerSpec`). It walks the runner's usual steps
with these differences (:class:`WorkerRole`):

* no daemon and no pidfile: the supervisor has them; ``--uid``, ``--gid`` and
  ``--umask`` apply as in a single process (build as the launching user,
  bind, then switch);
* logs go to stderr, a pipe the supervisor reads and writes into the one
  configured log (with ``--syslog`` each worker logs to syslog itself);
* its listeners are the supervisor's (``tapster.endpoints._inherited``);
* "ready" or the start-up error goes to the supervisor over the channel;
* its loop sends heartbeats, and ``SIGUSR2`` writes every thread's stack to
  stderr (``faulthandler``), for the supervisor to log when the loop hangs;
* it never outlives the supervisor: the kernel sends it ``SIGTERM`` when the
  supervisor dies (``PR_SET_PDEATHSIG``), and a thread watching a pipe from
  the supervisor ends the process a second later whatever it is doing.

A *spare* worker (number 0) walks every step up to serving (imports, build,
listeners, privilege switch, event loop), says ``warm``, and waits on its
control pipe: a ``go`` line gives it a number, and it then starts its tree
in milliseconds, where a fresh interpreter would take about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import faulthandler
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

from tapster.endpoints._inherited import Listener, inherit, start_listening
from tapster.runner._signals import SignalWatcher
from tapster.supervisor._channel import ChannelWriter, LineSplitter, decode
from tapster.supervisor._heartbeat import Heartbeat, beat_interval
from tapster.supervisor._operations import MetricsSender, ReadinessSender

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tapster.runner._run import Runner
    from tapster.runner._settings import RunSettings

__all__ = ["DUMP_SIGNAL", "ORPHAN_GRACE", "WorkerRole", "WorkerSpec"]

#: The signal that makes a worker write its threads' stacks to stderr.
DUMP_SIGNAL = signal.SIGUSR2
#: Seconds an orphaned worker (its supervisor is gone) has to stop.
ORPHAN_GRACE = 0.8
_PR_SET_PDEATHSIG = 1


class WorkerSpec(NamedTuple):
    """What a supervisor tells a worker in ``$TAPSTER_WORKER``."""

    number: int
    supervisor: int
    channel: int
    watch: int
    timeout: float
    listeners: list[Listener]
    #: The pipe a spare worker (``number`` 0) waits on for ``go``; -1 for the others.
    control: int = -1

    def to_json(self) -> str:
        """The environment variable's value."""
        return json.dumps(self._asdict())

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        """Read the environment variable; ValueError when it is not a spec."""
        data: Any = json.loads(text)
        try:
            return cls(
                number=int(data["number"]),
                supervisor=int(data["supervisor"]),
                channel=int(data["channel"]),
                watch=int(data["watch"]),
                timeout=float(data["timeout"]),
                listeners=[(str(d), [int(fd) for fd in fds]) for d, fds in data["listeners"]],
                control=int(data.get("control", -1)),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a worker description: {exc}") from None


class WorkerRole:
    """The runner's role in a worker (see the module docstring)."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.title = f" [worker {spec.number}]" if spec.number else " [spare]"
        self.switches_user = True
        self.upgraded = False
        self.shows_tracebacks = False
        self.channel = ChannelWriter(spec.channel)
        self._heartbeat: Heartbeat | None = None
        self._metrics: MetricsSender | None = None
        self._readiness: ReadinessSender | None = None
        if spec.control >= 0:
            os.set_inheritable(spec.control, False)
        _die_with(spec.supervisor, spec.watch)

    @classmethod
    def from_environment(cls, value: str) -> WorkerRole:
        """The role ``$TAPSTER_WORKER`` describes; the variable is removed (for child processes)."""
        os.environ.pop("TAPSTER_WORKER", None)
        try:
            spec = WorkerSpec.from_json(value)
        except ValueError as exc:
            sys.stderr.write(f"tapster: bad $TAPSTER_WORKER: {exc}\n")
            raise SystemExit(1) from None
        return cls(spec)

    def adjust(self, settings: RunSettings) -> RunSettings:
        """Drop what the supervisor does; log to stderr (the supervisor's pipe).

        ``--uid``, ``--gid`` and ``--umask`` stay: the worker builds its tree as
        the launching user and switches afterwards, as a single process does.
        """
        return settings._replace(
            daemon=False,
            pidfile="",
            logfile=None,
            profile=None,
            savestats=False,
            workers=None,
            admin=None,  # the supervisor serves it
            shutdown_delay=0.0,  # the supervisor waits it out; told to stop, a worker stops
        )

    def setup(self, runner: Runner) -> None:
        """Report readiness (or the start-up error) to the supervisor."""
        runner.readiness = _ChannelReadiness(self.channel)  # type: ignore[assignment]

    @contextlib.contextmanager
    def binding(self) -> Iterator[None]:
        """Take the supervisor's listeners instead of binding."""
        inherit(self.spec.listeners, defer_listen=not self.spec.number)
        yield

    def loop_started(self, runner: Runner) -> None:
        """Say which thread runs the loop; start heartbeats, reports; arm the stack dump."""
        assert runner.loop is not None
        faulthandler.register(DUMP_SIGNAL, file=sys.stderr.fileno(), all_threads=True)
        self.channel.send("hello", thread=threading.get_ident())
        self._heartbeat = Heartbeat(runner.loop, self.channel, beat_interval(self.spec.timeout))
        self._heartbeat.start()
        self._metrics = MetricsSender(runner.loop, self.channel)
        self._metrics.start()
        self._readiness = ReadinessSender(runner, self.channel)
        self._readiness.start()

    def serve(self, runner: Runner) -> int:
        """Serve like a single process (a spare first waits for its number)."""
        if not self.spec.number:
            number = self._wait_for_go(runner)
            if number is None:
                return 0  # stopped (or the supervisor gone) before it was needed
            self.spec = self.spec._replace(number=number)
            self.title = f" [worker {number}]"
            runner.set_title()
            start_listening()
        try:
            return runner.serve()
        finally:
            if self._heartbeat is not None:
                self._heartbeat.stop()
            if self._readiness is not None:
                self._readiness.stop()
            if self._metrics is not None:
                self._metrics.stop()  # the last counts, before the supervisor sees the exit

    def _wait_for_go(self, runner: Runner) -> int | None:
        """Say ``warm``, then wait for ``go``: the number it got, None when told to stop."""
        loop = runner.loop
        assert loop is not None
        fd = self.spec.control
        os.set_blocking(fd, False)
        got: asyncio.Future[int | None] = loop.create_future()
        lines = LineSplitter()

        def readable() -> None:
            try:
                data = os.read(fd, 4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data and not got.done():
                got.set_result(None)  # the supervisor is gone
            for line in lines.feed(data):
                message = decode(line)
                number = message.get("number") if message is not None else None
                is_go = message is not None and message["kind"] == "go"
                if is_go and isinstance(number, int) and not got.done():
                    got.set_result(number)

        async def wait() -> int | None:
            watcher = SignalWatcher(loop, (signal.SIGTERM, signal.SIGINT))
            watcher.install()
            stop: asyncio.Future[int] = asyncio.ensure_future(watcher.next())
            try:
                either: list[asyncio.Future[Any]] = [got, stop]
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                return got.result() if got.done() and not stop.done() else None
            finally:
                stop.cancel()
                watcher.restore()

        loop.add_reader(fd, readable)
        self.channel.send("warm")
        try:
            return loop.run_until_complete(wait())
        finally:
            loop.remove_reader(fd)
            os.close(fd)


class _ChannelReadiness:
    """The runner's readiness report, sent over the channel instead of a daemon's pipe."""

    def __init__(self, channel: ChannelWriter) -> None:
        self._channel = channel
        self.pending = True

    def ready(self) -> None:
        """The tree listens."""
        if self.pending:
            self.pending = False
            self._channel.send("ready")

    def failed(self, message: str) -> None:
        """Start-up failed: the supervisor shows ``message``."""
        if self.pending:
            self.pending = False
            line = " ".join(message.split())[:2000] or "start-up failed"
            if not self._channel.send("failed", message=line):
                sys.stderr.write(f"tapster: {line}\n")


def _die_with(supervisor: int, watch_fd: int) -> None:
    """Make sure this process does not outlive ``supervisor``.

    ``PR_SET_PDEATHSIG`` has the kernel send SIGTERM (a graceful stop) when the
    supervisor dies; a thread blocked reading ``watch_fd`` (the supervisor
    holds the other end and never writes) sees end of file at that moment too,
    sends SIGTERM itself (where prctl is missing) and ends the process
    :data:`ORPHAN_GRACE` seconds later, even if its event loop is stuck.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    os.set_inheritable(watch_fd, False)

    def watch() -> None:
        while True:
            try:
                if not os.read(watch_fd, 1):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        with contextlib.suppress(OSError):
            os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(ORPHAN_GRACE)
        os._exit(1)

    threading.Thread(target=watch, name="tapster-supervisor-watch", daemon=True).start()
    if os.getppid() != supervisor:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
