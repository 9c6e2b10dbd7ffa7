"""Case 7b: throughput of ``tapster portforward`` against ``twistd portforward``.

The same transfer through each proxy, both listening on 127.0.0.1 and forwarding to the
same byte source (``_pf_source.py``, threads and 4 MiB buffers, so it is never the
bottleneck). Measured: MB/s (10^6 bytes per second) from connect to the last byte, for
one stream each way and for 8 parallel downloads, plus the proxy's CPU seconds per GB.
tapster runs with its splice engine on uvloop (what ``tapster portforward`` picks by default
here), then with the transport engine on uvloop and on the standard asyncio loop.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench import (
    MB_PER_S,
    Case,
    Comparison,
    Context,
    Metric,
    Server,
    free_port,
    launch,
    start_server,
)

SOURCE = Path(__file__).resolve().parent / "_pf_source.py"

#: CPU the proxy process spends per 10^9 bytes forwarded: less sensitive than MB/s to a
#: busy machine, where the source and the client compete with the proxy for the cores.
CPU_PER_GB = Metric("proxy_cpu_s_per_gb", "s/GB", label="proxy CPU per GB")


def _transfer(port: int, mode: bytes, size: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(mode + struct.pack(">Q", size))
        buf = bytearray(4 * 1024 * 1024)
        if mode == b"D":
            got = 0
            while n := sock.recv_into(buf):
                got += n
            if got != size:
                raise RuntimeError(f"received {got} of {size} bytes through the proxy")
        else:
            view = memoryview(buf)
            left = size
            while left > 0:
                n = min(left, len(view))
                sock.sendall(view[:n])
                left -= n
            if sock.recv(1) != b"k":
                raise RuntimeError("the sink did not confirm the upload")


def _measure(server: Server, mode: bytes, size: int, streams: int) -> dict[str, float]:
    errors: list[BaseException] = []

    def one() -> None:
        try:
            _transfer(server.port, mode, size)
        except BaseException as exc:
            errors.append(exc)

    cpu0 = server.cpu_seconds()
    began = time.perf_counter()
    threads = [threading.Thread(target=one) for _ in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - began
    cpu = server.cpu_seconds() - cpu0
    if errors:
        raise errors[0]
    total = size * streams
    return {
        "mb_per_s": total / 1e6 / took,
        "proxy_cpu_s_per_gb": cpu / (total / 1e9),
        "proxy_peak_rss_mb": server.rss()["peak_rss_mb"],
    }


def comparisons(ctx: Context) -> Iterator[Comparison]:
    """Start one source, one tapster proxy per loop and one twistd proxy; yield the transfers."""
    env = ctx.env()
    size = (128 if ctx.quick else 512) * 1024 * 1024
    src_port = free_port()
    source = launch(
        [sys.executable, str(SOURCE), str(src_port)], port=src_port, env=env, cwd=ctx.tmpdir
    )
    try:

        def proxy_argv(side: str, port: int, loop: str = "", engine: str = "") -> list[str]:
            args = ["-p", f"tcp:{port}:interface=127.0.0.1", "-h", "127.0.0.1"]
            args += ["-d", str(src_port)]
            if side == "tapster":
                tapster = ctx.tapster_bin("tapster")
                return [tapster, "--loop", loop, "portforward", "--engine", engine, *args]
            return [ctx.twisted_bin("twistd"), "-n", "--pidfile=", "portforward", *args]

        tw_port = free_port()
        with start_server(proxy_argv("twistd", tw_port), port=tw_port, env=env) as twistd:
            for engine, loop in (
                ("splice", "uvloop"),
                ("transport", "uvloop"),
                ("transport", "asyncio"),
            ):
                port = free_port()
                argv = proxy_argv("tapster", port, loop, engine)
                with start_server(argv, port=port, env=env) as tap:
                    jobs: list[tuple[str, bytes, int, int]] = [
                        ("download, 1 stream", b"D", size, 1),
                        ("upload, 1 stream", b"U", size, 1),
                        ("download, 8 streams", b"D", size // 8, 8),
                    ]
                    for label, mode, each, streams in jobs:

                        def run(
                            srv: Server, m: bytes = mode, e: int = each, s: int = streams
                        ) -> Callable[[], dict[str, float]]:
                            return lambda: _measure(srv, m, e, s)

                        yield Comparison(
                            f"{label} (tapster: {engine} engine, {loop})",
                            (MB_PER_S, CPU_PER_GB),
                            tapster=run(tap),
                            twistd=run(twistd),
                            note=f"{size // (1024 * 1024)} MiB per run",
                        )
    finally:
        source.stop()


CASE = Case(
    name="portforward",
    number=7,
    issue=8,
    title="portforward MB/s: tapster portforward vs twistd portforward",
    comparisons=comparisons,
    runs=5,
)
