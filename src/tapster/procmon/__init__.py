"""``tapster procmon``: a process supervisor.

Starts commands, logs their stdout and stderr line by line under each
command's name, restarts them with exponential backoff when they exit, and
stops and reaps every one of them (and their own children) on stop.
"""

from tapster.procmon._backoff import Backoff, RestartPolicy
from tapster.procmon._monitor import ChildState, ProcessMonitor, describe_exit
from tapster.procmon._options import ProcmonOptions

__all__ = [
    "Backoff",
    "ChildState",
    "ProcessMonitor",
    "ProcmonOptions",
    "RestartPolicy",
    "describe_exit",
]
