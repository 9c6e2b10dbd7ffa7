"""Case 5: start-to-ready latency and idle memory of a simple TCP service.

The same ``bench-echo`` plugin on both sides, started in the foreground:
``tapster --app-dir ROOT bench-echo --port P`` (on uvloop, the ``auto`` choice here, and on the
standard asyncio loop) against ``twistd -n --pidfile= bench-echo --port P``. One run is one
fresh process: launch, wait for the first connection that gets its echo back (start-to-ready),
read the CPU time it used so far (``/proc/PID/task/*/schedstat``, nanoseconds), let it settle,
read its resident memory (idle RSS, ``VmRSS``), stop it by PID.

A web comparison runs the built-in static file servers the same way, as the issue quotes
twistd's figures for ``twistd -n web``: ``tapster web --listen tcp:P:interface=127.0.0.1 --path
DIR`` against ``twistd -n --pidfile= web --listen tcp:P:interface=127.0.0.1 --path DIR``, ready
at the first HTTP response to ``GET /`` (a small ``index.html``).

A floor comparison runs ``bench/_echo_server.py`` (a bare stdlib asyncio echo server, no
tapster) the same way: what any asyncio runner starts from. A last comparison times
``tapster -D`` (the launcher returns only once the daemon listens) against ``twistd`` in its
default daemon mode, both until the first echo.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench import (
    CPU_MS,
    IDLE_RSS_MB,
    READY_MS,
    Case,
    Comparison,
    Context,
    bundled_tapster_plugins,
    bundled_twisted_plugins,
    echo_probe,
    free_port,
    http_probe,
    start_server,
)

ECHO_SERVER = Path(__file__).resolve().parent.parent / "_echo_server.py"

#: Seconds a server gets after readiness before its memory is read.
SETTLE_S = 0.3


def _cpu_ms(pid: int) -> float | None:
    """On-CPU time of every thread of ``pid`` in ms, from ``schedstat`` (nanoseconds).

    ``/proc/PID/stat`` counts 10 ms ticks, too coarse for a 60 ms start; None when the
    kernel has no ``schedstat``.
    """
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e6


def _one_run(
    argv: list[str],
    port: int,
    env: dict[str, str],
    cwd: Path,
    probe: Callable[[socket.socket], None] | None = None,
) -> dict[str, float]:
    probe = probe or echo_probe()
    with start_server(argv, port=port, env=env, cwd=cwd, probe=probe, grace=10.0) as srv:
        ready = srv.ready_ms
        # CPU used up to readiness: steadier than wall time on a busy machine.
        cpu_ms = _cpu_ms(srv.pid)
        if cpu_ms is None:
            cpu_ms = srv.cpu_seconds() * 1000.0  # 10 ms ticks
        time.sleep(SETTLE_S)
        rss = srv.rss()
    return {"ready_ms": ready, "cpu_ms": cpu_ms, **rss}


def _daemon_run(argv: list[str], port: int, env: dict[str, str], cwd: Path) -> dict[str, float]:
    pidfile = cwd / f"bench-{port}.pid"
    start = time.perf_counter()
    launcher = subprocess.run(
        [argv[0], "--pidfile", str(pidfile), *argv[1:]],
        env=env,
        cwd=cwd,
        capture_output=True,
        check=False,
    )
    if launcher.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {launcher.returncode}: {launcher.stderr[-300:]!r}")
    probe = echo_probe()
    deadline = start + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                probe(sock)
                break
        except OSError:
            if time.perf_counter() > deadline:
                raise
            time.sleep(0.001)
    ready = (time.perf_counter() - start) * 1000.0
    for _ in range(3000):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        time.sleep(0.001)
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGTERM)
    for _ in range(3000):
        status = Path(f"/proc/{pid}/status")
        if not status.exists() or "State:\tZ" in status.read_text():
            break
        time.sleep(0.005)
    return {"ready_ms": ready}


def comparisons(ctx: Context) -> Iterator[Comparison]:
    """Foreground on uvloop and asyncio, the web servers, the floor, then daemon mode."""
    root = Path(ctx.tmpdir)
    tapster_root = bundled_tapster_plugins(root / "tapster-side", "bench_echo")
    twisted_env = ctx.env(bundled_twisted_plugins(root / "twisted-side", "bench_echo"))
    tapster_env = ctx.env()

    def tapster_argv(port: int, *extra: str) -> list[str]:
        return [
            ctx.tapster_bin("tapster"),
            "--app-dir",
            str(tapster_root),
            *extra,
            "bench-echo",
            "--port",
            str(port),
        ]

    def twistd_argv(port: int, *extra: str) -> list[str]:
        return [ctx.twisted_bin("twistd"), *extra, "bench-echo", "--port", str(port)]

    for loop in ("uvloop", "asyncio"):

        def tapster_side(loop: str = loop) -> dict[str, float]:
            port = free_port()
            return _one_run(tapster_argv(port, "--loop", loop), port, tapster_env, root)

        def twistd_side() -> dict[str, float]:
            port = free_port()
            return _one_run(twistd_argv(port, "-n", "--pidfile="), port, twisted_env, root)

        yield Comparison(
            f"tapster --loop {loop} vs twistd -n (foreground)",
            (READY_MS, CPU_MS, IDLE_RSS_MB),
            tapster=tapster_side,
            twistd=twistd_side,
            note=f"launch to first echo; RSS {SETTLE_S:g}s after ready",
        )

    site = root / "www"
    site.mkdir(exist_ok=True)
    (site / "index.html").write_text("<!doctype html><title>bench</title><p>hello</p>\n")

    def listen(port: int) -> str:
        return f"tcp:{port}:interface=127.0.0.1"

    def tapster_web() -> dict[str, float]:
        port = free_port()
        argv = [ctx.tapster_bin("tapster"), "web", "--listen", listen(port), "--path", str(site)]
        return _one_run(argv, port, tapster_env, root, http_probe("/"))

    def twistd_web() -> dict[str, float]:
        port = free_port()
        argv = [
            ctx.twisted_bin("twistd"),
            "-n",
            "--pidfile=",
            "web",
            "--listen",
            listen(port),
            "--path",
            str(site),
        ]
        return _one_run(argv, port, twisted_env, root, http_probe("/"))

    yield Comparison(
        "tapster web vs twistd -n web (static files, foreground)",
        (READY_MS, CPU_MS, IDLE_RSS_MB),
        tapster=tapster_web,
        twistd=twistd_web,
        note=f"launch to first HTTP response to GET /; RSS {SETTLE_S:g}s after ready; "
        "tapster on its auto loop",
    )

    def floor_side() -> dict[str, float]:
        port = free_port()
        argv = [str(ctx.tapster_python), str(ECHO_SERVER), str(port), "--loop", "uvloop"]
        return _one_run(argv, port, tapster_env, root)

    def twistd_again() -> dict[str, float]:
        port = free_port()
        return _one_run(twistd_argv(port, "-n", "--pidfile="), port, twisted_env, root)

    yield Comparison(
        "floor: bare stdlib asyncio echo server on uvloop vs twistd -n",
        (READY_MS, CPU_MS, IDLE_RSS_MB),
        tapster=floor_side,
        twistd=twistd_again,
        note="bench/_echo_server.py: no tapster at all, the best any asyncio runner can do",
    )

    def tapster_daemon() -> dict[str, float]:
        port = free_port()
        return _daemon_run(tapster_argv(port, "-D", "-l", "/dev/null"), port, tapster_env, root)

    def twistd_daemon() -> dict[str, float]:
        port = free_port()
        argv = [
            ctx.twisted_bin("twistd"),
            "-l",
            "/dev/null",
            "bench-echo",
            "--port",
            str(port),
        ]
        return _daemon_run(argv, port, twisted_env, root)

    yield Comparison(
        "tapster -D vs twistd (daemon)",
        (READY_MS,),
        tapster=tapster_daemon,
        twistd=twistd_daemon,
        note="launch to first echo; tapster's launcher returns once the daemon listens",
    )


CASE = Case(
    name="ready",
    number=5,
    issue=6,
    title="Start-to-ready latency and idle RSS: TCP echo and web, foreground and daemon",
    comparisons=comparisons,
)
