"""``WebService``: a ``WebServer`` listening on one or more endpoints."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from tapster.endpoints import ServerEndpoint
from tapster.internet import StreamServerService
from tapster.service import MultiService, remaining_budget

from ._config import WebConfig
from ._server import WebServer
from ._static import RootFolderError

log = logging.getLogger("tapster.web")

#: Part of the shutdown budget kept for an ASGI application's lifespan shut-down.
_LIFESPAN_SHARE = 0.25


class WebService(MultiService):
    """Serves ``config`` on every endpoint in ``listen``.

    Stopping is graceful: idle keep-alive connections close at once, responses
    in progress finish (each on a connection that then closes) within the
    shutdown budget, and whatever is still open when it runs out is cut. An
    ASGI application's lifespan starts before the listeners accept anything and
    shuts down after the connections are gone, with what is left of the budget.
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
        await self.server.startup()
        await super().start()
        log.info("%s", serving_line(self.listening()))

    async def stop(self) -> None:
        self.server.begin_drain()
        lifespan = self.server.lifespan
        try:
            if lifespan is not None and lifespan.running:
                budget = remaining_budget()
                if budget is not None:
                    # Leave the application's shut-down its share of the budget.
                    await self.server.wait_drained(budget * (1 - _LIFESPAN_SHARE))
                    self.server.abort_all()
            await super().stop()
        finally:
            self.server.abort_all()
            if lifespan is not None:
                await lifespan.shutdown(remaining_budget())
            await self.server.close()


def serving_line(addresses: Sequence[str]) -> str:
    """``serving http://127.0.0.1:8080/ (loopback only; --listen tcp:8080 for every
    interface)``: the URLs to open, and how to reach beyond this machine when no
    listener can be reached from elsewhere."""
    urls: list[str] = []
    loopback_ports: list[tuple[str, str]] = []
    remote = False
    for address in addresses:
        scheme, _, rest = address.partition(":")
        if scheme not in ("tcp", "ssl"):
            urls.append(address)  # unix:/path and the like
            continue
        host, _, port = rest.rpartition(":")
        urls.append(f"{'https' if scheme == 'ssl' else 'http'}://{host}:{port}/")
        if host.startswith("127.") or host == "[::1]":
            loopback_ports.append((scheme, port))
        else:
            remote = True
    line = "serving " + ", ".join(urls)
    if loopback_ports and not remote:
        scheme, port = loopback_ports[0]
        how = f"--listen tcp:{port}" if scheme == "tcp" else "--listen without interface="
        line += f" (loopback only; {how} for every interface)"
    return line
