"""``WebService``: a ``WebServer`` listening on one or more endpoints."""

from __future__ import annotations

from collections.abc import Sequence

from tapster.endpoints import ServerEndpoint
from tapster.internet import StreamServerService
from tapster.service import MultiService

from ._config import WebConfig
from ._server import WebServer
from ._static import RootFolderError


class WebService(MultiService):
    """Serves ``config`` on every endpoint in ``listen``.

    Stopping is graceful: idle keep-alive connections close at once, responses
    in progress finish (each on a connection that then closes) within the
    shutdown budget, and whatever is still open when it runs out is cut.
    """

    def __init__(
        self,
        config: WebConfig,
        listen: Sequence[ServerEndpoint | str],
        name: str = "web",
        *,
        chroot: str | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        #: The chroot the process enters before starting; only named in errors.
        self.chroot = chroot
        self.server = WebServer(config)
        for index, endpoint in enumerate(listen):
            child = StreamServerService(endpoint, self.server.protocol, name=f"http-{index + 1}")
            self.add_service(child)

    async def start(self) -> None:
        try:
            self.server.start()
        except RootFolderError as exc:
            if not self.chroot:
                raise
            raise RootFolderError(f"{exc} inside the chroot {self.chroot}") from None
        await super().start()

    async def stop(self) -> None:
        self.server.begin_drain()
        try:
            await super().stop()
        finally:
            self.server.abort_all()
            await self.server.close()
