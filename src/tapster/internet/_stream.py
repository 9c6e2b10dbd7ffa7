"""Stream servers: listen on an endpoint, hand each connection to a handler.

Resource handling: the endpoint is bound in ``privileged_start`` (before the
loop runs, before privileges drop); ``start`` begins accepting on the bound
sockets; ``stop`` closes the listener first, lets the connections in flight
finish within the drain time, then closes what is left.

Error handling: accept errors that mean "out of resources" (EMFILE, ENFILE,
ENOBUFS, ENOMEM) are logged and backed off, and accepting resumes; errors of
one incoming connection (ECONNABORTED, a failed TLS handshake) only drop that
connection. A handler that raises is logged with the peer's address and its
connection is closed; the server goes on.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import inspect
import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from tapster.endpoints import ServerEndpoint, TCPServerEndpoint, UNIXServerEndpoint, _inherited
from tapster.metrics import CounterSeries, counter, gauge
from tapster.service import Service, remaining_budget

from ._tracking import TrackedProtocol, track

logger = logging.getLogger("tapster.internet")

#: An ``async def handler(reader, writer)`` stream callback.
StreamHandler: TypeAlias = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
#: An asyncio protocol factory (a Protocol class, or any callable returning one).
ProtocolFactory: TypeAlias = Callable[[], asyncio.BaseProtocol]

#: errno values that mean the process or system is out of resources.
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: errno values that concern only the one incoming connection.
_CONNECTION_ERRORS = frozenset(
    {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ECONNRESET, errno.ETIMEDOUT}
)
#: Longest pause between accept attempts while out of resources.
_MAX_ACCEPT_BACKOFF = 1.0
#: Seconds before the same accept error is logged again.
_LOG_QUIET = 10.0
#: Most connections taken from the listen queue in one go, after the awaited one.
_ACCEPT_BATCH = 128
#: Polling interval while draining connections that have no task to wait on.
_DRAIN_POLL = 0.02


def is_stream_handler(handler: object) -> bool:
    """True for an ``async def handler(reader, writer)``; False for a protocol factory."""
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004 - instances with async __call__
    return not inspect.isclass(handler) and inspect.iscoroutinefunction(call)


def resolve_endpoint(endpoint_or_description: ServerEndpoint | str) -> ServerEndpoint:
    """Parse a description string; pass an endpoint object through."""
    if isinstance(endpoint_or_description, str):
        # The description parsers (and their plugins) only when a string is given.
        from tapster.endpoints import server_from_string

        return server_from_string(endpoint_or_description)
    if not isinstance(endpoint_or_description, ServerEndpoint):
        raise TypeError(
            "expected a ServerEndpoint or a description string, "
            f"not {type(endpoint_or_description).__name__}"
        )
    return endpoint_or_description


_ACCEPTED = counter(
    "tapster_listener_connections_accepted",
    "Connections accepted, per listener (its addresses).",
    labels=("listener",),
)
_OPEN = gauge(
    "tapster_listener_connections_open",
    "Connections open now, per listener (its addresses).",
    labels=("listener",),
)


class StreamServerService(Service):
    """Serve stream connections (TCP, TLS, Unix) on one endpoint.

    ``handler`` is an ``async def handler(reader, writer)`` (the connection is
    closed when it returns) or an asyncio protocol factory. When the server
    stops, a protocol that has a ``stop_requested()`` method is told so at the
    start of the drain (an HTTP protocol closes its idle keep-alive
    connections there instead of holding the drain open). ``drain_timeout``
    caps the drain when the stop is not part of a ``shutdown`` budget; under a
    budget the drain gets what is left of it, minus a short reserve for
    closing the rest.

    Open connections are kept account of through a thin wrapper around each
    protocol (see ``_tracking``), never through references to transports, so
    TLS connections on uvloop drain like any other. ``transport.get_protocol()``
    returns that wrapper; its ``protocol`` attribute is the handler's protocol.
    """

    def __init__(
        self,
        endpoint_or_description: ServerEndpoint | str,
        handler: StreamHandler | ProtocolFactory,
        *,
        name: str | None = None,
        drain_timeout: float = 30.0,
    ) -> None:
        super().__init__()
        self.endpoint = resolve_endpoint(endpoint_or_description)
        if self.endpoint.socket_type != socket.SOCK_STREAM:
            raise ValueError(
                f"{self.endpoint.description!r} is not a stream endpoint; "
                "use DatagramServerService for datagrams"
            )
        if not callable(handler):
            raise TypeError(
                f"the handler of a stream server must be an async def handler(reader, writer) "
                f"or a protocol factory, not {type(handler).__name__}"
            )
        self.handler = handler
        self.name = name
        self.drain_timeout = drain_timeout
        self._stream_handler = is_stream_handler(handler)
        self._sockets: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        # Open connections, each entered and removed by its protocol's wrapper.
        self._connections: set[TrackedProtocol] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._addresses: list[str] = []
        self._accepted: CounterSeries | None = None

    def privileged_start(self) -> None:
        """Bind the endpoint; a failure raises ``ListenError`` naming the address."""
        self._sockets = self.endpoint.bind()
        self._addresses = [self.endpoint.address_of(sock) for sock in self._sockets]

    def release_privileged(self) -> None:
        """Close the bound sockets (the service never started)."""
        self._close_listeners()

    async def start(self) -> None:
        """Begin accepting on every bound socket."""
        loop = asyncio.get_running_loop()
        label = self._where()
        self._accepted = _ACCEPTED.labels(label)
        _OPEN.labels(label).set_function(self._connections.__len__)
        self._accepting = [
            loop.create_task(self._accept_loop(sock), name=f"accept {address}")
            for sock, address in zip(self._sockets, self._addresses, strict=True)
        ]

    def listening(self) -> list[str]:
        """The bound addresses, e.g. ``["tcp:127.0.0.1:8080"]``."""
        return list(self._addresses) if self._sockets else []

    @property
    def connections(self) -> int:
        """How many connections are open right now."""
        return sum(1 for conn in self._connections if not conn.transport.is_closing())

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        # The queue is emptied with plain accept() calls: on a blocking socket
        # (an endpoint plugin may hand one over) the last of them would hang the loop.
        sock.setblocking(False)
        backoff = 0.0
        tls = self.endpoint.ssl_context
        quiet_until = 0.0  # no repeat of the same complaint before this loop time
        last_errno: int | None = None
        shared = _inherited.is_shared(sock)
        while True:
            try:
                await _readable(loop, sock)
                conn, _ = sock.accept()
            except BlockingIOError:
                continue  # another worker (or the kernel's wake-up of several) took it
            except OSError as exc:
                if sock.fileno() == -1:
                    return
                if exc.errno in _CONNECTION_ERRORS:
                    continue
                resource = exc.errno in _RESOURCE_ERRORS
                pause = min(_MAX_ACCEPT_BACKOFF, max(0.05, backoff * 2)) if resource else 0.1
                if exc.errno != last_errno or loop.time() >= quiet_until:
                    # At most one line per kind of error every 10 s, not one per retry.
                    log = logger.warning if resource else logger.error
                    log(
                        "accepting on %s: %s; pausing %.2fs",
                        self._where(),
                        exc.strerror or exc,
                        pause,
                    )
                    last_errno, quiet_until = exc.errno, loop.time() + _LOG_QUIET
                backoff = pause
                await asyncio.sleep(pause)
                continue
            backoff = 0.0
            self._spawn(conn, tls)
            if shared:
                # A worker of ``tapster --workers`` shares this queue with the others:
                # one connection a pass, and the CPU offered to them (they were woken
                # by the same connection, maybe on this core), so that a burst is spread
                # over the workers instead of taken whole by the first to wake.
                os.sched_yield()
                await asyncio.sleep(0)
                continue
            # Take the rest of the listen queue now. One accept per pass of the
            # loop would keep a burst of new clients waiting behind every pass
            # the busy connections make (the last of 50 waited over 100 ms).
            for _ in range(_ACCEPT_BATCH):
                try:
                    conn, _ = sock.accept()
                except OSError:
                    break  # nothing waiting; a real error comes back from sock_accept
                conn.setblocking(False)
                self._spawn(conn, tls)

    def _spawn(self, conn: socket.socket, tls: ssl.SSLContext | None) -> None:
        """Set up one accepted connection in a task of its own (a TLS handshake takes a while)."""
        task = asyncio.get_running_loop().create_task(self._serve(conn, tls))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, conn: socket.socket, tls: ssl.SSLContext | None) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(self._protocol_factory(), conn, ssl=tls)
        except (TimeoutError, OSError) as exc:
            # A failed TLS handshake (ssl.SSLError is an OSError) or a peer that left.
            logger.debug("dropped a connection on %s: %s", self._where(), exc)
            conn.close()
            return
        except Exception as exc:
            logger.error(
                "the handler of %s failed to take a connection: %s",
                self._where(),
                exc,
                exc_info=exc,
            )
            conn.close()

    def _protocol_factory(self) -> ProtocolFactory:
        """Makes each connection's protocol, wrapped to keep account of the connection."""
        if self._stream_handler:
            loop = asyncio.get_running_loop()
            make: ProtocolFactory = functools.partial(self._stream_protocol, loop)
        else:
            make = self.handler  # type: ignore[assignment]
        return functools.partial(self._tracked_protocol, make)

    def _tracked_protocol(self, make: ProtocolFactory) -> asyncio.BaseProtocol:
        if self._accepted is not None:
            self._accepted.value += 1
        return track(make(), self._connections)

    def _stream_protocol(self, loop: asyncio.AbstractEventLoop) -> asyncio.BaseProtocol:
        reader = asyncio.StreamReader(limit=2**16, loop=loop)
        return asyncio.StreamReaderProtocol(reader, self._run_handler, loop=loop)

    def _run_handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._handle(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler: StreamHandler = self.handler  # type: ignore[assignment]
        try:
            await handler(reader, writer)
        except asyncio.CancelledError:
            writer.transport.abort()
            raise
        except Exception as exc:
            peer = writer.get_extra_info("peername")
            logger.error(
                "handler for a connection from %s on %s failed: %s",
                peer,
                self._where(),
                exc,
                exc_info=exc,
            )
            writer.transport.abort()
            return
        writer.close()

    def _where(self) -> str:
        return ", ".join(self._addresses) or self.endpoint.description

    def _close_listeners(self) -> None:
        sockets, self._sockets = self._sockets, []
        if sockets:
            self.endpoint.release(sockets)

    async def stop(self) -> None:
        """Close the listener, drain the open connections, close the rest."""
        # The accept tasks must be gone before their sockets are closed: a
        # closed descriptor number may be reused while still being watched.
        accepting, self._accepting = self._accepting, []
        for task in accepting:
            task.cancel()
        if accepting:
            await asyncio.wait(accepting)
        await self._take_backlog()
        self._close_listeners()
        self._announce_stop()
        budget = remaining_budget()
        if budget is None:
            drain = self.drain_timeout
        else:
            drain = min(self.drain_timeout, budget - min(0.25, budget * 0.1))
        await self._drain(max(0.0, drain))
        self._close_everything()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=1.0)
        if self._accepted is not None:
            _OPEN.remove(self._where())
            self._accepted = None
        self._addresses = []

    async def _take_backlog(self) -> None:
        """Accept what waits in the listen queues, to be served and drained like the rest.

        Closing a listener resets every connection still queued on it: clients
        that connected before the stop would see a reset, not an answer.
        """
        tls = self.endpoint.ssl_context
        before = set(self._tasks)
        for sock in self._sockets:
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    break  # nothing waiting (or not listening: a spare's own listener)
                conn.setblocking(False)
                self._spawn(conn, tls)
        taken = self._tasks - before
        if taken:
            logger.debug("took %d queued connection(s) on %s", len(taken), self._where())
            # Set up before the stop is announced, so that they hear it too.
            await asyncio.wait(taken, timeout=1.0)

    def _announce_stop(self) -> None:
        """Tell protocols that have a ``stop_requested()`` method that the server stops."""
        for conn in list(self._connections):
            if conn.transport.is_closing():
                continue
            hook = getattr(conn.protocol, "stop_requested", None)
            if callable(hook):
                try:
                    hook()
                except Exception as exc:
                    logger.error("stop_requested() failed on %s: %s", self._where(), exc)

    async def _drain(self, seconds: float) -> None:
        """Wait until every connection is gone, or ``seconds`` pass.

        A connection counts until its ``connection_lost``: one that is
        closing may still be sending the end of a response.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            busy = [task for task in self._tasks if not task.done()]
            remaining = deadline - loop.time()
            if not (busy or self._connections) or remaining <= 0:
                return
            if busy and not self._connections:
                await asyncio.wait(busy, timeout=remaining)
            else:
                await asyncio.sleep(min(_DRAIN_POLL, remaining))

    def _close_everything(self) -> None:
        leftover = [conn.transport for conn in self._connections]
        for task in list(self._tasks):
            task.cancel()
        for transport in leftover:
            transport.abort()
        if leftover:
            logger.info(
                "closed %d connection(s) on %s that were still open after the drain",
                len(leftover),
                ", ".join(self._addresses),
            )


class TCPServer(StreamServerService):
    """A TCP server on ``port`` (``interface``: an IP literal; empty means every IPv4 address)."""

    def __init__(
        self,
        port: int,
        handler: StreamHandler | ProtocolFactory,
        interface: str = "",
        backlog: int = 128,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(TCPServerEndpoint(port, interface, backlog), handler, name=name)


class SSLServer(StreamServerService):
    """A TLS server on ``port`` using the server-side ``context``."""

    def __init__(
        self,
        port: int,
        handler: StreamHandler | ProtocolFactory,
        context: ssl.SSLContext,
        interface: str = "",
        backlog: int = 128,
        *,
        name: str | None = None,
    ) -> None:
        endpoint = TCPServerEndpoint(port, interface, backlog, ssl_context=context)
        super().__init__(endpoint, handler, name=name)


class UNIXServer(StreamServerService):
    """A Unix-socket server at ``path`` (``mode``: the socket file's permissions)."""

    def __init__(
        self,
        path: str,
        handler: StreamHandler | ProtocolFactory,
        mode: int | None = None,
        backlog: int = 128,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(UNIXServerEndpoint(path, mode, backlog), handler, name=name)


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Wait until ``sock`` has a connection to accept, without accepting it.

    ``loop.sock_accept`` accepts inside the loop's callback: a stop that cancels
    the accepting task after that callback ran, but before the task resumed,
    drops the accepted socket, and its client sees a reset. Waiting only for
    readiness leaves nothing to lose; the accept itself runs in the task.
    """
    ready: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
