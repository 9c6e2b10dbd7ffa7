"""Which process this is: the single process of today, a supervisor, or a worker.

The runner walks the same start-up steps in all three; a role changes a few of
them (the one place that decides "single process or supervisor"):

* :class:`SingleProcess` changes nothing;
* the supervisor (``--workers N``) binds every listener and notes them, then
  supervises workers instead of serving (``tapster.supervisor``);
* a worker (started by a supervisor, ``$TAPSTER_WORKER`` set) inherits those
  listeners instead of binding, reports to the supervisor instead of to a
  daemon's launcher, and serves;
* a ``--reload`` child (``$TAPSTER_RELOADED`` set) serves on the reloader's listeners
  and hands them back (``runner._reload_child``).

``tapster.supervisor`` is imported only when the role is not the single
process, so neither ``--help`` nor a single process ever loads it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Protocol

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tapster.runner._run import Runner
    from tapster.runner._settings import RunSettings

__all__ = ["WORKER_ENV", "Role", "SingleProcess", "choose_role"]

#: The environment variable that makes a ``tapster`` process a worker (a JSON object).
WORKER_ENV = "TAPSTER_WORKER"


class Role(Protocol):
    """What differs between a single process, a supervisor and a worker."""

    #: Appended to the process title, e.g. `` [worker 2]``.
    title: str
    #: Whether this process enters ``--chroot`` and switches to ``--uid``/``--gid``
    #: (a supervisor does neither: it starts fresh interpreters).
    switches_user: bool
    #: True in a supervisor re-executed by an upgrade: already a daemon if it was one.
    upgraded: bool
    #: Whether a failed start shows its traceback after the one line (a --reload child).
    shows_tracebacks: bool

    def adjust(self, settings: RunSettings) -> RunSettings:
        """The settings this process runs with."""
        ...

    def setup(self, runner: Runner) -> None:
        """Called once the runner exists, before any step (readiness reporting)."""
        ...

    def binding(self) -> contextlib.AbstractContextManager[None]:
        """Wraps ``privileged_start()`` of the tree."""
        ...

    def loop_started(self, runner: Runner) -> None:
        """Called on the running loop, before the tree starts."""
        ...

    def serve(self, runner: Runner) -> int:
        """Step 7: return the exit status."""
        ...


class SingleProcess:
    """Today's one process: every hook does nothing."""

    title = ""
    switches_user = True
    upgraded = False
    shows_tracebacks = False

    def adjust(self, settings: RunSettings) -> RunSettings:
        """The settings, unchanged."""
        return settings

    def setup(self, runner: Runner) -> None:
        """Nothing to set up."""

    @contextlib.contextmanager
    def binding(self) -> Iterator[None]:
        """Bind as usual."""
        yield

    def loop_started(self, runner: Runner) -> None:
        """Nothing to start."""

    def serve(self, runner: Runner) -> int:
        """Serve the tree until it stops."""
        return runner.serve()


def choose_role(settings: RunSettings, argv: Sequence[str] | None) -> Role:
    """The role of this process, from the settings and the environment."""
    spec = os.environ.get(WORKER_ENV)
    if spec is not None:
        from tapster.supervisor import WorkerRole

        return WorkerRole.from_environment(spec)
    spec = os.environ.get("TAPSTER_RELOADED")
    if spec is not None:
        from tapster.runner._reload_child import ReloadedRole

        return ReloadedRole.from_environment(spec)
    if settings.workers:
        from tapster.supervisor import SupervisorRole

        return SupervisorRole(settings, list(argv) if argv is not None else None)
    return SingleProcess()
