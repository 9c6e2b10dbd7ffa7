"""The admin endpoint's listener: bound while privileged, served on a loop or a thread.

A supervisor serves it on its own loop, which runs no user code. A single
process serves it from a thread with a loop of its own, so that ``/livez``,
``/metrics`` and ``/status`` still answer while a handler blocks the main
loop (``/livez`` then says so, with where the loop is stuck); readiness
checks are run on the main loop from there, within their timeout.

Control actions are allowed only when every socket of the endpoint is a unix
socket: who may connect is then decided by the socket file's mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading

from tapster.admin._http import AdminConnection
from tapster.admin._routes import AdminApp
from tapster.admin._subject import Subject

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tapster.endpoints import ServerEndpoint

__all__ = ["AdminServer"]

log = logging.getLogger("tapster.admin")


class AdminServer:
    """The ``--admin ENDPOINT`` listener."""

    def __init__(self, description: str) -> None:
        from tapster.endpoints import server_from_string

        self.description = description
        self.endpoint: ServerEndpoint = server_from_string(description)
        self.sockets: list[socket.socket] = []
        self.addresses: list[str] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    @property
    def control_allowed(self) -> bool:
        """Whether control actions are accepted: only on unix sockets."""
        return bool(self.sockets) and all(s.family == socket.AF_UNIX for s in self.sockets)

    def bind(self) -> None:
        """Bind the endpoint (while privileged); ``ListenError`` names the address."""
        self.sockets = self.endpoint.bind()
        self.addresses = [self.endpoint.address_of(sock) for sock in self.sockets]

    def announce(self) -> None:
        """Log where the endpoint listens and whether it takes control actions."""
        log.info(
            "admin endpoint on %s (control actions %s)",
            ", ".join(self.addresses),
            "accepted" if self.control_allowed else "refused: not a unix socket",
        )

    async def serve(self, subject: Subject) -> None:
        """Accept admin connections on the running loop."""
        app = AdminApp(subject, self.control_allowed)
        loop = asyncio.get_running_loop()
        for sock in self.sockets:
            sock.setblocking(False)
            server = await loop.create_server(
                lambda: AdminConnection(app), sock=sock, ssl=self.endpoint.ssl_context
            )
            self._servers.append(server)

    def serve_in_thread(self, subject: Subject) -> None:
        """Accept admin connections on a loop of their own, in a thread."""
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._thread_loop = loop
            try:
                loop.run_until_complete(self.serve(subject))
            except BaseException as exc:
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._close_servers())
                loop.close()

        self._thread = threading.Thread(target=run, name="tapster-admin", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]

    async def _close_servers(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    async def aclose(self) -> None:
        """Stop serving on the running loop (the supervisor's)."""
        await self._close_servers()
        self.release()

    def close(self) -> None:
        """Stop the thread's loop (if any) and release the sockets."""
        loop, thread = self._thread_loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(loop.stop)
            thread.join(2.0)
        self._thread = self._thread_loop = None
        self.release()

    def release(self) -> None:
        """Close the sockets (a unix socket's file is removed)."""
        sockets, self.sockets = self.sockets, []
        if sockets:
            with contextlib.suppress(Exception):
                self.endpoint.release(sockets)
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.close()
