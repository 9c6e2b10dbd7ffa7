"""The process-wide table of listeners bound by another process (``--workers``).

A supervisor binds every endpoint of the tree once, while privileged, and
hands the sockets to its workers, which must not bind again (a second bind of
``tcp:8080`` fails, and one of ``tcp:0`` would listen somewhere else). Every
:meth:`ServerEndpoint.bind <tapster.endpoints.ServerEndpoint.bind>` goes
through :func:`bind` here:

* normally it just binds;
* in the supervisor, inside :func:`recording`, it binds and notes the sockets
  under the endpoint's description, in order;
* in a worker, after :func:`inherit`, it binds nothing: the n-th bind of a
  description gets (duplicates of) the sockets of the supervisor's n-th bind
  of that description. A description the supervisor did not bind is an
  error, not a silent second listener.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator

from tapster.endpoints._errors import ListenError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tapster.endpoints._server import ServerEndpoint

__all__ = ["Listener", "bind", "inherit", "inheriting", "recording"]

#: A bound listener as handed over: the endpoint's description and its descriptors.
Listener = tuple[str, list[int]]


class _Table:
    """What this process does on ``bind()``: record, inherit, or just bind."""

    def __init__(self) -> None:
        self.recorded: list[tuple[ServerEndpoint, list[socket.socket]]] | None = None
        self.inherited: dict[str, list[list[int]]] | None = None
        self.used: dict[str, int] = {}
        self.depth = 0


_table = _Table()


def bind(
    endpoint: ServerEndpoint, real_bind: Callable[[ServerEndpoint], list[socket.socket]]
) -> list[socket.socket]:
    """Bind ``endpoint`` the way this process must (see the module docstring)."""
    if _table.depth:  # a subclass's bind calling super().bind(): one listener, not two
        return real_bind(endpoint)
    _table.depth += 1
    try:
        return _bind(endpoint, real_bind)
    finally:
        _table.depth -= 1


def _bind(
    endpoint: ServerEndpoint, real_bind: Callable[[ServerEndpoint], list[socket.socket]]
) -> list[socket.socket]:
    inherited = _table.inherited
    if inherited is None:
        sockets = real_bind(endpoint)
        if _table.recorded is not None:
            _table.recorded.append((endpoint, sockets))
        return sockets
    description = endpoint.description
    index = _table.used.get(description, 0)
    entries = inherited.get(description, [])
    if index >= len(entries):
        raise ListenError(
            description,
            "the supervisor did not bind it (a worker must build the same listeners "
            "as the supervisor: is the service tree random or time-dependent?)",
        )
    _table.used[description] = index + 1
    fds = entries[index]
    sockets = []
    try:
        for fd in fds:
            sock = socket.socket(fileno=os.dup(fd))
            sock.setblocking(False)
            sockets.append(sock)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ListenError(description, f"the inherited socket cannot be used: {exc}") from None
    return sockets


@contextlib.contextmanager
def recording() -> Iterator[list[tuple[ServerEndpoint, list[socket.socket]]]]:
    """Note every listener bound inside the block, in order (the supervisor's side)."""
    found: list[tuple[ServerEndpoint, list[socket.socket]]] = []
    _table.recorded = found
    try:
        yield found
    finally:
        _table.recorded = None


def inherit(listeners: list[Listener]) -> None:
    """From now on, binds take these inherited descriptors (the worker's side).

    The descriptors are made non-inheritable, so that programs the service
    starts do not keep the listeners open.
    """
    table: dict[str, list[list[int]]] = {}
    for description, fds in listeners:
        for fd in fds:
            os.set_inheritable(fd, False)
        table.setdefault(description, []).append(list(fds))
    _table.inherited = table
    _table.used = {}


def inheriting() -> bool:
    """True in a process whose listeners come from its supervisor."""
    return _table.inherited is not None
