"""The service that runs a :class:`Forwarder` on a listening endpoint."""

from __future__ import annotations

import asyncio
import logging
import socket

from tapster.endpoints import ClientEndpoint, ServerEndpoint, server_from_string
from tapster.portforward._proxy import (
    DEFAULT_HIGH_WATER,
    Connector,
    Forwarder,
    ForwardStats,
    host_port_connector,
)
from tapster.service import Service, remaining_budget

__all__ = ["PortForwardService"]

log = logging.getLogger("tapster.portforward")

#: Seconds aborted connections get to go away once the drain is over.
_ABORT_GRACE = 1.0


class PortForwardService(Service):
    """Listen on ``listen`` and forward every connection to ``destination``.

    ``destination`` is a client endpoint (any ``client_from_string`` result)
    or a ``(host, port)`` pair. The socket is bound in ``privileged_start``.

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
    ) -> None:
        super().__init__()
        self.endpoint = server_from_string(listen) if isinstance(listen, str) else listen
        connector: Connector
        if isinstance(destination, ClientEndpoint):
            connector = destination.connect
            shown = destination.description
        else:
            host, port = destination
            connector = host_port_connector(host, port)
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.forwarder = Forwarder(
            connector,
            shown,
            max_connections=max_connections,
            connect_timeout=connect_timeout,
            high_water=high_water,
        )
        self.drain_timeout = drain_timeout
        self._sockets: list[socket.socket] = []
        self._servers: list[asyncio.Server] = []
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
        loop = asyncio.get_running_loop()
        fw = self.forwarder
        fw.closing = False
        for sock in self._sockets:
            server = await loop.create_server(
                fw, sock=sock, ssl=self.endpoint.ssl_context, start_serving=True
            )
            self._servers.append(server)
        log.info("forwarding %s to %s", ", ".join(self._addresses), fw.destination)

    async def stop(self) -> None:
        """Stop listening, drain or close open connections, log the counters."""
        fw = self.forwarder
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

    def listening(self) -> list[str]:
        """The addresses connections are accepted on."""
        return list(self._addresses) if self._servers else []
