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
"""

from __future__ import annotations

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

from tapster.endpoints._inherited import Listener, inherit
from tapster.supervisor._channel import ChannelWriter
from tapster.supervisor._heartbeat import Heartbeat, beat_interval

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
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a worker description: {exc}") from None


class WorkerRole:
    """The runner's role in a worker (see the module docstring)."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.title = f" [worker {spec.number}]"
        self.switches_user = True
        self.channel = ChannelWriter(spec.channel)
        self._heartbeat: Heartbeat | None = None
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
        )

    def setup(self, runner: Runner) -> None:
        """Report readiness (or the start-up error) to the supervisor."""
        runner.readiness = _ChannelReadiness(self.channel)  # type: ignore[assignment]

    @contextlib.contextmanager
    def binding(self) -> Iterator[None]:
        """Take the supervisor's listeners instead of binding."""
        inherit(self.spec.listeners)
        yield

    def loop_started(self, runner: Runner) -> None:
        """Say which thread runs the loop, start the heartbeat, arm the stack dump."""
        assert runner.loop is not None
        faulthandler.register(DUMP_SIGNAL, file=sys.stderr.fileno(), all_threads=True)
        self.channel.send("hello", thread=threading.get_ident())
        self._heartbeat = Heartbeat(runner.loop, self.channel, beat_interval(self.spec.timeout))
        self._heartbeat.start()

    def serve(self, runner: Runner) -> int:
        """Serve like a single process."""
        try:
            return runner.serve()
        finally:
            if self._heartbeat is not None:
                self._heartbeat.stop()


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
