"""What the main process is doing now, told to whoever manages it.

One :class:`Lifecycle` per process (:func:`current`), owned by the runner (a
single process) or the supervisor (``--workers``). Each change of phase is
said once, here, and goes to every manager at the same moment:

* systemd, through :class:`tapster.runner._systemd.Notifier` (``READY=1``,
  ``RELOADING=1``, ``STOPPING=1``, ``STATUS=``);
* anything that asks :attr:`Lifecycle.ready` (an admin ``/readyz``
  endpoint answers 200 while it is true, 503 otherwise), or subscribes with
  :meth:`Lifecycle.subscribe` to hear each change.

Phases: ``starting``, ``ready``, ``reloading`` (still serving: ready),
``draining`` (``--shutdown-delay``: still accepting, no longer ready),
``stopping``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from tapster.runner._systemd import Notifier

__all__ = ["Lifecycle", "current"]

logger = logging.getLogger("tapster.runner")

#: The phases in which the process takes new work (``/readyz`` says yes).
READY_PHASES = ("ready", "reloading")


class Lifecycle:
    """The phase of this process, its one-line status, and who is told of changes."""

    def __init__(self, notifier: Notifier | None = None) -> None:
        self.notifier = notifier if notifier is not None else Notifier()
        self.phase = "starting"
        self.status = "starting"
        self._listeners: list[Callable[[Lifecycle], None]] = []

    @property
    def ready(self) -> bool:
        """Whether new work is welcome now (the answer of a readiness probe)."""
        return self.phase in READY_PHASES

    def subscribe(self, listener: Callable[[Lifecycle], None]) -> None:
        """Call ``listener(self)`` after every change of phase or status."""
        self._listeners.append(listener)

    def _change(self, phase: str, status: str) -> None:
        self.phase = phase
        self.status = " ".join(status.split())
        for listener in list(self._listeners):
            try:
                listener(self)
            except Exception:
                logger.exception("a life-cycle listener failed")

    def set_ready(self, status: str) -> None:
        """Serving (after the start, or at the end of a reload): ``READY=1``."""
        self._change("ready", status)
        self.notifier.ready(self.status)

    def set_reloading(self, status: str) -> None:
        """A reload begins; the old code keeps serving: ``RELOADING=1``."""
        self._change("reloading", status)
        self.notifier.reloading(self.status)

    def set_draining(self, status: str) -> None:
        """A stop was asked with a delay: no longer ready, still accepting."""
        self._change("draining", status)
        self.notifier.stopping(self.status)

    def set_stopping(self, status: str) -> None:
        """The listeners close and the work in hand drains: ``STOPPING=1``."""
        already = self.phase == "draining"
        self._change("stopping", status)
        if already:
            self.notifier.status(self.status)
        else:
            self.notifier.stopping(self.status)

    def set_status(self, status: str) -> None:
        """A new summary in the same phase (a failed reload, a worker replaced)."""
        self._change(self.phase, status)
        self.notifier.status(self.status)


_CURRENT = Lifecycle()


def current() -> Lifecycle:
    """This process's life cycle."""
    return _CURRENT
