"""tapster side of the echo and start-to-ready cases: a TCP echo server as a tapster plugin.

    tapster --app-dir <folder holding tapster/plugins/> bench-echo --port PORT

The counterpart of ``bench/twisted_plugins/twisted/plugins/bench_echo.py`` (same name, same
options, same behaviour). Use ``bench.bundled_tapster_plugins(root, "bench_echo")`` to copy it
into a scratch folder (this keeps tapster's plugin cache out of the source tree).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from tapster.internet import TCPServer
from tapster.service import Service, ServiceMaker
from tapster.usage import Options, port


class _Echo(asyncio.Protocol):
    """Write back whatever arrives."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class EchoOptions(Options):
    """``--port`` and ``--interface`` of the echo server."""

    parameters = [
        ("port", "p", 9000, "TCP port to listen on.", port),
        ("interface", "i", "127.0.0.1", "Address to listen on."),
    ]


class _EchoMaker(ServiceMaker):
    tapname = "bench-echo"
    description = "TCP echo server for tapster's benchmarks (127.0.0.1 by default)."
    options = EchoOptions

    def make_service(self, options: Any) -> Service:
        return TCPServer(int(options["port"]), _Echo, interface=options["interface"])


bench_echo = _EchoMaker()
