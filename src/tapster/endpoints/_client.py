"""Client endpoints: where a service connects to."""

from __future__ import annotations

import abc
import asyncio
import ssl
from collections.abc import Callable
from typing import TypeVar

_P = TypeVar("_P", bound=asyncio.BaseProtocol)

#: Seconds a connection attempt may take when the description says nothing.
DEFAULT_TIMEOUT = 30.0


class ClientEndpoint(abc.ABC):
    """Somewhere to connect to. ``connect`` makes one connection."""

    description: str = ""
    timeout: float = DEFAULT_TIMEOUT

    @abc.abstractmethod
    async def _open(
        self, protocol_factory: Callable[[], _P]
    ) -> tuple[asyncio.BaseTransport, _P]: ...

    async def connect(self, protocol_factory: Callable[[], _P]) -> tuple[asyncio.BaseTransport, _P]:
        """Connect once (bounded by ``timeout``); raises OSError or TimeoutError."""
        async with asyncio.timeout(self.timeout):
            return await self._open(protocol_factory)

    async def open_connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect once and return a stream reader and writer."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**16, loop=loop)
        transport, protocol = await self.connect(
            lambda: asyncio.StreamReaderProtocol(reader, loop=loop)
        )
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)  # type: ignore[arg-type]
        return reader, writer

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description!r}>"


class TCPClientEndpoint(ClientEndpoint):
    """TCP (optionally TLS) to ``host:port``; ``host`` may be a name or an address."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
        server_name: str | None = None,
        description: str | None = None,
    ) -> None:
        if not host:
            raise ValueError("a TCP client needs a host")
        if not 0 < port <= 65535:
            raise ValueError(f"port must be 1 to 65535, not {port}")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self.host = host
        self.port = port
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.server_name = server_name
        kind = "tcp" if ssl_context is None else "ssl"
        escaped = host.replace(":", "\\:")
        self.description = description or f"{kind}:host={escaped}:port={port}"

    async def _open(self, protocol_factory: Callable[[], _P]) -> tuple[asyncio.BaseTransport, _P]:
        loop = asyncio.get_running_loop()
        if self.ssl_context is None:
            return await loop.create_connection(protocol_factory, self.host, self.port)
        return await loop.create_connection(
            protocol_factory,
            self.host,
            self.port,
            ssl=self.ssl_context,
            server_hostname=self.server_name or self.host,
        )


class UNIXClientEndpoint(ClientEndpoint):
    """A Unix stream socket at ``path``."""

    def __init__(
        self, path: str, *, timeout: float = DEFAULT_TIMEOUT, description: str | None = None
    ) -> None:
        if not path or "\0" in path:
            raise ValueError("a Unix socket needs a path without NUL characters")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self.path = path
        self.timeout = timeout
        self.description = description or "unix:path=" + path.replace(":", "\\:")

    async def _open(self, protocol_factory: Callable[[], _P]) -> tuple[asyncio.BaseTransport, _P]:
        loop = asyncio.get_running_loop()
        return await loop.create_unix_connection(protocol_factory, self.path)
