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

With ``--reuse-port`` the supervisor only *reserves* each plain TCP endpoint
(bound with ``SO_REUSEPORT``, not listening: see
:meth:`TCPServerEndpoint.reserve <tapster.endpoints.TCPServerEndpoint.reserve>`),
and a worker that inherits such a socket binds a listener of its own to the
same address instead: each worker has its own accept queue, and the kernel
spreads new connections over the listening ones. A spare worker binds its
listeners without listening (:func:`inherit` with ``defer_listen``) until
:func:`start_listening`, so that no connection waits in the queue of a
worker that does not serve yet.
"""

from __future__ import annotations

import contextlib
import os
import socket
import weakref
from collections.abc import Callable, Iterator

from tapster.endpoints._errors import ListenError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tapster.endpoints._server import ServerEndpoint

__all__ = [
    "Listener",
    "bind",
    "inherit",
    "inheriting",
    "is_shared",
    "recording",
    "start_listening",
    "stop_inheriting",
]

#: A bound listener as handed over: the endpoint's description and its descriptors.
Listener = tuple[str, list[int]]


class _Table:
    """What this process does on ``bind()``: record, inherit, or just bind."""

    def __init__(self) -> None:
        self.recorded: list[tuple[ServerEndpoint, list[socket.socket]]] | None = None
        self.inherited: dict[str, list[list[int]]] | None = None
        self.used: dict[str, int] = {}
        self.depth = 0
        self.reuse_port = False  # recording: reserve plain TCP endpoints
        self.defer_listen = False  # inheriting: own listeners wait for start_listening()
        self.keep_reserved = False  # inheriting: a reservation stays one (an upgraded supervisor)
        self.bind_missing = False  # inheriting: bind what was not inherited (a --reload child)
        self.pending: list[tuple[socket.socket, int]] = []  # (own listener, backlog)
        self.shared: weakref.WeakSet[socket.socket] = weakref.WeakSet()


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
        reserve = _reserve_of(endpoint) if _table.reuse_port else None
        sockets = reserve() if reserve is not None else real_bind(endpoint)
        if _table.recorded is not None:
            _table.recorded.append((endpoint, sockets))
        return sockets
    description = endpoint.description
    index = _table.used.get(description, 0)
    entries = inherited.get(description, [])
    if index >= len(entries):
        if _table.bind_missing:  # a --reload child: a new endpoint of the new code
            sockets = real_bind(endpoint)
            if _table.recorded is not None:
                _table.recorded.append((endpoint, sockets))
            return sockets
        raise ListenError(
            description,
            "the supervisor did not bind it (a worker must build the same listeners "
            "as the supervisor: is the service tree random or time-dependent?)",
        )
    _table.used[description] = index + 1
    fds = entries[index]
    from tapster.endpoints._server import DEFAULT_BACKLOG

    sockets = []
    try:
        for fd in fds:
            sock = socket.socket(fileno=os.dup(fd))
            sock.setblocking(False)
            sockets.append(sock)
            if not _table.keep_reserved and _is_reserved(sock):
                sockets[-1] = _own_listener(sock, getattr(endpoint, "backlog", DEFAULT_BACKLOG))
                sock.close()
            else:
                _table.shared.add(sock)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ListenError(description, f"the inherited socket cannot be used: {exc}") from None
    if _table.recorded is not None:
        _table.recorded.append((endpoint, sockets))
    return sockets


def _reserve_of(endpoint: ServerEndpoint) -> Callable[[], list[socket.socket]] | None:
    """How ``--reuse-port`` reserves ``endpoint``: plain TCP streams, their bind not overridden."""
    from tapster.endpoints._server import TCPServerEndpoint

    if (
        isinstance(endpoint, TCPServerEndpoint)
        and endpoint.socket_type == socket.SOCK_STREAM
        and type(endpoint).bind is TCPServerEndpoint.bind
    ):
        return endpoint.reserve
    return None


def _is_reserved(sock: socket.socket) -> bool:
    """Whether ``sock`` is a supervisor's reservation: TCP, bound, not listening."""
    return (
        sock.family in (socket.AF_INET, socket.AF_INET6)
        and sock.type == socket.SOCK_STREAM
        and not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    )


def _own_listener(reserved: socket.socket, backlog: int) -> socket.socket:
    """A listener of this process's own on the address ``reserved`` holds (SO_REUSEPORT)."""
    sock = socket.socket(reserved.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if reserved.family == socket.AF_INET6:
            only = reserved.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, only)
        sock.bind(reserved.getsockname())
        sock.setblocking(False)
        if _table.defer_listen:
            _table.pending.append((sock, backlog))
        else:
            sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def start_listening() -> None:
    """Listen on the own listeners bound so far (a spare worker told to serve)."""
    pending, _table.pending = _table.pending, []
    _table.defer_listen = False
    for sock, backlog in pending:
        if sock.fileno() >= 0:
            sock.listen(backlog)


@contextlib.contextmanager
def recording(
    reuse_port: bool = False,
) -> Iterator[list[tuple[ServerEndpoint, list[socket.socket]]]]:
    """Note every listener bound inside the block, in order (the supervisor's side).

    With ``reuse_port``, plain TCP endpoints are reserved rather than bound
    and listened on (see the module docstring).
    """
    found: list[tuple[ServerEndpoint, list[socket.socket]]] = []
    _table.recorded = found
    _table.reuse_port = reuse_port
    try:
        yield found
    finally:
        _table.recorded = None
        _table.reuse_port = False


def inherit(
    listeners: list[Listener],
    *,
    defer_listen: bool = False,
    keep_reserved: bool = False,
    bind_missing: bool = False,
) -> None:
    """From now on, binds take these inherited descriptors (the worker's side).

    The descriptors are made non-inheritable, so that programs the service
    starts do not keep the listeners open. With ``defer_listen``, listeners of
    this process's own (``--reuse-port``) are bound but listen only once
    :func:`start_listening` is called. With ``keep_reserved`` (a supervisor
    re-executed by an upgrade, inside :func:`recording`) a ``--reuse-port``
    reservation is taken as it is. With ``bind_missing`` (a ``--reload`` child, whose
    new code may listen somewhere new) an endpoint not inherited is bound, not refused.
    """
    table: dict[str, list[list[int]]] = {}
    for description, fds in listeners:
        for fd in fds:
            os.set_inheritable(fd, False)
        table.setdefault(description, []).append(list(fds))
    _table.inherited = table
    _table.used = {}
    _table.defer_listen = defer_listen
    _table.keep_reserved = keep_reserved
    _table.bind_missing = bind_missing
    _table.pending = []


def is_shared(sock: socket.socket) -> bool:
    """True for a listener whose queue this process shares with other workers."""
    return sock in _table.shared


def stop_inheriting() -> None:
    """Binds bind again (an upgraded supervisor, once it adopted its listeners)."""
    _table.inherited = None
    _table.used = {}
    _table.keep_reserved = False
    _table.bind_missing = False


def inheriting() -> bool:
    """True in a process whose listeners come from its supervisor."""
    return _table.inherited is not None
