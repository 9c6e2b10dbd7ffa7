"""The supervisor: N worker processes on the listeners it bound, kept alive and healthy.

The supervisor is the ``tapster`` process of ``--workers N``. It walks the
runner's start-up steps like a single process (pidfile, build, logs, daemon,
bind while privileged, drop privileges) except that its tree is only bound,
never started: it serves nothing and runs no protocol. Then, on its own
event loop, it:

* spawns N workers (``_process``) and reports ready (to ``-D``'s launcher, to
  systemd) once all N are;
* keeps one *spare* worker started ahead (unless ``--no-spare-worker``):
  imported, built and on its listeners, waiting to be told its number, so
  that a replacement (after a crash, a hang, for recycling, on ``SIGTTIN``)
  serves within milliseconds instead of a fresh interpreter's second; a new
  spare is started once the one taken over is ready;
* replaces a worker that exits, at once after a stable run and with
  ``tapster.procmon``'s backoff when it keeps dying; a worker that fails to
  start stops everything (exit 1, its error in one line) during start-up, or
  when it fails the same way :data:`START_FAILURES` times in a row later;
* finds hung workers (no heartbeat for ``--worker-timeout``): their stack is
  dumped through ``faulthandler``, logged with the frame the loop is stuck
  in, and the worker is killed, its replacement already starting;
* recycles workers (``--max-worker-memory``, ``--max-worker-age``), one at a
  time, the replacement ready before the old worker is told to drain;
* adds or removes a worker on ``SIGTTIN`` / ``SIGTTOU``, reopens its log on
  ``SIGUSR1`` / ``SIGHUP``, and on ``SIGTERM`` / ``SIGINT`` lets every worker
  drain within ``--shutdown-timeout``, then exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from tapster import __version__
from tapster.endpoints._inherited import Listener, recording
from tapster.procmon._backoff import Backoff, RestartPolicy
from tapster.procmon._monitor import describe_exit
from tapster.procmon._reaper import ExitWatcher, make_exit_watcher
from tapster.runner import _systemd
from tapster.runner._signals import HANDLED, SignalWatcher
from tapster.supervisor._process import WorkerProcess
from tapster.supervisor._recycle import MEMORY_INTERVAL, AgeLimit, MemoryLimit, resident_memory
from tapster.supervisor._stack import stuck_frame
from tapster.supervisor._worker import DUMP_SIGNAL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tapster.endpoints._server import ServerEndpoint
    from tapster.runner._run import Runner
    from tapster.runner._settings import RunSettings

__all__ = ["START_FAILURES", "SupervisorRole"]

log = logging.getLogger("tapster.supervisor")
runner_log = logging.getLogger("tapster.runner")

#: Failed starts of one worker in a row, the same way, that stop the supervisor.
START_FAILURES = 3
#: Seconds between two looks at the workers (heartbeats, stack dumps, recycling).
TICK = 0.1
#: A worker must be ready within its timeout, but is given at least this long.
MIN_START_TIME = 10.0
#: Seconds to collect a stack dump after its first line arrived (at most 4 times this).
DUMP_WAIT = 0.25
#: The restart policy of workers: at once after a run of a second or more.
RESTARTS = RestartPolicy(threshold=1.0, min_restart_delay=0.1, max_restart_delay=10.0)

_EXIT_OK, _EXIT_FAILURE, _EXIT_FORCED = 0, 1, 130
_SIGNALS = (*HANDLED, signal.SIGTTIN, signal.SIGTTOU)


class SupervisorRole:
    """The runner's role with ``--workers N``: bind and note the listeners, then supervise."""

    title = " [supervisor]"
    #: The supervisor keeps the launching user's rights: each worker builds its
    #: tree as that user and switches itself, exactly as a single process does.
    switches_user = False

    def __init__(self, settings: RunSettings, argv: Sequence[str] | None) -> None:
        self.argv = list(argv) if argv is not None else sys.argv[1:]
        # Workers start where the command was typed, so relative paths mean the same.
        self.launch_dir = os.getcwd()
        self.reuse_port = settings.reuse_port
        self.bound: list[tuple[ServerEndpoint, list[socket.socket]]] = []

    def adjust(self, settings: RunSettings) -> RunSettings:
        """The settings, unchanged."""
        return settings

    def setup(self, runner: Runner) -> None:
        """Nothing to set up."""

    @contextlib.contextmanager
    def binding(self) -> Iterator[None]:
        """Bind as usual, noting every listener for the workers (``--reuse-port``: reserve TCP)."""
        with recording(reuse_port=self.reuse_port) as found:
            yield
        self.bound = found

    def loop_started(self, runner: Runner) -> None:
        """Not called: the supervisor runs its own loop."""

    def serve(self, runner: Runner) -> int:
        """Supervise the workers until stopped; the exit status."""
        assert runner.loop is not None
        listeners: list[Listener] = [
            (endpoint.description, [sock.fileno() for sock in sockets])
            for endpoint, sockets in self.bound
        ]
        supervisor = Supervisor(runner, self.argv, self.launch_dir, listeners)
        status = runner.loop.run_until_complete(supervisor.run())
        if status == _EXIT_FORCED:
            runner._exit_now(status)
        return status


@dataclass(eq=False)
class _Slot:
    """One of the N places a worker fills; its number is the worker's."""

    number: int
    backoff: Backoff = field(default_factory=lambda: Backoff(RESTARTS))
    current: WorkerProcess | None = None
    candidate: WorkerProcess | None = None  # its replacement, while recycling
    restart: asyncio.TimerHandle | None = None
    failures: int = 0
    last_failure: str = ""

    @property
    def name(self) -> str:
        """``worker N``, or ``the spare worker`` for the spare's slot (number 0)."""
        return f"worker {self.number}" if self.number else "the spare worker"


@dataclass(eq=False)
class _Watch:
    """What the supervisor keeps about one worker besides the process."""

    slot: _Slot
    memory: MemoryLimit | None = None
    age: AgeLimit | None = None
    hung_at: float = 0.0
    silent: float = 0.0
    stop_deadline: float = 0.0
    recycling: str = ""


class _FatalError(Exception):
    """A worker cannot start: stop everything, exit 1 with this line."""


class Supervisor:
    """The supervising loop (see the module docstring)."""

    def __init__(
        self, runner: Runner, argv: Sequence[str], cwd: str, listeners: list[Listener]
    ) -> None:
        self.runner = runner
        self.settings = runner.settings
        self.argv = argv
        self.cwd = cwd
        self.listeners = listeners
        self.slots: list[_Slot] = []
        #: Where the spare worker lives (number 0, never in ``slots``).
        self.spare = _Slot(0)
        self.keep_spare = not self.settings.no_spare_worker
        self.workers: dict[WorkerProcess, _Watch] = {}
        self.announced = False
        self.stopping = False
        self._events: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        self._exits: ExitWatcher | None = None
        self._next_memory_check = 0.0
        self._recycle_after = 0.0
        self._handler = runner.logs.handler if runner.logs is not None else None
        timeout = self.settings.worker_timeout
        self._start_time = max(timeout, MIN_START_TIME)

    # -- the loop --------------------------------------------------------------------

    async def run(self) -> int:
        """Start the workers, supervise them until a stop signal; the exit status."""
        loop = asyncio.get_running_loop()
        watcher = SignalWatcher(loop, _SIGNALS)
        watcher.install()
        forward = loop.create_task(self._forward_signals(watcher))
        self._exits = make_exit_watcher(loop)
        try:
            runner_log.info(
                "tapster %s supervisor on %s, loop %s, pid %d",
                __version__,
                sys.version.split()[0],
                self.runner.loop_name,
                os.getpid(),
            )
            runner_log.info(
                "starting application %r with %d workers",
                self.runner.app_name,
                self.settings.workers,
            )
            for number in range(1, int(self.settings.workers or 1) + 1):
                slot = _Slot(number)
                self.slots.append(slot)
                self._fill(slot)
            try:
                return await self._supervise()
            except _FatalError as exc:
                await self._stop_all(min(self.settings.shutdown_timeout, 5.0))
                if self._handler is not None:
                    self._handler.flush()  # the workers' last lines before the error
                from tapster.runner._run import StartupError

                raise StartupError(str(exc)) from None
        finally:
            forward.cancel()
            await asyncio.gather(forward, return_exceptions=True)
            await self._kill_all()
            watcher.restore()
            self._exits.close()
            self._release_listeners()

    async def _forward_signals(self, watcher: SignalWatcher) -> None:
        while True:
            self._events.put_nowait(("signal", await watcher.next()))

    async def _supervise(self) -> int:
        while True:
            try:
                kind, value = await asyncio.wait_for(self._events.get(), TICK)
            except TimeoutError:
                kind, value = "tick", None
            if kind == "fatal":
                raise _FatalError(str(value))
            if kind == "signal":
                assert isinstance(value, int)
                if value in (signal.SIGTERM, signal.SIGINT):
                    return await self._stop(value)
                self._on_signal(value)
            self._tick()

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if signum in (signal.SIGUSR1, signal.SIGHUP):
            logs = self.runner.logs
            if logs is not None and logs.file is not None:
                logs.reopen()
                runner_log.info("%s received: log reopened", name)
        elif signum == signal.SIGTTIN:
            slot = _Slot(max((s.number for s in self.slots), default=0) + 1)
            self.slots.append(slot)
            log.info(
                "%s received: adding worker %d (%d workers)", name, slot.number, len(self.slots)
            )
            self._fill(slot)
        elif signum == signal.SIGTTOU:
            if len(self.slots) <= 1:
                log.info("%s received: keeping the last worker", name)
                return
            slot = self.slots.pop()
            log.info(
                "%s received: removing worker %d (%d workers)", name, slot.number, len(self.slots)
            )
            if slot.restart is not None:
                slot.restart.cancel()
            for worker in (slot.current, slot.candidate):
                if worker is not None:
                    self._drain(worker, "removed")

    # -- workers coming and going ------------------------------------------------------

    def _spawn(self, slot: _Slot) -> WorkerProcess | None:
        """Start a worker for ``slot`` (the spare's: a spare); None when it cannot start.

        A failure to start the process counts as a failed start of the slot (the
        spare's is retried with backoff).
        """
        assert self._exits is not None
        try:
            worker = WorkerProcess(
                slot.number,
                argv=self.argv,
                cwd=self.cwd,
                listeners=self.listeners,
                timeout=self.settings.worker_timeout,
                log_handler=self._handler,
                exits=self._exits,
                on_message=self._on_message,
            )
        except OSError as exc:
            message = f"cannot start {slot.name}: {exc.strerror or exc}"
            if slot is self.spare:  # never fatal: the workers serve without it
                log.warning("%s", message)
                self._schedule(slot, 0.0)
            else:
                self._start_failed(slot, message)
            return None
        watch = _Watch(slot)
        self.workers[worker] = watch
        worker.exited.add_done_callback(lambda fut: self._exited(worker, fut))
        log.debug("started %r", worker)
        return worker

    def _fill(self, slot: _Slot) -> None:
        slot.restart = None
        if self.stopping or slot.current is not None:
            return
        if slot is self.spare:
            slot.current = self._spawn(slot)
        elif slot in self.slots:
            slot.current = self._take_spare(slot) or self._spawn(slot)

    def _take_spare(self, slot: _Slot) -> WorkerProcess | None:
        """The spare worker, now ``slot``'s (told its number), or None when there is none.

        A spare still starting is taken too: it reads its number as soon as it
        is warm, sooner than a new worker would be.
        """
        spare = self.spare.current
        watch = self.workers.get(spare) if spare is not None else None
        if spare is None or watch is None or spare.state not in ("starting", "spare"):
            return None
        self.spare.current = None
        watch.slot = slot
        log.info("%r takes over as worker %d", spare, slot.number)
        spare.promote(slot.number)
        return spare

    def _keep_a_spare(self) -> None:
        """Start a spare once serving is settled: all workers ready, none starting."""
        spare = self.spare
        if (
            not self.keep_spare
            or not self.announced
            or self.stopping
            or spare.current is not None
            or spare.restart is not None
        ):
            return
        if any(worker.state == "starting" for worker in self.workers):
            return  # a start in progress gets the cores first
        self._fill(spare)

    def _on_message(self, worker: WorkerProcess, message: dict[str, object]) -> None:
        kind = message["kind"]
        watch = self.workers.get(worker)
        if watch is None:
            return
        worker.last_beat = time.monotonic()
        if kind == "hello":
            thread = message.get("thread")
            worker.thread = thread if isinstance(thread, int) else None
        elif kind == "ready" and worker.state == "starting" and worker.number:
            self._ready(worker, watch)
        elif kind == "warm" and worker.state == "starting" and watch.slot is self.spare:
            worker.state = "spare"
            log.info("%r warm in %.2f s, ready to take over", worker, worker.uptime)
        elif kind == "failed":
            text = message.get("message")
            worker.failure = str(text) if text else "start-up failed"

    def _ready(self, worker: WorkerProcess, watch: _Watch) -> None:
        worker.state = "ready"
        worker.ready_at = time.monotonic()
        slot = watch.slot
        slot.failures = 0
        settings = self.settings
        if settings.max_worker_memory:
            watch.memory = MemoryLimit(settings.max_worker_memory)
        if settings.max_worker_age:
            watch.age = AgeLimit(worker.ready_at, settings.max_worker_age)
        log.info("%r ready in %.2f s", worker, worker.ready_at - worker.started)
        if slot.candidate is worker:
            old, slot.current, slot.candidate = slot.current, worker, None
            if old is not None:
                reason = self.workers[old].recycling if old in self.workers else ""
                self._drain(old, f"replaced ({reason})" if reason else "replaced")
        self._check_ready()

    def _check_ready(self) -> None:
        if self.announced or self.stopping:
            return
        if not all(s.current is not None and s.current.state == "ready" for s in self.slots):
            return
        self.announced = True
        runner = self.runner
        assert runner.root is not None
        where = runner.root.listening()
        runner_log.info(
            "application %r ready: %d workers (pids %s), listening on %s",
            runner.app_name,
            len(self.slots),
            ", ".join(str(s.current.pid) for s in self.slots if s.current is not None),
            ", ".join(where) if where else "nothing",
        )
        runner._ready = True
        runner.readiness.ready()
        _systemd.notify(f"READY=1\nMAINPID={os.getpid()}")

    def _exited(self, worker: WorkerProcess, fut: asyncio.Future[int]) -> None:
        watch = self.workers.pop(worker, None)
        worker.close()
        if fut.cancelled() or watch is None:
            return
        code = fut.result()
        slot = watch.slot
        self._events.put_nowait(("exited", worker))
        if worker.state in ("stopping", "hung"):
            log.info("%r stopped: %s", worker, describe_exit(code))
            return
        if self.stopping:
            log.warning("%r ended while stopping: %s", worker, describe_exit(code))
            return
        if slot is self.spare:
            self._spare_exited(worker, code)
            return
        if slot.candidate is worker:
            slot.candidate = None
            message = worker.failure or f"it ended during start-up: {describe_exit(code)}"
            delay = slot.backoff.after_exit(0.0)
            self._recycle_after = time.monotonic() + delay
            log.warning("the replacement of worker %d failed to start: %s", slot.number, message)
            return
        if slot.current is worker:
            slot.current = None
        if slot not in self.slots:
            return
        if worker.state == "starting":
            message = worker.failure or (
                f"worker {slot.number} ended during start-up: {describe_exit(code)}"
            )
            if not self._start_failed(slot, message):
                return
        else:
            log.warning(
                "%r ended unexpectedly after %.1f s: %s; replacing it",
                worker,
                worker.uptime,
                describe_exit(code),
            )
        self._schedule(slot, worker.uptime)

    def _spare_exited(self, worker: WorkerProcess, code: int) -> None:
        """The spare ended before it was needed: start another, with backoff.

        Never fatal: the workers keep serving (a replacement is then a fresh start).
        """
        spare = self.spare
        if spare.current is worker:
            spare.current = None
        if worker.state == "starting":
            message = worker.failure or f"it ended during start-up: {describe_exit(code)}"
            log.warning("the spare worker failed to start: %s", message)
            self._schedule(spare, 0.0)
        else:
            log.warning("%r ended unexpectedly: %s", worker, describe_exit(code))
            self._schedule(spare, worker.uptime)

    def _start_failed(self, slot: _Slot, message: str) -> bool:
        """Count a failed start; False when it is fatal (the supervisor stops)."""
        if not self.announced:
            self._events.put_nowait(("fatal", message))
            return False
        slot.failures = slot.failures + 1 if message == slot.last_failure else 1
        slot.last_failure = message
        if slot.failures >= START_FAILURES:
            self._events.put_nowait(
                ("fatal", f"{message} ({slot.name} failed to start {slot.failures} times)")
            )
            return False
        log.warning("%s failed to start: %s", slot.name, message)
        return True

    def _schedule(self, slot: _Slot, runtime: float) -> None:
        delay = slot.backoff.after_exit(runtime)
        if delay <= 0:
            self._fill(slot)
            return
        log.info("restarting %s in %.3g s", slot.name, delay)
        slot.restart = asyncio.get_running_loop().call_later(delay, self._fill, slot)

    def _drain(self, worker: WorkerProcess, why: str) -> None:
        """Tell ``worker`` to stop gracefully (SIGTERM); SIGKILL if it overruns."""
        watch = self.workers.get(worker)
        if watch is None or worker.state in ("stopping", "hung"):
            return
        worker.state = "stopping"
        watch.stop_deadline = time.monotonic() + self.settings.shutdown_timeout + 1.0
        log.info("%r %s: draining it", worker, why)
        worker.signal(signal.SIGTERM)

    # -- periodic checks ---------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        timeout = self.settings.worker_timeout
        for worker, watch in list(self.workers.items()):
            state = worker.state
            if state == "starting" and now - worker.started > self._start_time:
                worker.failure = f"{watch.slot.name} was not ready within {self._start_time:g} s"
                worker.signal(signal.SIGKILL)
            elif state == "ready" and now - worker.last_beat > timeout:
                self._hung(worker, watch, now)
            elif state == "hung":
                self._finish_dump(worker, watch, now)
            elif state == "stopping" and now > watch.stop_deadline:
                log.warning("%r did not stop in time; sending SIGKILL", worker)
                worker.signal(signal.SIGKILL)
                watch.stop_deadline = now + 3600.0
        self._keep_a_spare()
        if now >= self._next_memory_check:
            self._next_memory_check = now + MEMORY_INTERVAL
            self._check_recycling(now)

    def _hung(self, worker: WorkerProcess, watch: _Watch, now: float) -> None:
        """No heartbeat: ask for a stack dump, start the replacement at once."""
        worker.state = "hung"
        watch.hung_at = now
        watch.silent = now - worker.last_beat
        worker.output.capture = []
        worker.signal(DUMP_SIGNAL)
        slot = watch.slot
        if slot.candidate is worker:
            slot.candidate = None
        if slot.current is worker:
            slot.current = None
            self._fill(slot)

    def _finish_dump(self, worker: WorkerProcess, watch: _Watch, now: float) -> None:
        lines = worker.output.capture
        if lines is None:
            return
        waited = now - watch.hung_at
        if waited < DUMP_WAIT or (not lines and waited < 4 * DUMP_WAIT):
            return
        worker.output.capture = None
        where = stuck_frame(lines, worker.thread)
        log.error(
            "%r sent no heartbeat for %.1f s: its event loop is stuck at %s; killing it. "
            "Its stack:\n%s",
            worker,
            watch.silent,
            where or "(no stack received)",
            "\n".join(lines).rstrip() or "(none)",
        )
        worker.signal(signal.SIGKILL)

    def _check_recycling(self, now: float) -> None:
        if now < self._recycle_after:
            return
        if any(slot.candidate is not None for slot in self.slots):
            return  # one at a time: a replacement is starting
        if any(w.recycling and p.state == "stopping" for p, w in self.workers.items()):
            return  # one at a time: a replaced worker is still draining
        for slot in self.slots:
            worker = slot.current
            watch = self.workers.get(worker) if worker is not None else None
            if worker is None or watch is None or worker.state != "ready":
                continue
            reason = ""
            if watch.memory is not None:
                rss = resident_memory(worker.pid)
                if rss is not None and watch.memory.due(rss):
                    reason = (
                        f"resident memory {rss / 2**20:.1f} MiB over "
                        f"{watch.memory.limit / 2**20:.1f} MiB"
                    )
            if not reason and watch.age is not None and watch.age.due(now):
                reason = f"age {now - worker.started:.0f} s"
            if reason:
                log.info("recycling %r: %s", worker, reason)
                watch.recycling = reason
                slot.candidate = self._take_spare(slot) or self._spawn(slot)
                return

    # -- stopping ----------------------------------------------------------------------

    async def _stop(self, signum: int) -> int:
        timeout = self.settings.shutdown_timeout
        runner_log.info(
            "%s received: stopping %d workers (within %gs)",
            signal.Signals(signum).name,
            sum(1 for worker in self.workers if worker.number),
            timeout,
        )
        _systemd.notify("STOPPING=1")
        status = await self._stop_all(timeout)
        if status == _EXIT_OK:
            runner_log.info("application %r stopped", self.runner.app_name)
        return status

    async def _stop_all(self, timeout: float) -> int:
        """Drain every worker within ``timeout``; SIGKILL what is left; wait for them all."""
        self.stopping = True
        for slot in self.slots:
            if slot.restart is not None:
                slot.restart.cancel()
        for worker, watch in list(self.workers.items()):
            if worker.state == "hung":
                worker.signal(signal.SIGKILL)
                continue
            worker.state = "stopping"
            watch.stop_deadline = time.monotonic() + timeout
            worker.signal(signal.SIGTERM)
        while self.workers:
            try:
                kind, value = await asyncio.wait_for(self._events.get(), TICK)
            except TimeoutError:
                kind, value = "tick", None
            if kind == "signal" and value == signal.SIGINT:
                log.warning("second SIGINT: killing the workers without waiting")
                await self._kill_all()
                return _EXIT_FORCED
            if kind == "signal" and value in (signal.SIGUSR1, signal.SIGHUP):
                self._on_signal(int(value))  # type: ignore[call-overload]
            now = time.monotonic()
            for worker, watch in list(self.workers.items()):
                if now > watch.stop_deadline:
                    log.warning("%r did not stop within %g s; sending SIGKILL", worker, timeout)
                    worker.signal(signal.SIGKILL)
                    watch.stop_deadline = now + 3600.0
        return _EXIT_OK

    async def _kill_all(self) -> None:
        """SIGKILL every worker left and wait until each is reaped."""
        pending = [worker.exited for worker in self.workers]
        for worker in list(self.workers):
            worker.signal(signal.SIGKILL)
        if pending:
            await asyncio.wait(pending, timeout=5.0)

    def _release_listeners(self) -> None:
        """Close the listeners (and remove unix socket files): every worker is gone."""
        root = self.runner.root
        if root is not None:
            with contextlib.suppress(Exception):
                root.release_privileged()
