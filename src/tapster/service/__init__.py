"""Services: things that start and stop, in trees, within a shutdown budget.

Readiness contract: when ``await root.start()`` returns, every service in the
tree is started and listening; ``root.listening()`` then says where.

The names are exported lazily (module ``__getattr__``): a plugin module that
only needs the :class:`ServiceMaker` kind imports it without ``asyncio``,
which the services themselves need and which is costly to import. That keeps
a cold plugin scan (every plugin module imported once) fast.
"""

from __future__ import annotations

from tapster._lazy import lazy_exports

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tapster.service._application import Application
    from tapster.service._budget import remaining_budget, shutdown
    from tapster.service._maker import ServiceMaker
    from tapster.service._readiness import READINESS_TIMEOUT, not_ready
    from tapster.service._service import (
        MultiService,
        Service,
        ServiceError,
        ServiceStartError,
    )

__all__ = [
    "READINESS_TIMEOUT",
    "Application",
    "MultiService",
    "Service",
    "ServiceError",
    "ServiceMaker",
    "ServiceStartError",
    "not_ready",
    "remaining_budget",
    "shutdown",
]

_HOMES = {
    "READINESS_TIMEOUT": "_readiness",
    "Application": "_application",
    "MultiService": "_service",
    "Service": "_service",
    "ServiceError": "_service",
    "ServiceMaker": "_maker",
    "ServiceStartError": "_service",
    "not_ready": "_readiness",
    "remaining_budget": "_budget",
    "shutdown": "_budget",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
