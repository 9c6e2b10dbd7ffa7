"""Keeping account of a server's open connections on every loop and transport.

A stream server must know its open connections to drain them when it stops.
It cannot hold weak references to transports (uvloop's TLS transport does not
take them), and it must not hold strong ones after a connection ends (a closed
TLS transport still carries about 256 KiB of buffers on either loop). So each
connection's protocol is wrapped in a :class:`TrackedProtocol`: it joins the
server's set when the connection is made and leaves it in ``connection_lost``,
the one event every loop delivers for every kind of transport. Everything else
is handed to the wrapped protocol unchanged.
"""

from __future__ import annotations

import asyncio
from typing import cast

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["TrackedProtocol", "track"]


class TrackedProtocol(asyncio.BaseProtocol):
    """A connection in ``connections`` from ``connection_made`` to ``connection_lost``.

    ``protocol`` is the wrapped protocol (the one the server's handler made);
    ``transport`` is set once the connection is made, which is when the
    wrapper enters the set.
    """

    __slots__ = ("_connections", "protocol", "transport")

    transport: asyncio.Transport

    def __init__(self, protocol: asyncio.BaseProtocol, connections: set[TrackedProtocol]) -> None:
        self.protocol = protocol
        self._connections = connections

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self._connections.add(self)
        self.protocol.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self.protocol.connection_lost(exc)

    def pause_writing(self) -> None:
        self.protocol.pause_writing()

    def resume_writing(self) -> None:
        self.protocol.resume_writing()


class _TrackedStream(TrackedProtocol, asyncio.Protocol):
    """Wraps a protocol that reads through ``data_received``.

    ``data_received`` is the wrapped protocol's own bound method, stored on the
    instance: the loop looks it up there (uvloop once per connection, asyncio per
    read) and calls it with no hop through the wrapper, once per read.
    """

    __slots__ = ("data_received",)

    protocol: asyncio.Protocol

    def __init__(self, protocol: asyncio.Protocol, connections: set[TrackedProtocol]) -> None:
        super().__init__(protocol, connections)
        self.data_received = protocol.data_received  # type: ignore[method-assign]

    def eof_received(self) -> bool | None:
        return self.protocol.eof_received()


class _TrackedBuffered(TrackedProtocol, asyncio.BufferedProtocol):
    """Wraps a protocol that reads into its own buffer (``get_buffer``)."""

    __slots__ = ()

    protocol: asyncio.BufferedProtocol

    def get_buffer(self, sizehint: int) -> ReadableBuffer:
        return self.protocol.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.protocol.buffer_updated(nbytes)

    def eof_received(self) -> bool | None:
        return self.protocol.eof_received()


def track(protocol: asyncio.BaseProtocol, connections: set[TrackedProtocol]) -> TrackedProtocol:
    """Wrap ``protocol`` so that its connection is in ``connections`` while it is open.

    The wrapper reads the way the protocol does (loops pick the buffered read
    path by ``isinstance``), so a ``BufferedProtocol`` stays one.
    """
    if isinstance(protocol, asyncio.BufferedProtocol):
        return _TrackedBuffered(protocol, connections)
    return _TrackedStream(cast(asyncio.Protocol, protocol), connections)
