"""When to restart a child: exponential backoff, reset after a stable run.

Sans-IO on purpose: the policy is told how long a run lasted and answers how
long to wait, so it is tested without any process or clock.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backoff", "RestartPolicy"]


@dataclass(frozen=True)
class RestartPolicy:
    """The knobs of ``tapster procmon`` (defaults as in ``twistd procmon``)."""

    threshold: float = 1.0
    """Seconds a process must run to count as stable."""
    killtime: float = 5.0
    """Seconds between SIGTERM and SIGKILL when stopping a process."""
    min_restart_delay: float = 1.0
    """The first wait after a process that died young."""
    max_restart_delay: float = 3600.0
    """The longest wait; the delay doubles up to this."""

    def __post_init__(self) -> None:
        for name in ("threshold", "killtime", "min_restart_delay", "max_restart_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.min_restart_delay > self.max_restart_delay:
            raise ValueError(
                f"the minimum restart delay ({self.min_restart_delay:g} s) is larger than "
                f"the maximum ({self.max_restart_delay:g} s)"
            )


class Backoff:
    """The restart delay of one child.

    A run that lasted at least ``threshold`` seconds was stable: the child is
    restarted at once and the delay goes back to the minimum. A shorter run
    waits the current delay, which then doubles (up to the maximum), so a
    child that cannot start does not spin the CPU. A command that could not be
    started at all (``runtime`` None) never ran, so it is never stable: it takes
    the same delays as a run that failed young, whatever the threshold (even 0).
    """

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.delay = policy.min_restart_delay

    def after_exit(self, runtime: float | None) -> float:
        """Seconds to wait before the next start, after a run of ``runtime`` seconds.

        ``None`` means the command could not be started (no program, no permission).
        """
        policy = self.policy
        if runtime is not None and runtime >= policy.threshold:
            self.delay = policy.min_restart_delay
            return 0.0
        wait = self.delay
        # Doubling zero stays zero: a zero minimum still backs off from 0.1 s.
        self.delay = min(max(self.delay * 2, 0.1), policy.max_restart_delay)
        return wait
