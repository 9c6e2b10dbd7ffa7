"""Workers: ``tapster --workers N`` runs a supervisor and N worker processes.

The supervisor (``_supervisor``) binds the listeners, spawns the workers
(``_process``), restarts them, finds hung ones (``_heartbeat``, ``_stack``),
recycles them (``_recycle``) and passes their log lines on (``_output``); it
knows nothing about HTTP or any protocol. A worker (``_worker``) is the
ordinary ``tapster`` command line run again in a fresh interpreter, serving
the inherited listeners. They talk over a pipe of JSON lines (``_channel``).
Imported only by the runner's role choice (``tapster.runner._roles``), never
by ``tapster --help`` nor by a single process.
"""

from tapster.supervisor._supervisor import SupervisorRole
from tapster.supervisor._worker import WorkerRole

__all__ = ["SupervisorRole", "WorkerRole"]
