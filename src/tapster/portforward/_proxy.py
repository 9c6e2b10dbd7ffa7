"""The forwarding engine: two asyncio protocols joined back to back.

Each accepted connection becomes a :class:`_Link` with two halves, the client
side (accepted by our listener) and the destination side (our outgoing
connection). Bytes read on one half are written straight to the other
half's transport; no coroutine runs per chunk.

Resource handling: backpressure is the transports' own flow control. When
the transport we write to buffers more than its high-water mark, asyncio
calls ``pause_writing`` on the protocol that owns it, and that protocol
pauses reading on the other half. ``resume_writing`` resumes it. So a slow
reader never makes the proxy hold more than about one high-water mark plus
one read per direction and connection.

Half-close: an EOF read on one half is passed on as ``write_eof`` on the
other, and the connection stays open the other way until that direction
sees its own EOF too (or either socket closes).

Error handling: a destination that cannot be reached closes the client's
connection and is logged in one line; the listener goes on.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

from tapster.internet import is_tls

__all__ = ["Connector", "ForwardStats", "Forwarder", "host_port_connector"]

log = logging.getLogger("tapster.portforward")

#: Opens the outgoing connection for one forwarded connection: called with a
#: protocol factory, returns what ``loop.create_connection`` returns.
Connector = Callable[
    [Callable[[], asyncio.Protocol]],
    Awaitable[tuple[asyncio.BaseTransport, asyncio.Protocol]],
]

#: Write buffer high-water mark per transport. Large enough that a fast pair of
#: peers rarely pauses, small enough to keep memory bounded per connection.
DEFAULT_HIGH_WATER = 256 * 1024


def host_port_connector(host: str, port: int) -> Connector:
    """A :data:`Connector` that opens a TCP connection to ``host:port``."""

    async def connect(
        factory: Callable[[], asyncio.Protocol],
    ) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
        loop = asyncio.get_running_loop()
        return await loop.create_connection(factory, host, port)

    return connect


def connect_failure(exc: OSError) -> str:
    """Why a connection attempt failed, in a few words (``Connection refused``)."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if exc.errno:
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


def describe_peer(address: object) -> str:
    """``1.2.3.4:5678``, ``[::1]:5678`` or a Unix path, for the debug log."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address) if address else "?"


def log_closed(peer: str, began: float, up: int, down: int) -> None:
    """One debug line per finished connection (nothing is formatted unless enabled)."""
    if log.isEnabledFor(logging.DEBUG):
        took = asyncio.get_running_loop().time() - began
        log.debug(
            "connection from %s closed after %.1f s: %d bytes to the destination, %d back",
            peer,
            took,
            up,
            down,
        )


@dataclass
class ForwardStats:
    """Counters of one forwarder, logged when it stops."""

    connections: int = 0
    """Connections accepted and forwarded (or attempted)."""
    active: int = 0
    """Connections open right now."""
    peak: int = 0
    """Most connections open at once."""
    rejected: int = 0
    """Connections closed at once because ``max_connections`` were open."""
    failed: int = 0
    """Connections whose destination could not be reached."""
    bytes_to_dest: int = 0
    """Bytes read from clients and written to the destination."""
    bytes_from_dest: int = 0
    """Bytes read from the destination and written to clients."""
    idle_closed: int = 0
    """Connections closed because nothing moved for the idle timeout."""

    def summary(self) -> str:
        """One log line with every counter."""
        idle = f", {self.idle_closed} closed when idle" if self.idle_closed else ""
        return (
            f"{self.connections} connections ({self.rejected} rejected, "
            f"{self.failed} failed to connect, peak {self.peak} at once), "
            f"{self.bytes_to_dest} bytes to the destination, "
            f"{self.bytes_from_dest} bytes from it{idle}"
        )


class _Half(asyncio.Protocol):
    """One side of a link: forwards what it reads to the other side.

    Before the link is made (the destination still being connected), what a side
    reads is held in ``early`` with its reading paused, and an end of stream is
    noted: either side may speak first, and a read can come before the connector
    returns. ``release`` and ``carry_on`` pass them on once the link exists.
    """

    __slots__ = ("early", "eof", "link", "peer", "transport")

    def __init__(self, link: _Link) -> None:
        self.link = link
        self.peer: _Half | None = None
        self.transport: asyncio.Transport | None = None
        self.eof = False
        self.early = bytearray()

    def counted(self, size: int) -> None:
        """Add ``size`` bytes read on this side to the link's and forwarder's counters."""
        raise NotImplementedError

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None:
            if self.transport is not None:
                self.early += data
                self.transport.pause_reading()
        elif peer.transport is not None:
            self.counted(len(data))
            peer.transport.write(data)

    # Flow control: our transport's buffer is full, so stop reading the peer.
    def pause_writing(self) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            peer.transport.pause_reading()

    def resume_writing(self) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            peer.transport.resume_reading()

    def eof_received(self) -> bool:
        self.eof = True
        peer = self.peer
        if peer is None:
            return self._can_stay_half_open()  # passed on once the link is made
        if peer.transport is None:
            return False
        if peer.eof:
            # Both directions are finished: flush and close both.
            self.link.close()
            return False
        if peer.transport.can_write_eof():
            peer.transport.write_eof()
            return self._can_stay_half_open()  # for the other direction
        self.link.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.link.half_lost(self)

    def release(self) -> None:
        """The link is made: pass on what was read before it."""
        peer = self.peer
        if self.early and peer is not None and peer.transport is not None:
            self.counted(len(self.early))
            peer.transport.write(bytes(self.early))
        self.early.clear()

    def carry_on(self) -> bool:
        """The link is made: read on, or pass on an end that came before it.

        False when that end cannot be passed on (no half-close): the link must close.
        """
        peer = self.peer
        if not self.eof:
            if self.transport is not None:
                self.transport.resume_reading()
            return True
        if peer is not None and peer.transport is not None and peer.transport.can_write_eof():
            peer.transport.write_eof()
            return True
        return False

    def _can_stay_half_open(self) -> bool:
        """What ``eof_received`` returns to keep reading after EOF: never over TLS."""
        return self.transport is not None and not is_tls(self.transport)


class _ClientHalf(_Half):
    """The accepted connection."""

    __slots__ = ()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.link.client_connected(self.transport)

    def counted(self, size: int) -> None:
        self.link.up += size
        self.link.forwarder.stats.bytes_to_dest += size


class _DestHalf(_Half):
    """The outgoing connection to the destination."""

    __slots__ = ()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def counted(self, size: int) -> None:
        self.link.down += size
        self.link.forwarder.stats.bytes_from_dest += size


class _Link:
    """One forwarded connection: a client half, a destination half, their lifetime."""

    __slots__ = (
        "began",
        "client",
        "connecting",
        "counted",
        "dest",
        "done",
        "down",
        "forwarder",
        "peer_name",
        "quiet",
        "seen",
        "up",
    )

    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder
        self.client = _ClientHalf(self)
        self.dest: _DestHalf | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.counted = False
        self.done = False
        # Per-connection bytes each way, and what the idle sweep saw last.
        self.up = self.down = self.seen = 0
        self.quiet = self.began = 0.0
        self.peer_name = "?"

    def client_connected(self, transport: asyncio.Transport) -> None:
        fw = self.forwarder
        stats = fw.stats
        if fw.closing or (fw.max_connections is not None and stats.active >= fw.max_connections):
            stats.rejected += 1
            transport.abort()
            return
        stats.connections += 1
        stats.active += 1
        stats.peak = max(stats.peak, stats.active)
        self.counted = True
        fw.links.add(self)
        self.began = asyncio.get_running_loop().time()
        self.peer_name = describe_peer(transport.get_extra_info("peername"))
        transport.set_write_buffer_limits(high=fw.high_water)
        # Nothing is read from the client until the destination answers, so
        # nothing needs buffering meanwhile.
        transport.pause_reading()
        self.connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        fw = self.forwarder
        dest = _DestHalf(self)
        try:
            async with asyncio.timeout(fw.connect_timeout):
                transport, _ = await fw.connector(lambda: dest)
        except asyncio.CancelledError:
            self.connecting = None
            if dest.transport is not None:  # connected just before the client left
                dest.transport.abort()
            return
        except (OSError, TimeoutError) as exc:
            self.connecting = None
            fw.stats.failed += 1
            log.warning("Couldn't connect to %s: %s", fw.destination, connect_failure(exc))
            self.close(abort=True)
            return
        self.connecting = None
        transport = cast(asyncio.Transport, transport)
        client = self.client
        if client.transport is None or self.done:
            transport.abort()
            return
        self.dest = dest
        dest.peer = client
        client.peer = dest
        dest.release()
        if dest.transport is None:
            # The destination said its piece and hung up before the link was made.
            client.transport.close()
            return
        transport.set_write_buffer_limits(high=fw.high_water)
        client.release()
        # Both ended before the link: nothing left to carry; else each reads on.
        if (client.eof and dest.eof) or not (client.carry_on() and dest.carry_on()):
            self.close()

    def close(self, abort: bool = False) -> None:
        """Close both halves (flushing buffered bytes unless ``abort``)."""
        self.done = True
        if self.connecting is not None:
            self.connecting.cancel()
        for half in (self.client, self.dest):
            if half is not None and half.transport is not None:
                if abort:
                    half.transport.abort()
                elif not half.transport.is_closing():
                    half.transport.close()

    def half_lost(self, half: _Half) -> None:
        """One socket is gone: finish the other one and settle the counters."""
        other = half.peer
        if half is self.client and self.dest is None:
            # Lost while the destination was still being connected.
            self.close(abort=True)
        elif other is not None and other.transport is not None and not other.transport.is_closing():
            # Let the other side flush what it still holds, then close.
            other.transport.close()
        if self.client.transport is None and (self.dest is None or self.dest.transport is None):
            self._finished()

    def _finished(self) -> None:
        self.done = True
        if self.counted:
            self.counted = False
            log_closed(self.peer_name, self.began, self.up, self.down)
            fw = self.forwarder
            fw.stats.active -= 1
            fw.links.discard(self)
            if not fw.links and fw.idle is not None and not fw.idle.done():
                fw.idle.set_result(None)


@dataclass
class Forwarder:
    """A protocol factory for a listener that forwards each connection to a destination.

    Pass it as the protocol factory to ``loop.create_server`` or to a tapster
    stream server service. ``stats`` holds the counters; :meth:`close_all`
    and :meth:`wait_idle` drain open connections when the service stops.
    """

    connector: Connector
    destination: str
    """How the destination is shown in the log."""
    max_connections: int | None = None
    connect_timeout: float = 10.0
    high_water: int = DEFAULT_HIGH_WATER
    stats: ForwardStats = field(default_factory=ForwardStats)
    links: set[_Link] = field(default_factory=set, repr=False)
    closing: bool = False
    idle: asyncio.Future[None] | None = field(default=None, repr=False)

    def __call__(self) -> asyncio.Protocol:
        return _Link(self).client

    def close_all(self, abort: bool = False) -> None:
        """Refuse new connections and close the open ones (flushing unless ``abort``)."""
        self.closing = True
        for link in list(self.links):
            link.close(abort=abort)

    async def wait_idle(self) -> None:
        """Wait until no forwarded connection is open."""
        if not self.links:
            return
        if self.idle is None or self.idle.done():
            self.idle = asyncio.get_running_loop().create_future()
        await self.idle
