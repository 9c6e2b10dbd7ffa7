"""Login flood client for the ``bench-login`` line protocol, with a loop-stall probe.

Run as a script (it imports nothing from ``bench``):

    python bench/_loginload.py --port 9001 --connections 20 --duration 3 --login alice:secret

``--connections`` connections each send ``LOGIN user password`` and wait for the answer line,
over and over, for ``--duration`` seconds (or until ``--max-logins``), cycling through the
``--login`` pairs (wrong passwords count as logins too: they cost the server the same). One more
connection sends ``PING`` every ``--ping-interval`` seconds and times the ``PONG``: while hashing
blocks the server's event loop, those round trips grow. Prints one JSON object: logins per
second, OK/FAIL counts, PING round trips (p50, p99, max = ``stall_ms``) and the client's own CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import resource
import sys
import time
from typing import Any


class _Counts:
    def __init__(self, limit: int | None) -> None:
        self.ok = 0
        self.fail = 0
        self.other = 0
        self.limit = limit
        self.stop = asyncio.Event()

    @property
    def total(self) -> int:
        return self.ok + self.fail + self.other


async def _flood(host: str, port: int, lines: list[bytes], offset: int, counts: _Counts) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for line in itertools.islice(itertools.cycle(lines), offset, None):
            if counts.stop.is_set():
                break
            writer.write(line)
            answer = await reader.readline()
            if not answer:
                break
            if answer.startswith(b"OK"):
                counts.ok += 1
            elif answer.startswith(b"FAIL"):
                counts.fail += 1
            else:
                counts.other += 1
            if counts.limit is not None and counts.total >= counts.limit:
                counts.stop.set()
    finally:
        writer.close()


async def _ping(host: str, port: int, interval: float, stop: asyncio.Event) -> list[float]:
    reader, writer = await asyncio.open_connection(host, port)
    rtts: list[float] = []
    try:
        while not stop.is_set():
            start = time.perf_counter()
            writer.write(b"PING\n")
            if not await reader.readline():
                break
            rtts.append(time.perf_counter() - start)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
    finally:
        writer.close()
    return rtts


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Flood, probe, and return the figures."""
    lines = []
    for pair in args.login:
        user, _, password = pair.partition(":")
        lines.append(f"LOGIN {user} {password}\n".encode())
    counts = _Counts(args.max_logins)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    pinger = asyncio.ensure_future(_ping(args.host, args.port, args.ping_interval, counts.stop))
    flooders = [
        asyncio.ensure_future(_flood(args.host, args.port, lines, i, counts))
        for i in range(args.connections)
    ]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(counts.stop.wait(), timeout=args.duration)
    counts.stop.set()
    elapsed = time.perf_counter() - start
    total = counts.total
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    # Logins in flight finish within the server's time for one login; don't wait forever.
    await asyncio.wait([*flooders, pinger], timeout=10.0)
    rtts = sorted(pinger.result() if pinger.done() and not pinger.exception() else [])

    def pct(p: float) -> float:
        return rtts[min(len(rtts) - 1, int(p / 100.0 * len(rtts)))] * 1000.0 if rtts else 0.0

    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    return {
        "logins": total,
        "ok": counts.ok,
        "fail": counts.fail,
        "other": counts.other,
        "elapsed_s": elapsed,
        "logins_per_s": total / elapsed if elapsed > 0 else 0.0,
        "pings": len(rtts),
        "ping_p50_ms": pct(50),
        "ping_p99_ms": pct(99),
        "stall_ms": rtts[-1] * 1000.0 if rtts else 0.0,
        "client_cpu_s": cpu,
        "client_cpu_share": cpu / elapsed if elapsed > 0 else 0.0,
        "connections": args.connections,
        "loop": args.loop,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the flood on the chosen loop, print one JSON line."""
    parser = argparse.ArgumentParser(description="login flood with a loop-stall probe")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--max-logins", type=int, default=None)
    parser.add_argument("--ping-interval", type=float, default=0.01)
    parser.add_argument("--login", action="append", required=True, metavar="USER:PASSWORD")
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
            print(json.dumps(uvloop.run(run(args))))
            return 0
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
