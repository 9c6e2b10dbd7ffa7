"""The last warnings and errors logged, kept for the operator page.

A worker keeps its own and sends the new ones to the supervisor with its metrics
(:meth:`RecentProblems.since`); the supervisor shows them beside its own.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from typing import Any

__all__ = ["RecentProblems"]


class RecentProblems(logging.Handler):
    """Keeps the last ``size`` records at WARNING or above (attached to the root logger)."""

    def __init__(self, size: int = 50) -> None:
        super().__init__(logging.WARNING)
        self.records: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)
        #: Records kept since the start (the deque forgets the oldest ones).
        self.total = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Keep ``record``'s time, level, logger and first 2000 characters."""
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        self.records.append(
            {
                "time": record.created,
                "level": record.levelname,
                "logger": record.name,
                "message": message[:2000],
            }
        )
        self.total += 1  # under the handler's lock, as the append

    def recent(self) -> list[dict[str, Any]]:
        """The records kept, newest first."""
        return list(reversed(self.records))

    def since(self, seen: int) -> tuple[list[dict[str, Any]], int]:
        """The records kept after the first ``seen`` (oldest first), and the new total."""
        with self.lock or contextlib.nullcontext():
            new = min(self.total - seen, len(self.records))
            return (list(self.records)[-new:] if new > 0 else []), self.total

    def attach(self) -> None:
        """Start keeping records."""
        logging.getLogger().addHandler(self)

    def detach(self) -> None:
        """Stop keeping records."""
        logging.getLogger().removeHandler(self)
