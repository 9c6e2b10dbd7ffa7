"""The last warnings and errors logged, kept for the operator page."""

from __future__ import annotations

import collections
import logging
from typing import Any

__all__ = ["RecentProblems"]


class RecentProblems(logging.Handler):
    """Keeps the last ``size`` records at WARNING or above (attached to the root logger)."""

    def __init__(self, size: int = 50) -> None:
        super().__init__(logging.WARNING)
        self.records: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)

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

    def recent(self) -> list[dict[str, Any]]:
        """The records kept, newest first."""
        return list(reversed(self.records))

    def attach(self) -> None:
        """Start keeping records."""
        logging.getLogger().addHandler(self)

    def detach(self) -> None:
        """Stop keeping records."""
        logging.getLogger().removeHandler(self)
