"""Services: things that start and stop, in trees, within a shutdown budget.

Readiness contract: when ``await root.start()`` returns, every service in the
tree is started and listening; ``root.listening()`` then says where.
"""

from tapster.service._application import Application
from tapster.service._budget import remaining_budget, shutdown
from tapster.service._maker import ServiceMaker
from tapster.service._service import MultiService, Service, ServiceError, ServiceStartError

__all__ = [
    "Application",
    "MultiService",
    "Service",
    "ServiceError",
    "ServiceMaker",
    "ServiceStartError",
    "remaining_budget",
    "shutdown",
]
