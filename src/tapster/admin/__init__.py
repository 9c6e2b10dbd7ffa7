"""The admin endpoint (``tapster --admin ENDPOINT``): probes, metrics, status, control.

It knows no application protocol: the process it describes (a single process,
or a supervisor of workers) hands it a :class:`Subject`. See
docs/operations.md.
"""

from __future__ import annotations

from tapster.admin._recent import RecentProblems
from tapster.admin._routes import ACTIONS, AdminApp
from tapster.admin._server import AdminServer
from tapster.admin._subject import ControlError, Subject

__all__ = ["ACTIONS", "AdminApp", "AdminServer", "ControlError", "RecentProblems", "Subject"]
