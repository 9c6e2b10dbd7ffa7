"""What the admin endpoint asks of the process it describes.

The admin endpoint knows no protocol and no service: a single process and a
supervisor each hand it a :class:`Subject` that answers its questions.
"""

from __future__ import annotations

from typing import Any, Protocol

from tapster.metrics import Family

__all__ = ["ControlError", "Subject"]


class ControlError(Exception):
    """A control action cannot be done; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Subject(Protocol):
    """The process behind an admin endpoint."""

    def started(self) -> bool:
        """Whether start-up has finished (it stays true afterwards)."""
        ...

    def not_live(self) -> list[str]:
        """Why the process is not alive (its event loops do not turn); [] when it is."""
        ...

    async def not_ready(self) -> list[str]:
        """Why the process should get no traffic now; [] when it should."""
        ...

    def families(self) -> list[Family]:
        """The metrics, read now."""
        ...

    def status(self) -> dict[str, Any]:
        """The operator page's figures, as JSON-ready values."""
        ...

    async def control(self, action: str, count: int | None) -> str:
        """Do ``action`` (reload, reopen-logs, stop, workers); the message to answer with.

        Raises :class:`ControlError` when it cannot be done here.
        """
        ...
