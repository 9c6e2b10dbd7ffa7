"""The harness's own check: both sides run the SAME commands, so every ratio should be near 1.

It needs neither tapster nor Twisted (it runs on the interpreter that runs the harness), so the
test suite runs it in seconds; on a busy machine its spread shows how noisy the figures are.
Comparisons: a bare interpreter (wall time, peak RSS), and a standard-library asyncio echo server
(``bench/_echo_server.py``: start-to-ready, idle RSS, round trips from ``bench/_tcpload.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from bench import (
    CPU_MS,
    IDLE_RSS_MB,
    PEAK_RSS_MB,
    READY_MS,
    ROUND_TRIPS_PER_S,
    WALL_MS,
    Case,
    Comparison,
    Context,
    echo_probe,
    free_port,
    run_tcp_load,
    run_timed,
    start_server,
)

ECHO_SERVER = Path(__file__).resolve().parent.parent / "_echo_server.py"


def comparisons(ctx: Context) -> Iterator[Comparison]:
    """Yield an interpreter comparison and an echo-server comparison, same command both sides."""
    env = ctx.env()
    python = sys.executable

    def interpreter() -> dict[str, float]:
        return run_timed([python, "-c", "pass"], env=env, cwd=ctx.tmpdir).sample

    yield Comparison("python -c pass", (WALL_MS, CPU_MS, PEAK_RSS_MB), interpreter, interpreter)

    duration = 0.3 if ctx.quick else 1.0

    def echo() -> dict[str, float]:
        port = free_port()
        argv = [python, str(ECHO_SERVER), str(port)]
        with start_server(argv, port=port, env=env, probe=echo_probe()) as server:
            rss = server.rss()
            load = run_tcp_load(port, connections=4, duration=duration, loop="asyncio")
        return {
            "ready_ms": server.ready_ms,
            "idle_rss_mb": rss["idle_rss_mb"],
            "round_trips_per_s": load["round_trips_per_s"],
            "client_cpu_share": load["client_cpu_share"],
        }

    yield Comparison(
        "stdlib echo server",
        (READY_MS, IDLE_RSS_MB, ROUND_TRIPS_PER_S),
        echo,
        echo,
        note=f"4 connections, {duration:g} s",
    )


CASE = Case(
    name="selftest",
    title="Harness self-check: identical commands on both sides (ratio ~1)",
    comparisons=comparisons,
    runs=3,
    default=False,
)
