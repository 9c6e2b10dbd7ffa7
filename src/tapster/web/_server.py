"""State shared by all connections of one web server: the app, the connection
set, the timeout sweeper and graceful draining.

``WebServer.protocol`` is the asyncio protocol factory to hand to a listener
(``loop.create_server`` or ``tapster.internet.StreamServerService``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from ._accesslog import AccessLog
from ._app import WebApp
from ._config import WebConfig
from ._protocol import HttpConnection

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._lifespan import Lifespan


class WebServer:
    """One configured web server, independent of where it listens."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.app = WebApp(config)
        self.access = AccessLog(config.access_log, config.access_log_file)
        self.connections: set[HttpConnection] = set()
        self.draining = False
        #: The ASGI application's lifespan (``--asgi``), else None.
        self.lifespan: Lifespan | None = None
        asgi = self.app.asgi
        if asgi is not None:
            from ._lifespan import Lifespan

            self.lifespan = Lifespan(asgi.app, asgi.state, config.lifespan)
        self._sweeper: asyncio.Task[None] | None = None
        self._all_closed: asyncio.Event | None = None
        limits = config.limits
        self._interval = max(
            0.05,
            min(
                1.0,
                limits.request_timeout / 4,
                limits.keep_alive_timeout / 4,
                limits.send_timeout / 4,
            ),
        )

    def protocol(self) -> HttpConnection:
        """A new connection protocol (the factory for the listener)."""
        return HttpConnection(self)

    def start(self) -> None:
        """Check the root folder, open the access log, begin watching for slow clients.

        Call with the loop running. Raises ``RootFolderError`` (a ``ValueError``)
        when the folder to serve is missing and ``OSError`` when the access log
        file cannot be opened.
        """
        self.app.start()
        self.access.open()
        self.draining = False
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def startup(self) -> None:
        """Run the ASGI application's lifespan start-up (``LifespanError`` if it fails)."""
        if self.lifespan is not None:
            await self.lifespan.startup()

    async def wait_drained(self, timeout: float) -> None:
        """Wait until every connection is closed, at most ``timeout`` seconds."""
        self._all_closed = asyncio.Event()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), timeout)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            now = time.monotonic()
            for conn in list(self.connections):
                conn.check_timeout(now)

    def connection_closed(self) -> None:
        """Called by a connection when it is gone."""
        if not self.connections and self._all_closed is not None:
            self._all_closed.set()

    def begin_drain(self) -> None:
        """Stop taking requests: idle connections close now, busy ones after
        their current response."""
        self.draining = True
        for conn in list(self.connections):
            conn.begin_drain()

    async def drain(self) -> None:
        """``begin_drain``, then wait until every connection is closed.

        Cancel this (the shutdown budget does) to give up waiting.
        """
        self._all_closed = asyncio.Event()
        self.begin_drain()
        if self.connections:
            await self._all_closed.wait()

    def abort_all(self) -> None:
        """Cut every remaining connection (the budget ran out)."""
        for conn in list(self.connections):
            conn.abort()
        if self.app.asgi is not None:
            self.app.asgi.cancel_all()

    async def close(self) -> None:
        """Stop the sweeper and the worker threads."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        self.access.close()
        self.app.close()
