"""Datagram (UDP) servers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from tapster.endpoints import ServerEndpoint, TCPServerEndpoint
from tapster.internet._stream import resolve_endpoint
from tapster.service import Service


class DatagramServerService(Service):
    """Receive datagrams on an endpoint (``udp:PORT``) with an asyncio DatagramProtocol.

    The socket is bound in ``privileged_start``; ``stop`` closes the transport.
    """

    def __init__(
        self,
        endpoint_or_description: ServerEndpoint | str,
        protocol_factory: Callable[[], asyncio.DatagramProtocol],
        *,
        name: str | None = None,
    ) -> None:
        super().__init__()
        self.endpoint = resolve_endpoint(endpoint_or_description)
        if self.endpoint.socket_type != socket.SOCK_DGRAM:
            raise ValueError(
                f"{self.endpoint.description!r} is not a datagram endpoint "
                "(use udp:PORT); use StreamServerService for streams"
            )
        self.protocol_factory = protocol_factory
        self.name = name
        self._sockets: list[socket.socket] = []
        self._transports: list[asyncio.DatagramTransport] = []
        self._addresses: list[str] = []

    def privileged_start(self) -> None:
        """Bind the datagram socket."""
        self._sockets = self.endpoint.bind()
        self._addresses = [self.endpoint.address_of(sock) for sock in self._sockets]

    def release_privileged(self) -> None:
        """Close the bound socket (the service never started)."""
        sockets, self._sockets = self._sockets, []
        self.endpoint.release(sockets)

    async def start(self) -> None:
        """Attach the protocol to the bound socket."""
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            transport, _ = await loop.create_datagram_endpoint(self.protocol_factory, sock=sock)
            self._transports.append(transport)

    async def stop(self) -> None:
        """Close the transport (the socket goes with it)."""
        transports, self._transports = self._transports, []
        for transport in transports:
            transport.close()
        await asyncio.sleep(0)
        sockets, self._sockets = self._sockets, []
        self.endpoint.release(sockets)
        self._addresses = []

    def listening(self) -> list[str]:
        """The bound addresses, e.g. ``["udp:127.0.0.1:5353"]``."""
        return list(self._addresses)


class UDPServer(DatagramServerService):
    """A UDP server on ``port`` (``interface``: an IP literal; empty means every IPv4 address)."""

    def __init__(
        self,
        port: int,
        protocol_factory: Callable[[], asyncio.DatagramProtocol],
        interface: str = "",
        *,
        name: str | None = None,
    ) -> None:
        endpoint = TCPServerEndpoint(port, interface, socket_type=socket.SOCK_DGRAM)
        super().__init__(endpoint, protocol_factory, name=name)
