"""One log line for a message that keeps coming back, then how often it came back.

A command that cannot be started fails the same way at every retry; a line per
retry would bury the log. The first occurrence is logged at once; identical ones
are only counted, and the count is logged with the message ("... (repeated 37
times)") when another message comes, when the repeats end (the command started,
procmon stops) or, while they go on, at most once per ``interval`` seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["RepeatedLog"]


class RepeatedLog:
    """Logs each distinct message once and counts its identical repeats."""

    def __init__(
        self,
        logger: logging.Logger,
        level: int,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.level = level
        self.interval = interval
        self._clock = clock
        self._message: str | None = None
        self._repeats = 0
        self._logged_at = 0.0

    def log(self, message: str) -> None:
        """Log ``message``, or count it when it is the same as the last one."""
        if message == self._message:
            self._repeats += 1
            if self._clock() - self._logged_at >= self.interval:
                self._log_repeats()
            return
        self.end()
        self._message = message
        self._logged_at = self._clock()
        self.logger.log(self.level, "%s", message)

    def end(self) -> None:
        """The repeats are over: log how many there were (if any) and forget the message."""
        self._log_repeats()
        self._message = None

    def _log_repeats(self) -> None:
        if self._repeats:
            times = "time" if self._repeats == 1 else "times"
            self.logger.log(self.level, "%s (repeated %d %s)", self._message, self._repeats, times)
            self._repeats = 0
            self._logged_at = self._clock()
