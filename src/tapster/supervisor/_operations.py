"""Operations with ``--workers``: the supervisor serves the admin endpoint for all.

Each worker sends its metrics over its channel every :data:`METRICS_INTERVAL`
seconds and once more as it stops (:class:`MetricsSender`), and runs its
services' readiness checks every :data:`READINESS_INTERVAL` seconds on its own
loop, sending their reasons when the answer changes (:class:`ReadinessSender`:
``/readyz`` then answers from the last report, without waiting on a worker that
may be stuck). The supervisor
sums them (``tapster.metrics._merge.Sum``: counters never go backwards when a
worker is replaced) and answers ``/livez``, ``/readyz``, ``/metrics``,
``/status`` and control actions from its own loop, which runs no user code:
it answers when every worker is stuck.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import time
from typing import Any

from tapster import __version__
from tapster.admin import ControlError, RecentProblems
from tapster.metrics import REGISTRY, Family
from tapster.metrics._merge import Sum, from_snapshot, snapshot
from tapster.metrics._process import process_families, resident_bytes
from tapster.runner._operations import services_status
from tapster.supervisor._channel import ChannelWriter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tapster.runner._run import Runner
    from tapster.supervisor._process import WorkerProcess
    from tapster.supervisor._supervisor import Supervisor

__all__ = [
    "METRICS_INTERVAL",
    "READINESS_INTERVAL",
    "MetricsSender",
    "ReadinessSender",
    "SupervisorSubject",
]

#: Seconds between two metrics reports of a worker.
METRICS_INTERVAL = 1.0
#: Seconds between the end of a worker's readiness checks and the next round.
READINESS_INTERVAL = 1.0


class MetricsSender:
    """A worker's side: its registry, and its warnings logged since the last report."""

    def __init__(self, loop: asyncio.AbstractEventLoop, channel: ChannelWriter) -> None:
        self._loop = loop
        self._channel = channel
        self._handle: asyncio.TimerHandle | None = None
        self._recent = RecentProblems()
        self._seen = 0

    def start(self) -> None:
        """Keep the warnings logged from now on; send now, then every interval."""
        self._recent.attach()
        self._send()

    def _send(self) -> None:
        self.send_now()
        self._handle = self._loop.call_later(METRICS_INTERVAL, self._send)

    def send_now(self) -> None:
        """Send the metrics as they are, and the warnings logged since the last report."""
        problems, self._seen = self._recent.since(self._seen)
        extra = {"problems": problems} if problems else {}
        self._channel.send("metrics", families=snapshot(REGISTRY.collect()), **extra)

    def stop(self) -> None:
        """One last report, then no more."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self.send_now()
            self._recent.detach()


class ReadinessSender:
    """A worker's side: its services' readiness checks, on its loop, reported when they change.

    Checks run once the tree is started; the first answer is always sent, then only a
    different one (a reason appearing, changing or going away).
    """

    def __init__(self, runner: Runner, channel: ChannelWriter) -> None:
        self._runner = runner
        self._channel = channel
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin checking (on the running loop)."""
        assert self._runner.loop is not None
        self._task = self._runner.loop.create_task(self._run())

    async def _run(self) -> None:
        from tapster.service import not_ready

        sent: list[str] | None = None
        while True:
            root = self._runner.root
            if self._runner._ready and root is not None:
                reasons = await not_ready(root)
                if reasons != sent:
                    self._channel.send("readiness", reasons=reasons)
                    sent = reasons
            await asyncio.sleep(READINESS_INTERVAL)

    def stop(self) -> None:
        """No more checks."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                task.cancel()


_UP = "1 when the worker is ready and its loop sends heartbeats, else 0."
_RESTARTS = "Times the worker was replaced (it crashed, hung or was recycled)."
_MEMORY = "Resident memory of the worker, in bytes."


def _per_worker(name: str, kind: str, help: str, rows: list[tuple[str, float]]) -> Family:
    return Family(name, kind, help, ("worker",), (), [((w,), v) for w, v in rows])


class SupervisorSubject:
    """The admin endpoint's view of a supervisor and its workers."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.sum = Sum()
        self.restarts: dict[int, int] = {}
        #: The last readiness reasons each worker reported (its services' own checks).
        self.worker_reasons: dict[WorkerProcess, list[str]] = {}
        #: Warnings and errors the workers logged, newest last, each marked with its worker.
        self.worker_problems: collections.deque[dict[str, Any]] = collections.deque(maxlen=50)
        self.started_at = time.time()

    # -- fed by the supervisor -------------------------------------------------------

    def worker_metrics(self, worker: WorkerProcess, message: dict[str, Any]) -> None:
        """A worker's report."""
        self.sum.update(worker, from_snapshot(message.get("families")))
        problems = message.get("problems")
        if isinstance(problems, list):
            for problem in problems:
                if isinstance(problem, dict) and isinstance(problem.get("time"), int | float):
                    self.worker_problems.append({**problem, "worker": worker.number})

    def worker_readiness(self, worker: WorkerProcess, message: dict[str, Any]) -> None:
        """A worker's services' readiness reasons ([] when all are ready)."""
        reasons = message.get("reasons")
        if isinstance(reasons, list):
            self.worker_reasons[worker] = [str(reason) for reason in reasons]

    def worker_exited(self, worker: WorkerProcess, replaced: bool) -> None:
        """A worker is gone; ``replaced`` when another takes its place."""
        self.sum.retire(worker)
        self.worker_reasons.pop(worker, None)
        if replaced:
            self.restarts[worker.number] = self.restarts.get(worker.number, 0) + 1

    # -- the Subject -----------------------------------------------------------------

    def started(self) -> bool:
        """All workers were ready once."""
        return self.supervisor.announced

    def not_live(self) -> list[str]:
        """Not live once started when no worker's loop has sent a heartbeat in time."""
        sup = self.supervisor
        if not sup.announced or sup.stopping:
            return []
        timeout = sup.settings.worker_timeout
        now = time.monotonic()
        silent = []
        for slot in sup.slots:
            worker = slot.current
            if worker is not None and worker.state == "ready":
                if now - worker.last_beat <= timeout:
                    return []
                silent.append(
                    f"worker {slot.number} sent no heartbeat for {now - worker.last_beat:.1f} s"
                )
            else:
                silent.append(f"worker {slot.number} is not ready")
        return silent

    async def not_ready(self) -> list[str]:
        """Starting, stopping, a worker not ready (restarting, hung), or its services' checks."""
        sup = self.supervisor
        if sup.stopping:
            return ["stopping"]
        if sup.lifecycle.phase == "draining":
            return ["stopping: --shutdown-delay under way (still serving)"]
        reasons = []
        ready = 0
        now = time.monotonic()
        for slot in sup.slots:
            worker = slot.current
            if worker is None:
                reasons.append(f"worker {slot.number} is being restarted")
            elif worker.state != "ready":
                reasons.append(f"worker {slot.number} (pid {worker.pid}) is {worker.state}")
            elif now - worker.last_beat > sup.settings.worker_timeout:
                reasons.append(f"worker {slot.number} (pid {worker.pid}) sent no heartbeat in time")
            elif own := self.worker_reasons.get(worker):
                reasons.extend(f"worker {slot.number} (pid {worker.pid}): {r}" for r in own)
            else:
                ready += 1
        if not sup.announced:
            return [f"start-up under way: {ready} of {len(sup.slots)} workers ready", *reasons]
        return reasons

    def families(self) -> list[Family]:
        """The supervisor's own figures, the workers' sum, and per-worker up and restarts."""
        sup = self.supervisor
        now = time.monotonic()
        up, restarts, memory = [], [], []
        for slot in sup.slots:
            worker = slot.current
            label = str(slot.number)
            fresh = (
                worker is not None
                and worker.state == "ready"
                and now - worker.last_beat <= sup.settings.worker_timeout
            )
            up.append((label, 1.0 if fresh else 0.0))
            restarts.append((label, float(self.restarts.get(slot.number, 0))))
            rss = resident_bytes(worker.pid) if worker is not None else None
            if rss is not None:
                memory.append((label, rss))
        return [
            *process_families(),
            *self.sum.families(),
            _per_worker("tapster_worker_up", "gauge", _UP, up),
            _per_worker("tapster_worker_restarts", "counter", _RESTARTS, restarts),
            _per_worker("tapster_worker_resident_memory_bytes", "gauge", _MEMORY, memory),
        ]

    def status(self) -> dict[str, Any]:
        """The operator page's figures, with the workers' table."""
        sup = self.supervisor
        runner = sup.runner
        now = time.monotonic()
        workers = []
        for slot in sup.slots:
            worker = slot.current
            workers.append(
                {
                    "number": slot.number,
                    "pid": worker.pid if worker is not None else None,
                    "state": worker.state if worker is not None else "restarting",
                    "uptime": now - worker.started if worker is not None else 0.0,
                    "memory": resident_bytes(worker.pid) if worker is not None else None,
                    "restarts": self.restarts.get(slot.number, 0),
                }
            )
        state = "stopping" if sup.stopping else ("ready" if sup.announced else "starting")
        own = runner.ops.recent.recent() if runner.ops is not None else []
        recent = sorted([*own, *self.worker_problems], key=lambda r: -float(r["time"]))[:50]
        return {
            "application": runner.app_name,
            "version": __version__,
            "pid": os.getpid(),
            "role": f"supervisor of {len(sup.slots)} workers",
            "state": state,
            "loop": runner.loop_name,
            "started_at": self.started_at,
            "uptime": time.time() - self.started_at,
            "listening": runner.root.listening() if runner.root is not None else [],
            "services": services_status(runner.root),
            "workers": workers,
            "recent": recent,
        }

    async def control(self, action: str, count: int | None) -> str:
        """reload, reopen-logs, stop and workers N, on the supervisor's loop."""
        sup = self.supervisor
        if sup.stopping:
            raise ControlError(409, "stopping already")
        if action == "reopen-logs":
            sup.request_signal(signal.SIGUSR1)
            return "log reopen requested"
        if action == "stop":
            sup.request_signal(signal.SIGTERM)
            return f"stopping {len(sup.slots)} workers"
        if action == "workers":
            assert count is not None
            change = count - len(sup.slots)
            for _ in range(abs(change)):
                sup.request_signal(signal.SIGTTIN if change > 0 else signal.SIGTTOU)
            return f"{len(sup.slots)} workers, now {count}"
        if sup.reload is not None or sup.upgrading:
            raise ControlError(409, "a reload or an upgrade is already under way")
        sup.request_signal(signal.SIGHUP)  # what SIGHUP does: reopen logs, roll the workers
        return f"reloading: replacing {len(sup.slots)} workers one at a time"
