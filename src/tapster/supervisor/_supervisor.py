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
* upgrades in place on ``SIGUSR2`` (``_upgrade``): re-executes itself, same
  PID, handing the listeners and the workers to the new image, which then
  reloads them;
* reloads on ``SIGHUP``: each worker in turn is replaced by a
  fresh interpreter (new code), ready before the old one drains; a new
  worker that cannot start ends the reload there, the old ones serving;
* adds or removes a worker on ``SIGTTIN`` / ``SIGTTOU``, reopens its log on
  ``SIGUSR1`` / ``SIGHUP``, and on ``SIGTERM`` / ``SIGINT`` lets every worker
  drain within ``--shutdown-timeout`` (after ``--shutdown-delay``), then exits 0;
* tells systemd each step (``tapster.runner._lifecycle``) and pings its
  watchdog while its loop runs and every worker's heartbeat is fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from tapster import __version__
from tapster.endpoints._inherited import Listener, inherit, recording, stop_inheriting
from tapster.procmon._backoff import Backoff, RestartPolicy
from tapster.procmon._monitor import describe_exit
from tapster.procmon._reaper import ExitWatcher, make_exit_watcher
from tapster.runner._signals import HANDLED, SignalWatcher
from tapster.runner._systemd import Watchdog
from tapster.supervisor._operations import SupervisorSubject
from tapster.supervisor._process import WorkerProcess
from tapster.supervisor._recycle import MEMORY_INTERVAL, AgeLimit, MemoryLimit, resident_memory
from tapster.supervisor._stack import stuck_frame
from tapster.supervisor._upgrade import UPGRADE_ENV, Handover, execute
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
_SIGNALS = (*HANDLED, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2)


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
        #: What the previous image handed over, when this supervisor was re-executed.
        self.handover: Handover | None = None
        spec = os.environ.pop(UPGRADE_ENV, None)
        if spec is not None:
            try:
                self.handover = Handover.from_json(spec)
            except ValueError as exc:
                sys.stderr.write(f"tapster: bad ${UPGRADE_ENV}: {exc}\n")
                raise SystemExit(1) from None
        #: An upgraded supervisor is a daemon already, if it was one: no second fork.
        self.upgraded = self.handover is not None
        self.shows_tracebacks = False

    def adjust(self, settings: RunSettings) -> RunSettings:
        """The settings, unchanged."""
        return settings

    def setup(self, runner: Runner) -> None:
        """Nothing to set up."""

    @contextlib.contextmanager
    def binding(self) -> Iterator[None]:
        """Bind as usual, noting every listener for the workers (``--reuse-port``: reserve TCP)."""
        handover = self.handover
        if handover is None:
            with recording(reuse_port=self.reuse_port) as found:
                yield
            self.bound = found
            return
        # Re-executed: the listeners are the previous image's, taken as they are.
        with recording() as found:
            inherit(handover.listeners, keep_reserved=True)
            try:
                yield
            finally:
                stop_inheriting()
        self.bound = found
        for _, fds in handover.listeners:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)  # the table took duplicates

    def loop_started(self, runner: Runner) -> None:
        """Not called: the supervisor runs its own loop."""

    def serve(self, runner: Runner) -> int:
        """Supervise the workers until stopped; the exit status."""
        assert runner.loop is not None
        listeners: list[Listener] = [
            (endpoint.description, [sock.fileno() for sock in sockets])
            for endpoint, sockets in self.bound
        ]
        sockets = [sock for _, socks in self.bound for sock in socks]
        supervisor = Supervisor(
            runner, self.argv, self.launch_dir, listeners, sockets=sockets, handover=self.handover
        )
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


@dataclass(eq=False)
class _Reload:
    """A reload under way: the slots still to replace, and the one being replaced."""

    pending: list[_Slot]
    started: float = field(default_factory=time.monotonic)
    slot: _Slot | None = None
    replaced: int = 0


class _FatalError(Exception):
    """A worker cannot start: stop everything, exit 1 with this line."""


class Supervisor:
    """The supervising loop (see the module docstring)."""

    def __init__(
        self,
        runner: Runner,
        argv: Sequence[str],
        cwd: str,
        listeners: list[Listener],
        *,
        sockets: Sequence[socket.socket] = (),
        handover: Handover | None = None,
    ) -> None:
        self.runner = runner
        self.handover = handover
        self.upgrading = False
        self.lifecycle = runner.lifecycle
        self.notifier = runner.lifecycle.notifier
        self.sockets = list(sockets)
        self.reload: _Reload | None = None
        self.last_reload = ""
        self.last_error = ""
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
        ops = runner.ops
        self.admin = ops.admin if ops is not None else None
        self.subject = SupervisorSubject(self) if self.admin is not None else None
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
        watchdog = Watchdog(loop, self.notifier, self._healthy)
        watchdog.start()
        try:
            await self._serve_admin()
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
            if not self._adopt():
                for number in range(1, int(self.settings.workers or 1) + 1):
                    slot = _Slot(number)
                    self.slots.append(slot)
                    self._fill(slot)
                self.lifecycle.set_status(f"starting {len(self.slots)} workers")
                self.notifier.extend_timeout(self._start_time + 5.0)
            try:
                return await self._supervise()
            except _FatalError as exc:
                await self._stop_all(min(self.settings.shutdown_timeout, 5.0))
                if self._handler is not None:
                    self._handler.flush()  # the workers' last lines before the error
                from tapster.runner._run import StartupError

                raise StartupError(str(exc)) from None
        finally:
            watchdog.stop()
            forward.cancel()
            await asyncio.gather(forward, return_exceptions=True)
            await self._kill_all()
            if self.admin is not None:
                await self.admin.aclose()
            watcher.restore()
            self._exits.close()
            self._release_listeners()

    async def _serve_admin(self) -> None:
        """Serve ``--admin`` on this loop, which runs no user code (see ``_operations``)."""
        if self.admin is None or self.subject is None:
            return
        assert self.runner.ops is not None
        self.runner.ops.recent.attach()
        await self.admin.serve(self.subject)
        self.admin.announce()

    def request_signal(self, signum: int) -> None:
        """Act as if ``signum`` had arrived (the admin endpoint's control actions)."""
        self._events.put_nowait(("signal", signum))

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
            self._reopen_logs(name)
            if signum == signal.SIGHUP:
                self._start_reload(name)
        elif signum == signal.SIGUSR2:
            self._start_upgrade(name)
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

    def _reopen_logs(self, name: str) -> None:
        logs = self.runner.logs
        if logs is not None and logs.file is not None:
            try:
                logs.reopen()
            except Exception as exc:  # said in the file still open
                runner_log.warning("%s received: %s", name, exc)
            else:
                runner_log.info("%s received: log reopened", name)

    def _healthy(self) -> bool:
        """For the watchdog: every serving worker's loop beat within ``WatchdogSec=``.

        The supervisor's own loop is alive, or this would not run at all.
        """
        limit = self.notifier.watchdog or 0.0
        now = time.monotonic()
        return all(
            now - worker.last_beat < limit for worker in self.workers if worker.state == "ready"
        )

    def summary(self) -> str:
        """The one-line status: workers ready, the last reload, the last error."""
        ready = sum(1 for w in self.workers if w.number and w.state == "ready")
        parts = [f"{ready} of {len(self.slots)} workers ready"]
        if self.last_reload:
            parts.append(self.last_reload)
        if self.last_error:
            parts.append(f"last error: {self.last_error}")
        return "; ".join(parts)

    # -- reload: fresh workers, one at a time --------------------------------------------

    def _start_reload(self, name: str) -> None:
        """Replace every worker, one at a time, by a fresh interpreter (new code)."""
        if not self.announced or self.stopping:
            log.info("%s received: not serving yet, nothing to reload", name)
            return
        if self.reload is not None or self.upgrading:
            log.info("%s received: a reload or an upgrade is already under way", name)
            return
        count = len(self.slots)
        log.info("%s received: reloading, replacing %d workers one at a time", name, count)
        self.lifecycle.set_reloading(f"reloading: replacing {count} workers one at a time")
        self._roll()

    def _roll(self) -> None:
        """Start replacing every worker, one at a time (a reload, or after an upgrade)."""
        self.reload = _Reload(pending=list(self.slots))
        spare = self.spare
        if spare.restart is not None:
            spare.restart.cancel()
            spare.restart = None
        if spare.current is not None:  # it runs the old code
            old, spare.current = spare.current, None
            self._drain(old, "runs the old code")
        self._reload_next()

    def _reload_next(self) -> None:
        reload = self.reload
        if reload is None:
            return
        reload.slot = None
        while reload.pending:
            slot = reload.pending[0]
            if slot not in self.slots or slot.current is None:
                reload.pending.pop(0)  # removed, or being restarted (fresh) anyway
                continue
            if slot.candidate is not None:
                return  # a recycle of this slot is under way: after it (see _tick)
            reload.pending.pop(0)
            reload.slot = slot
            slot.candidate = self._spawn(slot)  # never the spare: it runs the old code
            if slot.candidate is None:
                self._reload_failed(slot, "its process could not be started")
            return
        took = time.monotonic() - reload.started
        self.reload = None
        done = "upgraded" if self.handover is not None else "reloaded"
        self.handover = None
        self.last_reload = f"{done} at {time.strftime('%H:%M:%S')}"
        log.info("reload done: %d workers replaced in %.2f s", reload.replaced, took)
        self.lifecycle.set_ready(self.summary())

    def _reload_failed(self, slot: _Slot, message: str) -> None:
        """A fresh worker could not start: the reload stops, the old workers keep serving."""
        self.reload = None
        self.handover = None
        self.last_error = f"reload failed at {time.strftime('%H:%M:%S')}: {message}"
        log.error(
            "reload failed: the new worker %d cannot start: %s; the old workers keep serving",
            slot.number,
            message,
        )
        self.lifecycle.set_ready(self.summary())

    # -- upgrade: re-execute in place --------------------------------------------------

    def _start_upgrade(self, name: str) -> None:
        """Check the new code with a fresh spare; once it is warm, re-execute (``_upgrade``)."""
        if not self.announced or self.stopping:
            log.info("%s received: not serving yet, no upgrade", name)
            return
        if self.reload is not None or self.upgrading:
            log.info("%s received: a reload or an upgrade is already under way", name)
            return
        self.upgrading = True
        runner_log.info("%s received: upgrading in place; checking the new code first", name)
        self.lifecycle.set_reloading("upgrading: checking the new code")
        spare = self.spare
        if spare.restart is not None:
            spare.restart.cancel()
            spare.restart = None
        if spare.current is not None:
            old, spare.current = spare.current, None
            self._drain(old, "runs the old code")
        spare.current = self._spawn(spare)
        if spare.current is None:
            self._upgrade_failed("its process could not be started")

    def _upgrade_failed(self, message: str) -> None:
        self.upgrading = False
        self.last_error = f"upgrade failed at {time.strftime('%H:%M:%S')}: {message}"
        log.error("upgrade failed: the new code cannot start: %s; this supervisor goes on", message)
        self.lifecycle.set_ready(self.summary())

    def _exec_upgrade(self, check: WorkerProcess) -> None:
        """The new code started: hand everything over and re-execute this process."""
        handed = []
        for worker in list(self.workers):
            adopted = worker.handover()
            if adopted is not None:
                handed.append(adopted)
                continue
            # A spare (the check among them), a start under way, a hung worker: not kept.
            worker.signal(signal.SIGKILL)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(worker.pid, 0)
        handover = Handover(self.listeners, handed, self.summary())
        runner_log.info(
            "upgrading: the new code started (pid %d); re-executing the supervisor (pid %d), "
            "handing over %d workers",
            check.pid,
            os.getpid(),
            len(handed),
        )
        if self._handler is not None:
            self._handler.flush()
        error = execute(list(self.argv), self.cwd, handover)
        # Only when the exec failed: this image goes on, without the killed spare.
        self._upgrade_failed(f"cannot re-execute {sys.executable}: {error.strerror or error}")

    def _adopt(self) -> bool:
        """Take the workers the previous image handed over; False when there is nothing."""
        handover = self.handover
        if handover is None:
            return False
        assert self._exits is not None
        now = time.monotonic()
        for adopted in sorted(handover.workers, key=lambda w: w.number):
            worker = WorkerProcess.adopt(
                adopted, log_handler=self._handler, exits=self._exits, on_message=self._on_message
            )
            slot = _Slot(adopted.number)
            watch = _Watch(slot)
            self.workers[worker] = watch
            worker.exited.add_done_callback(functools.partial(self._exited, worker))
            if adopted.state == "ready":
                slot.current = worker
                self.slots.append(slot)
            else:
                watch.stop_deadline = now + self.settings.shutdown_timeout + 1.0
        if not self.slots:
            self.handover = None
            log.warning("upgraded, but no worker was handed over: starting them afresh")
            return False
        self.announced = True
        self.runner._ready = True
        runner_log.info(
            "upgraded in place: supervisor pid %d adopted %d workers (pids %s); "
            "replacing them with the new code",
            os.getpid(),
            len(self.slots),
            ", ".join(str(s.current.pid) for s in self.slots if s.current is not None),
        )
        self.lifecycle.phase = "reloading"
        self.lifecycle.set_status(f"upgraded in place: replacing {len(self.slots)} workers")
        self._roll()
        return True

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
        if self.upgrading:
            return None  # the spare is the check of the new code
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
            or self.reload is not None
            or self.upgrading
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
            if self.upgrading:
                self._exec_upgrade(worker)
        elif kind == "failed":
            text = message.get("message")
            worker.failure = str(text) if text else "start-up failed"
        elif kind == "metrics" and self.subject is not None:
            self.subject.worker_metrics(worker, message)
        elif kind == "readiness" and self.subject is not None:
            self.subject.worker_readiness(worker, message)

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
            reloading = self.reload is not None and self.reload.slot is slot
            if old is not None:
                reason = self.workers[old].recycling if old in self.workers else ""
                reason = "reload" if reloading else reason
                self._drain(old, f"replaced ({reason})" if reason else "replaced")
            if reloading:
                assert self.reload is not None
                self.reload.replaced += 1
                self._reload_next()
        if not self.announced and not self.stopping:
            self.notifier.extend_timeout(self._start_time + 5.0)  # progress: more time
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
        self.lifecycle.set_ready(self.summary())

    def _exited(self, worker: WorkerProcess, fut: asyncio.Future[int]) -> None:
        watch = self.workers.pop(worker, None)
        worker.close()
        if fut.cancelled() or watch is None:
            return
        code = fut.result()
        slot = watch.slot
        self._events.put_nowait(("exited", worker))
        if self.subject is not None:
            self.subject.worker_exited(worker, replaced=not self.stopping)
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
            if self.reload is not None and self.reload.slot is slot:
                self._reload_failed(slot, message)
                return
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
            if self.upgrading:
                self._upgrade_failed(message)
                self._schedule(spare, 0.0)
                return
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
        if self.reload is not None and self.reload.slot is None:
            self._reload_next()  # it waited for a recycle to end
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
        name = signal.Signals(signum).name
        delay = self.settings.shutdown_delay
        if delay > 0 and signum == signal.SIGTERM:
            await self._delay_stop(name, delay, timeout)
        count = sum(1 for worker in self.workers if worker.number)
        runner_log.info("%s received: stopping %d workers (within %gs)", name, count, timeout)
        self.lifecycle.set_stopping(
            f"stopping {self.runner.app_name}: draining {count} workers (within {timeout:g} s)"
        )
        self.notifier.extend_timeout(timeout + 2.0)
        # Only the workers hold the listeners now: the last one to stop takes what
        # is queued before the socket closes, instead of the supervisor resetting it.
        for sock in self.sockets:
            sock.close()
        status = await self._stop_all(timeout)
        if status == _EXIT_OK:
            runner_log.info("application %r stopped", self.runner.app_name)
        return status

    async def _delay_stop(self, name: str, delay: float, timeout: float) -> None:
        """``--shutdown-delay``: not ready at once; the workers keep serving ``delay`` seconds.

        Supervision goes on meanwhile (a crashed worker is replaced); a SIGINT
        ends the delay.
        """
        runner_log.info(
            "%s received: not ready any more; accepting for %gs more, then stopping (within %gs)",
            name,
            delay,
            timeout,
        )
        self.lifecycle.set_draining(
            f"stopping {self.runner.app_name}: not ready, accepting for {delay:g} s more"
        )
        self.notifier.extend_timeout(delay + timeout + 2.0)
        self.reload = None
        deadline = time.monotonic() + delay
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                kind, value = await asyncio.wait_for(self._events.get(), min(TICK, remaining))
            except TimeoutError:
                kind, value = "tick", None
            if kind == "fatal":
                break
            if kind == "signal" and value == signal.SIGINT:
                runner_log.info("SIGINT received: ending the delay")
                break
            if kind == "signal" and value in (signal.SIGUSR1, signal.SIGHUP):
                self._reopen_logs(signal.Signals(int(value)).name)  # type: ignore[call-overload]
            self._tick()

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
                self._reopen_logs(signal.Signals(int(value)).name)  # type: ignore[call-overload]
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
