"""Upgrade in place: the supervisor re-executes itself, same PID, same sockets, same workers.

``SIGUSR2`` to the supervisor (``--workers``) loads a new tapster, or a new
Python, without a new PID (the pidfile, systemd's ``MAINPID`` and a
container's PID 1 stay right) and without closing a listener:

1. **Check first.** ``exec`` replaces the process image: there is no way
   back if the new one cannot start. So the supervisor first starts a spare
   worker of the new code (a fresh ``python -m tapster ARGS``: it parses the
   command line, imports tapster and the application, builds the tree and
   takes the listeners). Only once it is *warm* does the upgrade go on; a
   spare that fails leaves the old supervisor running (one log line, the
   status says so).
2. **Hand over.** The listening sockets, and each worker's pipes (its
   channel, its output, the watch pipe whose end of file would stop it), are
   made inheritable and described in ``$TAPSTER_UPGRADE`` (JSON, like
   ``$TAPSTER_WORKER``). The workers are the supervisor's children and stay
   so across ``exec``; they keep serving throughout.
3. **Exec.** ``os.execv(python, ["-m", "tapster", ARGS])`` from the folder
   the command was typed in. The new supervisor walks the start-up steps
   (pidfile lock taken again, logs opened again, no second daemonizing), binds
   nothing (it adopts the handed-over sockets), adopts the workers, and rolls
   them as a reload does; ``READY=1`` with ``MAINPID=`` ends it.

What the check cannot see (a supervisor that breaks after the check
passed, an ``exec`` that fails half-way in the kernel) ends the process as a
crash would: the workers then stop within a second (their watch pipe).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any, NamedTuple

from tapster.endpoints._inherited import Listener

__all__ = ["UPGRADE_ENV", "AdoptedWorker", "Handover", "execute"]

#: The environment variable that tells a new supervisor what it inherits.
UPGRADE_ENV = "TAPSTER_UPGRADE"


class AdoptedWorker(NamedTuple):
    """A worker handed over by the previous supervisor image."""

    number: int
    pid: int
    channel: int
    output: int
    watch: int
    #: ``ready`` or ``stopping`` (still draining when the exec came).
    state: str
    #: Seconds it had been running.
    age: float


class Handover(NamedTuple):
    """Everything ``$TAPSTER_UPGRADE`` describes."""

    listeners: list[Listener]
    workers: list[AdoptedWorker]
    #: The status line the old image had (its last reload, its last error).
    history: str = ""

    def to_json(self) -> str:
        """The environment variable's value."""
        data: dict[str, Any] = {
            "listeners": self.listeners,
            "workers": [w._asdict() for w in self.workers],
            "history": self.history,
        }
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Handover:
        """Read the variable; ValueError when it is not a handover."""
        try:
            data: Any = json.loads(text)
            return cls(
                listeners=[(str(d), [int(fd) for fd in fds]) for d, fds in data["listeners"]],
                workers=[
                    AdoptedWorker(
                        number=int(w["number"]),
                        pid=int(w["pid"]),
                        channel=int(w["channel"]),
                        output=int(w["output"]),
                        watch=int(w["watch"]),
                        state=str(w["state"]),
                        age=float(w["age"]),
                    )
                    for w in data["workers"]
                ],
                history=str(data.get("history", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an upgrade description: {exc!r}") from None

    def descriptors(self) -> list[int]:
        """Every descriptor that must survive the exec."""
        fds = [fd for _, group in self.listeners for fd in group]
        for worker in self.workers:
            fds += [worker.channel, worker.output, worker.watch]
        return fds


def _original_descriptors(listeners: list[Listener]) -> list[int]:
    """Descriptors the command line itself names, which the new image parses again.

    ``systemd:`` endpoints read ``$LISTEN_FDS`` (3, 4, ...) and ``fd:N`` names
    ``N``: they were made non-inheritable when adopted, and must be open again
    after the exec for the command line to parse.
    """
    fds: list[int] = []
    if os.environ.get("LISTEN_PID") == str(os.getpid()):
        with contextlib.suppress(ValueError):
            fds += range(3, 3 + int(os.environ.get("LISTEN_FDS", "0")))
    for description, _ in listeners:
        if description.startswith("fd:"):
            number = description[3:].split(":", 1)[0]
            if number.isdigit():
                fds.append(int(number))
    return fds


def execute(argv: list[str], cwd: str, handover: Handover) -> OSError:
    """Replace this process with a new supervisor; returns only the error when exec failed.

    The descriptors are made non-inheritable again on failure, so that the
    old supervisor runs on as before.
    """
    keep = handover.descriptors() + _original_descriptors(handover.listeners)
    made: list[int] = []
    env = dict(os.environ)
    env[UPGRADE_ENV] = handover.to_json()
    here = os.getcwd()
    try:
        for fd in keep:
            if not os.get_inheritable(fd):
                os.set_inheritable(fd, True)
                made.append(fd)
        os.chdir(cwd)
        # The same interpreter and command line as the workers: no shell.
        os.execve(sys.executable, [sys.executable, "-m", "tapster", *argv], env)  # noqa: S606
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.chdir(here)
        for fd in made:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)
        return exc
    raise AssertionError("execve returned")  # pragma: no cover
