"""The zero-copy engine: Linux ``splice(2)`` between the two sockets of each connection.

Each direction of a forwarded connection has a kernel pipe. When the source
socket is readable, ``splice`` moves bytes from it into the pipe and then from
the pipe into the destination socket; the bytes never enter Python. It needs
plain sockets on both ends (TCP or Unix, no TLS) and ``os.splice`` (Linux,
Python 3.10+); :func:`splice_available` says whether it can be used, and the
service falls back to the transport engine (``_proxy``) otherwise.

Resource handling: the pipe is the only buffer. When the destination socket
cannot take what the pipe holds, the engine stops watching the source for
reads and watches the destination for writes instead; reading resumes once
the pipe is empty. A connection therefore holds at most one pipe's worth of
bytes (at most ``PIPE_SIZE``) per direction, in the kernel.

Half-close: the end of stream on one side becomes ``shutdown(SHUT_WR)`` on the
other once the pipe is empty; the connection closes when both directions have
ended, or at once when either socket fails (reset, broken pipe).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from tapster.portforward._proxy import ForwardStats, connect_failure, describe_peer, log_closed

__all__ = ["PIPE_SIZE", "SpliceForwarder", "splice_available"]

log = logging.getLogger("tapster.portforward")

#: Bytes a direction's pipe holds when few connections are open (asked with
#: F_SETPIPE_SZ; 1 MiB is the default ``/proc/sys/fs/pipe-max-size``). Big pipes
#: halve the system calls per byte, but the kernel charges pipe sizes to the user
#: (``/proc/sys/fs/pipe-user-pages-soft``, 64 MiB by default, root exempt), so
#: beyond ``BIG_PIPES_UP_TO`` open connections pipes keep the default 64 KiB.
PIPE_SIZE = 1024 * 1024
BIG_PIPES_UP_TO = 16
#: Bytes asked of one splice call.
_SPLICE_CHUNK = PIPE_SIZE
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
#: Reads per readiness event before the loop gets to run other callbacks.
_ROUNDS = 8
#: accept() errors that mean "out of resources right now": back off, don't die.
_ACCEPT_PAUSE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_ACCEPT_PAUSE = 0.5

#: A socket address as ``connect`` takes it: a tuple for IP, a path for Unix.
Address = tuple[Any, ...] | str
#: Resolves the destination to ``(family, address)`` pairs to try in order.
Resolver = Callable[[], Awaitable[list[tuple[int, Address]]]]


def splice_available() -> bool:
    """Whether this system can run the splice engine."""
    return hasattr(os, "splice") and hasattr(os, "pipe2")


def tcp_resolver(host: str, port: int) -> Resolver:
    """A :data:`Resolver` for ``host:port`` (looked up on each connection, off the loop)."""

    async def resolve() -> list[tuple[int, Address]]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return [(family, address) for family, _, _, _, address in infos]

    return resolve


def unix_resolver(path: str) -> Resolver:
    """A :data:`Resolver` for a Unix socket path."""

    async def resolve() -> list[tuple[int, Address]]:
        return [(socket.AF_UNIX, path)]

    return resolve


class _Pump:
    """One direction of a link: source socket -> pipe -> destination socket."""

    __slots__ = ("done", "dst", "eof", "link", "pending", "r", "src", "to_dest", "w")

    def __init__(self, link: _SpliceLink, src: int, dst: int, to_dest: bool, big: bool) -> None:
        self.link = link
        self.src = src
        self.dst = dst
        self.to_dest = to_dest
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        if big:
            with contextlib.suppress(OSError):  # over a limit: keep the default size
                fcntl.fcntl(self.w, _F_SETPIPE_SZ, PIPE_SIZE)
        self.pending = 0
        self.eof = False
        self.done = False

    def start(self) -> None:
        self.link.loop.add_reader(self.src, self.readable)

    def readable(self) -> None:
        link = self.link
        stats = link.engine.stats
        for _ in range(_ROUNDS):
            try:
                n = os.splice(self.src, self.w, _SPLICE_CHUNK, flags=_SPLICE_FLAGS)
            except BlockingIOError:
                return
            except OSError as exc:
                link.fail(exc)
                return
            if n == 0:
                link.loop.remove_reader(self.src)
                self.eof = True
                if not self.pending:
                    self.finish()
                return
            self.pending += n
            if self.to_dest:
                link.up += n
                stats.bytes_to_dest += n
            else:
                link.down += n
                stats.bytes_from_dest += n
            if not self.flush():
                return
            if self.pending:
                # The destination is full: stop reading until the pipe is empty.
                link.loop.remove_reader(self.src)
                link.loop.add_writer(self.dst, self.writable)
                return

    def flush(self) -> bool:
        """Move what the pipe holds to the destination; False if the link failed."""
        while self.pending:
            try:
                m = os.splice(self.r, self.dst, self.pending, flags=_SPLICE_FLAGS)
            except BlockingIOError:
                return True
            except OSError as exc:
                self.link.fail(exc)
                return False
            self.pending -= m
        return True

    def writable(self) -> None:
        if not self.flush() or self.pending:
            return
        loop = self.link.loop
        loop.remove_writer(self.dst)
        if self.eof:
            self.finish()
        else:
            loop.add_reader(self.src, self.readable)

    def finish(self) -> None:
        """The source ended and everything was delivered: half-close the destination."""
        self.done = True
        self.link.half_close(self)

    def unwatch(self) -> None:
        loop = self.link.loop
        loop.remove_reader(self.src)
        loop.remove_writer(self.dst)

    def close_pipe(self) -> None:
        for fd in (self.r, self.w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.r = self.w = -1


class _SpliceLink:
    """One forwarded connection: the client socket, the destination socket, two pumps."""

    __slots__ = (
        "began",
        "client",
        "closed",
        "connecting",
        "dest",
        "down",
        "engine",
        "loop",
        "peer_name",
        "pumps",
        "quiet",
        "seen",
        "up",
    )

    def __init__(self, engine: SpliceForwarder, client: socket.socket, peer: object = None) -> None:
        self.engine = engine
        self.loop = engine.loop
        self.client = client
        self.dest: socket.socket | None = None
        self.pumps: tuple[_Pump, _Pump] | None = None
        self.closed = False
        # Per-connection bytes each way, and what the idle sweep saw last.
        self.up = self.down = self.seen = 0
        self.quiet = 0.0
        self.began = self.loop.time()
        self.peer_name = describe_peer(peer)
        self.connecting: asyncio.Task[None] | None = self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        engine = self.engine
        try:
            async with asyncio.timeout(engine.connect_timeout):
                dest = await engine.open_destination()
        except asyncio.CancelledError:
            self.connecting = None
            return
        except (OSError, TimeoutError) as exc:
            self.connecting = None
            engine.stats.failed += 1
            log.warning("Couldn't connect to %s: %s", engine.destination, connect_failure(exc))
            self.close()
            return
        self.connecting = None
        if self.closed:
            dest.close()
            return
        self.dest = dest
        big = len(engine.links) <= BIG_PIPES_UP_TO
        up: _Pump | None = None
        try:
            up = _Pump(self, self.client.fileno(), dest.fileno(), to_dest=True, big=big)
            down = _Pump(self, dest.fileno(), self.client.fileno(), to_dest=False, big=big)
        except OSError as exc:  # out of file descriptors for the pipes
            if up is not None:
                up.close_pipe()
            log.warning("Couldn't forward a connection: %s", exc.strerror or exc)
            self.close()
            return
        self.pumps = (up, down)
        up.start()
        down.start()

    def half_close(self, pump: _Pump) -> None:
        """``pump``'s source ended: pass the end on; close when both directions ended."""
        target = self.dest if pump.to_dest else self.client
        if target is not None:
            try:
                target.shutdown(socket.SHUT_WR)
            except OSError as exc:
                self.fail(exc)
                return
        if self.pumps is not None and all(p.done for p in self.pumps):
            self.close()

    def fail(self, exc: OSError) -> None:
        """A socket failed (reset, broken pipe): close the whole connection."""
        if exc.errno not in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN):
            log.debug("forwarded connection failed: %s", exc)
        self.close()

    def close(self, flush: bool = False) -> None:
        """Close both sockets and the pipes; with ``flush``, first push out what the pipes hold."""
        if self.closed:
            return
        self.closed = True
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        if self.pumps is not None:
            for pump in self.pumps:
                pump.unwatch()
                if flush and pump.pending:
                    pump.flush()
                pump.close_pipe()
        for sock in (self.client, self.dest):
            if sock is not None:
                sock.close()
        log_closed(self.peer_name, self.began, self.up, self.down)
        self.engine.link_closed(self)


class SpliceForwarder:
    """Accepts on listening sockets and forwards each connection with ``splice``.

    The same counters and stop methods as the transport engine's
    :class:`~tapster.portforward.Forwarder`: ``stats``, ``links``,
    ``close_all`` and ``wait_idle``.
    """

    def __init__(
        self,
        resolver: Resolver,
        destination: str,
        *,
        max_connections: int | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.resolver = resolver
        self.destination = destination
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.stats = ForwardStats()
        self.links: set[_SpliceLink] = set()
        self.closing = False
        self._listeners: list[socket.socket] = []
        self._idle: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "serve() was not called"
        return self._loop

    async def open_destination(self) -> socket.socket:
        """Connect a non-blocking socket to the first destination address that answers."""
        last: OSError | None = None
        for family, address in await self.resolver():
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await self.loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            except BaseException:
                sock.close()
                raise
            if family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        raise last or OSError(errno.EADDRNOTAVAIL, "no address to connect to")

    # -- listening --------------------------------------------------------------------

    def serve(self, listener: socket.socket) -> None:
        """Start accepting on ``listener`` (a bound, listening socket)."""
        self._loop = asyncio.get_running_loop()
        self.closing = False
        listener.setblocking(False)
        self._listeners.append(listener)
        self._loop.add_reader(listener.fileno(), self._accept, listener)

    def stop_serving(self) -> None:
        """Stop accepting (the listening sockets stay open; their owner closes them)."""
        self.closing = True
        for listener in self._listeners:
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(listener.fileno())
        self._listeners.clear()

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(64):
            try:
                conn, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                # Out of descriptors or memory (or anything else odd): log, pause
                # accepting for a moment, go on; never spin on a failing accept.
                level = logging.WARNING if exc.errno in _ACCEPT_PAUSE_ERRNOS else logging.ERROR
                log.log(level, "accept failed (%s); pausing for %g s", exc, _ACCEPT_PAUSE)
                self.loop.remove_reader(listener.fileno())
                self.loop.call_later(_ACCEPT_PAUSE, self._resume_accept, listener)
                return
            self._accepted(conn, peer)

    def _resume_accept(self, listener: socket.socket) -> None:
        if not self.closing and listener in self._listeners and listener.fileno() >= 0:
            self.loop.add_reader(listener.fileno(), self._accept, listener)

    def _accepted(self, conn: socket.socket, peer: object) -> None:
        stats = self.stats
        if self.closing or (
            self.max_connections is not None and stats.active >= self.max_connections
        ):
            stats.rejected += 1
            conn.close()
            return
        conn.setblocking(False)
        if conn.family != socket.AF_UNIX:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stats.connections += 1
        stats.active += 1
        stats.peak = max(stats.peak, stats.active)
        self.links.add(_SpliceLink(self, conn, peer))

    # -- stopping ---------------------------------------------------------------------

    def link_closed(self, link: _SpliceLink) -> None:
        if link in self.links:
            self.links.discard(link)
            self.stats.active -= 1
            if not self.links and self._idle is not None and not self._idle.done():
                self._idle.set_result(None)

    def close_all(self, abort: bool = False) -> None:
        """Refuse new connections and close the open ones (pushing out what the pipes hold
        unless ``abort``)."""
        self.closing = True
        for link in list(self.links):
            link.close(flush=not abort)

    async def wait_idle(self) -> None:
        """Wait until no forwarded connection is open."""
        if not self.links:
            return
        if self._idle is None or self._idle.done():
            self._idle = self.loop.create_future()
        await self._idle
