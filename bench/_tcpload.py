"""TCP round-trip load generator: N connections each send a message and wait for its echo.

Run as a script (it imports nothing from ``bench``, so any interpreter can run it):

    python bench/_tcpload.py --port 9000 --connections 50 --duration 3 --loop uvloop

It connects every connection first, then for ``--duration`` seconds (or until
``--max-round-trips``) each connection sends ``--pipeline`` messages of ``--size`` bytes and
waits for all of them to come back before sending again. It prints one JSON object: round trips,
elapsed seconds, round trips per second, latency percentiles (ms) and its own CPU seconds, so a
saturated client can be told apart from a slow server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import time
from typing import Any, cast


class _State:
    def __init__(self, limit: int | None) -> None:
        self.count = 0
        self.limit = limit
        self.stopping = False
        self.latencies: list[float] = []
        self.done = asyncio.Event()


class _EchoClient(asyncio.Protocol):
    def __init__(self, state: _State, batch: bytes, pipeline: int) -> None:
        self.state = state
        self.batch = batch
        self.pipeline = pipeline
        self.received = 0
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not inherit from asyncio.Transport; they implement it.
        self.transport = cast(asyncio.Transport, transport)
        self.connected.set_result(None)

    def send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter()
        self.transport.write(self.batch)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.received < len(self.batch):
            return
        self.received -= len(self.batch)
        state = self.state
        if state.stopping:
            return
        state.latencies.append(time.perf_counter() - self.sent_at)
        state.count += self.pipeline
        if state.limit is not None and state.count >= state.limit:
            state.stopping = True
            state.done.set()
            return
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        if not self.state.stopping:
            self.state.stopping = True
            self.state.done.set()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Connect, load for the duration or count, and return the figures."""
    loop = asyncio.get_running_loop()
    state = _State(args.max_round_trips)
    batch = b"x" * args.size * args.pipeline
    clients: list[_EchoClient] = []
    for _ in range(args.connections):
        _, proto = await loop.create_connection(
            lambda: _EchoClient(state, batch, args.pipeline), args.host, args.port
        )
        clients.append(proto)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    for client in clients:
        client.send()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(state.done.wait(), timeout=args.duration)
    state.stopping = True
    elapsed = time.perf_counter() - start
    count = state.count
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    for client in clients:
        if client.transport is not None:
            client.transport.abort()
    lat = sorted(state.latencies)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p / 100.0 * len(lat)))] * 1000.0 if lat else 0.0

    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    return {
        "round_trips": count,
        "elapsed_s": elapsed,
        "round_trips_per_s": count / elapsed if elapsed > 0 else 0.0,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "client_cpu_s": cpu,
        "client_cpu_share": cpu / elapsed if elapsed > 0 else 0.0,
        "connections": args.connections,
        "pipeline": args.pipeline,
        "size": args.size,
        "loop": args.loop,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the load on the chosen loop, print one JSON line."""
    parser = argparse.ArgumentParser(description="TCP echo round-trip load generator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--max-round-trips", type=int, default=None)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--pipeline", type=int, default=1)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        parser.error("load is only ever sent to the local machine (127.0.0.1 or ::1)")
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            args.loop = "asyncio"
        else:
            result = uvloop.run(run(args))
            print(json.dumps(result))
            return 0
    result = asyncio.run(run(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
