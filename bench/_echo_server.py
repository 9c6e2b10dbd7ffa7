"""A minimal TCP echo server on the standard library (and uvloop when asked), for self-checks.

    python bench/_echo_server.py PORT [--loop asyncio|uvloop]

It imports nothing from ``bench`` or tapster, so it measures the bare asyncio floor that any
asyncio echo service (tapster's included) starts from. Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import cast


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not inherit from asyncio.Transport; they implement it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def serve(port: int) -> None:
    """Listen on 127.0.0.1:``port`` and echo until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(_Echo, "127.0.0.1", port)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and serve."""
    parser = argparse.ArgumentParser(description="TCP echo server on 127.0.0.1")
    parser.add_argument("port", type=int)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args(argv)
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(serve(args.port))
    else:
        asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
