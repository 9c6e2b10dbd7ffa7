"""Case 4: echo round trips per second under 50 concurrent connections.

The same TCP echo server on both sides: the ``bench-echo`` plugin, run by ``tapster`` (a
``TCPServer`` with an asyncio protocol, on the standard asyncio loop and on uvloop) and by
``twistd`` (Twisted's ``TCPServer`` with its default reactor). Both servers stay up for the
whole comparison; each run is one bounded load from ``bench/_tcpload.py`` (uvloop client, 50
connections, 64-byte messages), and reports the server's CPU use during the run beside the
client's, so that a saturated client shows up instead of passing for a slow server.

Two client shapes: ``pipeline 1`` (each connection waits for its echo before sending again:
pure round trips) and ``pipeline 8`` (eight messages in flight per connection, which takes the
client off the critical path on a small machine).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from bench import (
    P99_MS,
    ROUND_TRIPS_PER_S,
    Case,
    Comparison,
    Context,
    Metric,
    Server,
    bundled_tapster_plugins,
    bundled_twisted_plugins,
    echo_probe,
    free_port,
    run_tcp_load,
    start_server,
)

Sampler = Callable[[], dict[str, float]]

SERVER_CPU = Metric("server_cpu_share", "cores", label="server CPU")
CLIENT_CPU = Metric("client_cpu_share", "cores", label="client CPU")
#: Round trips per CPU second the server used: the server's efficiency, which a busy machine
#: (other processes taking the cores) disturbs much less than the raw rate.
EFFICIENCY = Metric(
    "round_trips_per_server_cpu_s", "rt/CPU-s", lower_is_better=False, label="server efficiency"
)


def _load(ctx: Context, server: Server, port: int, pipeline: int) -> dict[str, float]:
    duration = 1.0 if ctx.quick else 3.0
    before = server.cpu_seconds()
    result = run_tcp_load(
        port,
        connections=50,
        duration=duration,
        pipeline=pipeline,
        loop="uvloop",
        python=ctx.tapster_python,
    )
    used = server.cpu_seconds() - before
    result["server_cpu_s"] = used
    result["server_cpu_share"] = used / result["elapsed_s"] if result["elapsed_s"] else 0.0
    result["round_trips_per_server_cpu_s"] = result["round_trips"] / used if used else 0.0
    return result


def comparisons(ctx: Context) -> Iterator[Comparison]:
    """Start both servers per loop, then yield one comparison per client shape."""
    root = Path(ctx.tmpdir)
    tapster_root = bundled_tapster_plugins(root / "tapster-side", "bench_echo")
    twisted_env = ctx.env(bundled_twisted_plugins(root / "twisted-side", "bench_echo"))
    metrics = (ROUND_TRIPS_PER_S, EFFICIENCY, P99_MS, SERVER_CPU, CLIENT_CPU)
    for loop in ("asyncio", "uvloop"):
        tapster_port, twisted_port = free_port(), free_port()
        tapster_argv = [
            ctx.tapster_bin("tapster"),
            "--app-dir",
            str(tapster_root),
            "--loop",
            loop,
            "--log-level",
            "warning",
            "bench-echo",
            "--port",
            str(tapster_port),
        ]
        twisted_argv = [
            ctx.twisted_bin("twistd"),
            "-n",
            "--pidfile=",
            "bench-echo",
            "--port",
            str(twisted_port),
        ]
        with (
            start_server(
                tapster_argv, port=tapster_port, env=ctx.env(), cwd=root, probe=echo_probe()
            ) as tapster_server,
            start_server(
                twisted_argv, port=twisted_port, env=twisted_env, cwd=root, probe=echo_probe()
            ) as twisted_server,
        ):
            for pipeline in (1, 8):

                def side(server: Server, port: int, p: int = pipeline) -> Sampler:
                    return lambda: _load(ctx, server, port, p)

                yield Comparison(
                    f"tapster --loop {loop} vs twistd, pipeline {pipeline}",
                    metrics,
                    tapster=side(tapster_server, tapster_port),
                    twistd=side(twisted_server, twisted_port),
                    note=f"50 connections, 64 B messages, uvloop client, pipeline {pipeline}",
                )


CASE = Case(
    name="echo",
    number=4,
    issue=5,
    title="Echo round trips/s, 50 connections, tapster on asyncio and uvloop vs twistd",
    comparisons=comparisons,
    runs=5,
)
