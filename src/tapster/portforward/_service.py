"""The service that runs a forwarding engine on a listening endpoint."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Collection
from typing import Literal, Protocol

from tapster.endpoints import (
    ClientEndpoint,
    ServerEndpoint,
    TCPClientEndpoint,
    UNIXClientEndpoint,
    server_from_string,
)
from tapster.portforward import _metrics
from tapster.portforward._proxy import (
    DEFAULT_HIGH_WATER,
    Connector,
    Forwarder,
    ForwardStats,
    host_port_connector,
)
from tapster.portforward._splice import (
    Resolver,
    SpliceForwarder,
    splice_available,
    tcp_resolver,
    unix_resolver,
)
from tapster.service import Service, remaining_budget

__all__ = ["Engine", "PortForwardService"]

log = logging.getLogger("tapster.portforward")

#: Seconds aborted connections get to go away once the drain is over.
_ABORT_GRACE = 1.0

#: ``splice``: zero-copy, plain TCP/Unix on Linux; ``transport``: asyncio protocols,
#: works everywhere and with TLS; ``auto``: splice where it can, else transport.
Engine = Literal["auto", "splice", "transport"]


class _LinkLike(Protocol):
    up: int
    down: int
    seen: int
    quiet: float
    peer_name: str

    def close(self) -> None: ...


class _Engine(Protocol):
    stats: ForwardStats
    destination: str
    closing: bool

    @property
    def links(self) -> Collection[_LinkLike]: ...

    def close_all(self, abort: bool = False) -> None: ...

    async def wait_idle(self) -> None: ...


class PortForwardService(Service):
    """Listen on ``listen`` and forward every connection to ``destination``.

    ``destination`` is a client endpoint (any ``client_from_string`` result)
    or a ``(host, port)`` pair. The socket is bound in ``privileged_start``.
    ``engine`` picks how bytes move (see :data:`Engine`); ``auto`` uses
    ``splice`` when both ends are plain TCP or Unix sockets on Linux.

    Stop: the listener closes at once; open connections get ``drain_timeout``
    seconds (never more than what is left of the shutdown budget) to end by
    themselves, then are closed after flushing what the proxy holds, and
    aborted if that does not finish within a second. The counters are logged.
    """

    def __init__(
        self,
        listen: ServerEndpoint | str,
        destination: ClientEndpoint | tuple[str, int],
        *,
        max_connections: int | None = None,
        connect_timeout: float = 10.0,
        drain_timeout: float = 5.0,
        high_water: int = DEFAULT_HIGH_WATER,
        engine: Engine = "auto",
        idle_timeout: float | None = None,
    ) -> None:
        super().__init__()
        self.endpoint = server_from_string(listen) if isinstance(listen, str) else listen
        if self.endpoint.socket_type != socket.SOCK_STREAM:
            raise ValueError(
                f"cannot forward from {self.endpoint.description or self.endpoint!r}: "
                "it is not a stream endpoint (use tcp:, ssl: or unix:)"
            )
        connector: Connector
        if isinstance(destination, ClientEndpoint):
            connector = destination.connect
            shown = destination.description
        else:
            host, port = destination
            connector = host_port_connector(host, port)
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        resolver = _resolver(destination)
        why_not = _why_not_splice(self.endpoint, resolver)
        if engine == "splice" and why_not:
            raise ValueError(f"the splice engine cannot be used here: {why_not}")
        self.forwarder: _Engine
        if engine != "transport" and not why_not:
            assert resolver is not None
            self.engine: Engine = "splice"
            self.forwarder = SpliceForwarder(
                resolver, shown, max_connections=max_connections, connect_timeout=connect_timeout
            )
        else:
            self.engine = "transport"
            self.forwarder = Forwarder(
                connector,
                shown,
                max_connections=max_connections,
                connect_timeout=connect_timeout,
                high_water=high_water,
            )
        self.drain_timeout = drain_timeout
        self.idle_timeout = idle_timeout
        self._sweeper: asyncio.Task[None] | None = None
        self._sockets: list[socket.socket] = []
        self._servers: list[asyncio.Server] = []
        self._serving = False
        self._addresses: list[str] = []

    @property
    def stats(self) -> ForwardStats:
        """The forwarder's counters (:class:`~tapster.portforward.ForwardStats`)."""
        return self.forwarder.stats

    def privileged_start(self) -> None:
        """Bind the listening sockets (may need privileges for ports below 1024)."""
        self._sockets = self.endpoint.bind()
        self._addresses = [self.endpoint.address_of(s) for s in self._sockets]

    def release_privileged(self) -> None:
        """Close sockets that were bound but never served."""
        self.endpoint.release(self._sockets)
        self._sockets = []
        self._addresses = []

    async def start(self) -> None:
        """Serve the bound sockets; when this returns, connections are forwarded."""
        fw = self.forwarder
        fw.closing = False
        if isinstance(fw, SpliceForwarder):
            for sock in self._sockets:
                fw.serve(sock)
        else:
            assert isinstance(fw, Forwarder)
            loop = asyncio.get_running_loop()
            for sock in self._sockets:
                server = await loop.create_server(
                    fw, sock=sock, ssl=self.endpoint.ssl_context, start_serving=True
                )
                self._servers.append(server)
        self._serving = True
        _metrics.watch(self)
        if self.idle_timeout:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep(self.idle_timeout), name="portforward idle sweep"
            )
        log.info(
            "forwarding %s to %s (%s engine)",
            ", ".join(self._addresses),
            fw.destination,
            self.engine,
        )

    async def stop(self) -> None:
        """Stop listening, drain or close open connections, log the counters."""
        fw = self.forwarder
        self._serving = False
        _metrics.unwatch(self)
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        if isinstance(fw, SpliceForwarder):
            fw.stop_serving()
        for server in self._servers:
            server.close()
        fw.closing = True
        drain = self.drain_timeout
        budget = remaining_budget()
        if budget is not None:
            drain = max(0.0, min(drain, budget - _ABORT_GRACE - 0.2))
        try:
            async with asyncio.timeout(drain):
                await fw.wait_idle()
        except TimeoutError:
            if fw.links:
                log.info("closing %d forwarded connections that are still open", len(fw.links))
            fw.close_all()
            try:
                async with asyncio.timeout(_ABORT_GRACE):
                    await fw.wait_idle()
            except TimeoutError:
                fw.close_all(abort=True)
                await fw.wait_idle()
        self._servers.clear()
        self.endpoint.release(self._sockets)
        self._sockets = []
        log.info("portforward to %s stopped: %s", fw.destination, fw.stats.summary())

    async def _sweep(self, idle: float) -> None:
        """Close connections on which no byte moved, either way, for ``idle`` seconds."""
        interval = min(max(idle / 4, 0.05), 5.0)
        fw = self.forwarder
        while True:
            await asyncio.sleep(interval)
            for link in list(fw.links):
                moved = link.up + link.down
                if moved != link.seen:
                    link.seen = moved
                    link.quiet = 0.0
                    continue
                link.quiet += interval
                if link.quiet >= idle:
                    log.debug("closing the idle connection from %s", link.peer_name)
                    fw.stats.idle_closed += 1
                    link.close()

    def listening(self) -> list[str]:
        """The addresses connections are accepted on."""
        return list(self._addresses) if self._serving else []


def _resolver(destination: ClientEndpoint | tuple[str, int]) -> Resolver | None:
    """How the splice engine finds the destination; None when it cannot reach it."""
    if isinstance(destination, tuple):
        return tcp_resolver(*destination)
    if isinstance(destination, TCPClientEndpoint) and destination.ssl_context is None:
        return tcp_resolver(destination.host, destination.port)
    if isinstance(destination, UNIXClientEndpoint):
        return unix_resolver(destination.path)
    return None


def splice_problem(endpoint: ServerEndpoint, destination: ClientEndpoint | tuple[str, int]) -> str:
    """Why the splice engine cannot forward ``endpoint`` to ``destination`` ("" if it can)."""
    return _why_not_splice(endpoint, _resolver(destination))


def _why_not_splice(endpoint: ServerEndpoint, resolver: Resolver | None) -> str:
    """Why the splice engine cannot serve this pair of ends ("" when it can)."""
    if not splice_available():
        return "os.splice is not available on this system"
    if endpoint.ssl_context is not None:
        return "the listening endpoint uses TLS"
    if endpoint.socket_type != socket.SOCK_STREAM:
        return "the listening endpoint is not a stream socket"
    if resolver is None:
        return "the destination is not a plain TCP or Unix socket"
    return ""
