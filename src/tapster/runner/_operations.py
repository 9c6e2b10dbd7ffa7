"""The runner's operations hooks: the loop watch and the admin endpoint of one process.

The runner calls four hooks (:meth:`Operations.bind`, :meth:`loop_started`,
:meth:`stopping`, :meth:`close`); everything else lives in the rooms it
joins: ``tapster.loopwatch`` (lag and stalls), ``tapster.admin`` (the
endpoint) and ``tapster.metrics``. :class:`SingleSubject` answers the admin
endpoint for a single process; a supervisor answers with its own
(``tapster.supervisor``).

A single process serves the admin endpoint from a thread with a loop of its
own (see ``tapster.admin._server``): ``/livez`` then answers 503, naming
where the main loop is stuck, instead of not answering at all.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from tapster import __version__
from tapster.loopwatch import LoopWatch
from tapster.metrics import REGISTRY
from tapster.metrics._process import process_families

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tapster.admin import AdminServer, RecentProblems
    from tapster.metrics import Family
    from tapster.runner._run import Runner

__all__ = ["LIVENESS_DEFAULT", "Operations", "SingleSubject", "services_status"]

#: Seconds without a turn of the loop that make ``/livez`` fail when ``--loop-stall`` is 0.
LIVENESS_DEFAULT = 5.0


class Operations:
    """What ``--admin`` and ``--loop-stall`` add to a run."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        settings = runner.settings
        self.watch = LoopWatch(settings.loop_stall)
        self.admin: AdminServer | None = None
        self.recent: RecentProblems | None = None
        if settings.admin:
            # Only with --admin: the HTTP side costs ~10 ms of start-up that a run
            # with just the loop-stall watch (the default) does not need.
            from tapster.admin import AdminServer, RecentProblems

            self.admin = AdminServer(settings.admin)
            self.recent = RecentProblems()
        self.stopping_since: str = ""
        self.started_at = time.time()
        REGISTRY.add_collector(process_families)

    def bind(self) -> None:
        """Bind the admin endpoint, while privileged (``ListenError`` names the address)."""
        if self.admin is not None:
            self.admin.bind()

    def loop_started(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the running main loop: start the watch and serve the admin endpoint."""
        if self.recent is not None:
            self.recent.attach()
        self.watch.start(loop)
        if self.admin is not None:
            self.admin.serve_in_thread(SingleSubject(self, loop))
            self.admin.announce()

    def stopping(self, why: str) -> None:
        """A stop began: ``/readyz`` fails from now on, saying ``why``."""
        self.stopping_since = why

    def close(self) -> None:
        """Stop the watch and the admin endpoint."""
        self.watch.stop()
        if self.admin is not None:
            self.admin.close()
        if self.recent is not None:
            self.recent.detach()
        REGISTRY.remove_collector(process_families)

    def stall_reason(self) -> str:
        """Why the loop counts as blocked now, or ""."""
        blocked = self.watch.blocked_for()
        limit = self.runner.settings.loop_stall or LIVENESS_DEFAULT
        if blocked < limit:
            return ""
        stuck = self.watch.stuck_at or self.watch.where()
        where = f" (blocked at {stuck})" if stuck else ""
        return f"the event loop has not turned for {blocked:.1f} s{where}"


def services_status(root: Any) -> list[dict[str, Any]]:
    """Every service of ``root``'s tree: its path, type, state and addresses."""
    from tapster.service import MultiService

    found: list[dict[str, Any]] = []

    def walk(service: Any) -> None:
        found.append(
            {
                "name": service.label,
                "type": type(service).__name__,
                "running": bool(service.running),
                "listening": list(service.listening()),
            }
        )
        if isinstance(service, MultiService):
            for child in service:
                walk(child)

    if root is not None:
        walk(root)
    return found


class SingleSubject:
    """The admin endpoint's view of a single process (called on the admin thread)."""

    def __init__(self, ops: Operations, loop: asyncio.AbstractEventLoop) -> None:
        self.ops = ops
        self.runner = ops.runner
        self.loop = loop

    def started(self) -> bool:
        """Whether the tree was started."""
        return self.runner._ready

    def not_live(self) -> list[str]:
        """The loop does not turn."""
        reason = self.ops.stall_reason()
        return [reason] if reason else []

    async def not_ready(self) -> list[str]:
        """Starting, stopping, a blocked loop, or a service's own readiness check."""
        if self.ops.stopping_since:
            return [f"stopping ({self.ops.stopping_since})"]
        if not self.runner._ready:
            return ["start-up under way"]
        stalled = self.ops.stall_reason()
        if stalled:
            return [stalled]
        from tapster.service import READINESS_TIMEOUT, not_ready

        root = self.runner.root
        if root is None:
            return ["no application"]
        future = asyncio.run_coroutine_threadsafe(not_ready(root), self.loop)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), READINESS_TIMEOUT + 0.2)
        except TimeoutError:
            future.cancel()
            return ["the readiness checks did not finish: the event loop is busy"]

    def families(self) -> list[Family]:
        """Every metric of this process."""
        return REGISTRY.collect()

    def status(self) -> dict[str, Any]:
        """The operator page's figures."""
        runner = self.runner
        state = "stopping" if self.ops.stopping_since else "ready" if runner._ready else "starting"
        return {
            "application": runner.app_name,
            "version": __version__,
            "pid": os.getpid(),
            "role": "single process",
            "state": state,
            "loop": runner.loop_name,
            "started_at": self.ops.started_at,
            "uptime": time.time() - self.ops.started_at,
            "listening": runner.root.listening() if runner.root is not None else [],
            "services": services_status(runner.root),
            "workers": None,
            "loop_blocked_at": self.ops.watch.stuck_at,
            "recent": self.ops.recent.recent() if self.ops.recent is not None else [],
        }

    async def control(self, action: str, count: int | None) -> str:
        """``reopen-logs`` and ``stop`` (as SIGUSR1 and SIGTERM); the rest needs workers."""
        if action == "reopen-logs":
            os.kill(os.getpid(), signal.SIGUSR1)
            return "log reopen requested (as SIGUSR1)"
        if action == "stop":
            os.kill(os.getpid(), signal.SIGTERM)
            return "stopping (as SIGTERM)"
        from tapster.admin import ControlError

        raise ControlError(409, f"{action} needs --workers: a single process has no workers")
