"""The process supervisor: start children, log their output, restart them, stop them.

Resource handling: each child runs in its own session and process group
(``start_new_session``), so stopping a child signals the whole group: a shell
wrapper's own children are stopped with it and none is left orphaned. A stop
sends SIGTERM to the group, waits up to ``killtime`` for the group to be
empty, then sends SIGKILL to whatever is left. Every child is reaped (see
``_reaper``); stdin is ``/dev/null``; stdout and stderr are pipes read by the
loop and logged line by line.

Error handling: a command that cannot be started (missing program, no
permission) is logged in one line and retried with the same backoff as a
child that exits at once, whatever the threshold; the same failure again is
counted, not logged again (see ``_repeats``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tapster.metrics import counter
from tapster.procmon._backoff import Backoff, RestartPolicy
from tapster.procmon._output import LineLogger, read_pipe
from tapster.procmon._reaper import ExitWatcher, make_exit_watcher
from tapster.procmon._repeats import RepeatedLog
from tapster.service import Service, remaining_budget

__all__ = ["ChildState", "ProcessMonitor"]

log = logging.getLogger("tapster.procmon")

#: How often a stopping monitor checks whether a child's process group is empty.
_GROUP_POLL = 0.05


def describe_exit(code: int) -> str:
    """``exit status 3`` or ``killed by SIGKILL`` for a return code."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


_RESTARTS = counter(
    "tapster_procmon_restarts",
    "Children restarted after they ended (or failed to start), per command name.",
    labels=("command",),
)


@dataclass
class ChildState:
    """One supervised command and what happened to it so far."""

    name: str
    args: tuple[str, ...]
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    pid: int | None = None
    """The running process, or None between runs."""
    last_pid: int = 0
    """The process of the latest run (its process group has the same id)."""
    starts: int = 0
    """How many times the command was started."""
    last_exit: int | None = None
    """Return code of the last run (negative: the signal that killed it)."""
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    exited: asyncio.Future[int] | None = field(default=None, repr=False)
    pipes: list[LineLogger] = field(default_factory=list, repr=False)


class ProcessMonitor(Service):
    """Runs commands and keeps them running: the service behind ``tapster procmon``.

    Add commands with :meth:`add_process` (before or after start). Each
    child is restarted when it exits, after a delay chosen by
    :class:`~tapster.procmon.Backoff`; ``stop`` stops every child (SIGTERM,
    then SIGKILL after ``policy.killtime``) and reaps it.
    """

    def __init__(self, policy: RestartPolicy | None = None, *, reap_orphans: bool | None = None):
        super().__init__()
        self.policy = policy or RestartPolicy()
        self.children: dict[str, ChildState] = {}
        self._reap_orphans = reap_orphans
        self._watcher: ExitWatcher | None = None
        self._stopping = False

    # -- configuration -------------------------------------------------------------

    def add_process(
        self,
        name: str,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        """Supervise ``args`` under ``name`` (names are unique); starts it if running.

        ``env`` adds to (or overrides) tapster's own environment for this command;
        ``cwd`` is its working directory.
        """
        if not args:
            raise ValueError(f"the command for {name!r} is empty")
        if name in self.children:
            raise ValueError(f"there is already a process named {name!r}")
        child = ChildState(name, tuple(args), env, cwd)
        self.children[name] = child
        if self.running and not self._stopping:
            self._launch(child)

    async def remove_process(self, name: str) -> None:
        """Stop the process called ``name`` and forget it."""
        child = self.children.pop(name)
        await self._stop_child(child, self.policy.killtime)

    # -- life cycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Start every command (each start is logged); returns once they are spawned."""
        loop = asyncio.get_running_loop()
        self._stopping = False
        self._watcher = make_exit_watcher(loop, reap_orphans=self._reap_orphans)
        for child in self.children.values():
            self._launch(child)
        # Let each supervisor spawn its first process before reporting "started".
        await asyncio.sleep(0)

    async def stop(self) -> None:
        """Stop every child: SIGTERM, then SIGKILL after ``killtime``; reap them all."""
        self._stopping = True
        killtime = self.policy.killtime
        budget = remaining_budget()
        if budget is not None:
            # Leave a little of the shutdown budget for SIGKILL and reaping.
            killtime = max(0.0, min(killtime, budget - 0.5))
        await asyncio.gather(
            *(self._stop_child(child, killtime) for child in self.children.values())
        )
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None

    def _halted(self) -> bool:
        # A method, not the attribute: it changes while a supervisor awaits.
        return self._stopping

    def _launch(self, child: ChildState) -> None:
        child.task = asyncio.get_running_loop().create_task(
            self._supervise(child), name=f"procmon {child.name}"
        )

    async def _supervise(self, child: ChildState) -> None:
        loop = asyncio.get_running_loop()
        backoff = Backoff(self.policy)
        failures = RepeatedLog(log, logging.ERROR)
        try:
            while not self._stopping:
                began = loop.time()
                runtime: float | None = None
                try:
                    exited = await self._spawn(child)
                except OSError as exc:
                    reason = exc.strerror or exc
                    failures.log(
                        f"couldn't start {child.name} ({shlex.join(child.args)}): {reason}"
                    )
                else:
                    failures.end()
                    code = await asyncio.shield(exited)
                    ran = loop.time() - began
                    if self._halted():
                        break
                    # Let the pipes deliver the last lines before the exit is logged.
                    await _wait_pipes(child, 0.2)
                    log.warning(
                        "%s (pid %d) ended after %.1f s: %s",
                        child.name,
                        child.last_pid,
                        ran,
                        describe_exit(code),
                    )
                    # Whatever the child left running in its group goes too, so the
                    # next run never meets the previous one (a port still bound...).
                    await _empty_group(child.name, child.last_pid, self.policy.killtime)
                    runtime = loop.time() - began
                if self._halted():
                    break
                _RESTARTS.labels(child.name).inc()
                # A failed start (runtime None) takes the same delays as a quick exit.
                delay = backoff.after_exit(runtime)
                if delay > 0:
                    log.info("restarting %s in %.3g s", child.name, delay)
                # Sleep even for 0 s: a failed start never awaited, and a stop must be
                # handled whatever the restart rate.
                await asyncio.sleep(delay)
        finally:
            failures.end()

    async def _spawn(self, child: ChildState) -> asyncio.Future[int]:
        """Start one run of ``child``; returns the future of its return code."""
        assert self._watcher is not None
        env = None if child.env is None else {**os.environ, **child.env}
        proc = subprocess.Popen(
            child.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            env=env,
            cwd=child.cwd,
            start_new_session=True,
            close_fds=True,
        )
        # Watch before yielding to the loop: see ``_reaper`` for why it matters.
        exited = self._watcher.watch(proc.pid)
        exited.add_done_callback(lambda fut: _settle(child, proc, fut))
        child.pid = child.last_pid = proc.pid
        child.starts += 1
        child.exited = exited
        log.info("started %s (pid %d): %s", child.name, proc.pid, shlex.join(child.args))
        child.pipes = [p for p in child.pipes if not p.closed.done()]
        for stream, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            assert pipe is not None
            reader = LineLogger(child.name, stream)
            child.pipes.append(reader)
            await read_pipe(reader, pipe)
        return exited

    async def _stop_child(self, child: ChildState, killtime: float) -> None:
        """Stop one child's supervisor and its process group; reap and log it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + killtime
        task, child.task = child.task, None
        exited, pid = child.exited, child.pid
        group_warned = False
        if exited is not None and pid is not None and not exited.done():
            group_warned = True
            _signal_group(pid, signal.SIGTERM)
            try:
                async with asyncio.timeout(killtime):
                    await asyncio.shield(exited)
            except TimeoutError:
                log.warning(
                    "%s (pid %d) did not stop within %g s of SIGTERM; sending SIGKILL",
                    child.name,
                    pid,
                    killtime,
                )
                _signal_group(pid, signal.SIGKILL)
                await asyncio.shield(exited)
            log.info("stopped %s (pid %d): %s", child.name, pid, describe_exit(exited.result()))
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if child.last_pid:
            remaining = max(0.0, deadline - loop.time())
            await _empty_group(child.name, child.last_pid, remaining, term=not group_warned)
        await _wait_pipes(child, 0.2)
        for pipe in child.pipes:
            pipe.close()
        child.pipes.clear()


def _settle(child: ChildState, proc: subprocess.Popen[bytes], fut: asyncio.Future[int]) -> None:
    """Record a run's end, on the child and on its Popen (which must not wait again)."""
    if fut.cancelled():
        return
    proc.returncode = child.last_exit = fut.result()
    if child.pid == proc.pid:
        child.pid = None


async def _wait_pipes(child: ChildState, timeout: float) -> None:
    """Give the child's pipes up to ``timeout`` seconds to reach EOF."""
    pending = [p.closed for p in child.pipes if not p.closed.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the process group ``pgid``; False when the group is empty."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # the group id now belongs to someone else's processes
        return False
    return True


def _group_alive(pgid: int) -> bool:
    """True while a live (not zombie) process is in the group ``pgid``.

    ``killpg(pgid, 0)`` also counts zombies, and a zombie re-parented to an
    init that reaps lazily can linger for seconds; where ``/proc`` exists the
    group's members are read from it so that zombies don't count.
    """
    if not _signal_group(pgid, 0):
        return False
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


async def _empty_group(name: str, pgid: int, killtime: float, *, term: bool = True) -> None:
    """Make sure no process is left in the group ``pgid`` (a child's own children).

    With ``term`` the leftovers get SIGTERM first; whatever is still there after
    ``killtime`` seconds gets SIGKILL.
    """
    if not _group_alive(pgid):
        return
    if term:
        log.info("%s left processes behind in its group %d; sending them SIGTERM", name, pgid)
        _signal_group(pgid, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + killtime
    while loop.time() < deadline:
        await asyncio.sleep(_GROUP_POLL)
        if not _group_alive(pgid):
            return
    if _signal_group(pgid, signal.SIGKILL):
        log.warning("killed what %s left behind in its group %d (SIGKILL)", name, pgid)
