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
tapster) the same way: what any asyncio runner starts from. Another times
``tapster -D`` (the launcher returns only once the daemon listens) against ``twistd`` in its
default daemon mode, both until the first echo.

Last, where ``valgrind`` is installed, **instructions to ready**: each server runs under
callgrind, which is told to dump its counters (``callgrind_control --dump``) the moment the
first answer arrives, so the count covers launch to ready. Counts do not depend on the
machine's load (the same figure to 0.1% run after run), so these lines carry comparisons on a
shared machine. The floor line counts ``python -c "import asyncio"`` (to an ``os._exit``):
what any program that imports asyncio pays before it can serve anything.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
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
    Metric,
    Unavailable,
    bundled_tapster_plugins,
    bundled_twisted_plugins,
    echo_probe,
    free_port,
    http_probe,
    refuse_devices,
    start_server,
)

ECHO_SERVER = Path(__file__).resolve().parent.parent / "_echo_server.py"

#: Seconds a server gets after readiness before its memory is read.
SETTLE_S = 0.3

INSTRUCTIONS_M = Metric("instructions_m", "M", label="instructions to ready")


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


def _callgrind_total(path: Path) -> float:
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1]) / 1e6
    raise RuntimeError(f"no total in {path}")


def _count_run(
    argv: list[str],
    port: int | None,
    env: dict[str, str],
    cwd: Path,
    probe: Callable[[socket.socket], None] | None = None,
) -> dict[str, float]:
    """Instructions from launch to the first answer, counted by callgrind.

    With ``port`` None the command is expected to exit by itself (the floor's
    ``python -c``), and its whole count is taken.
    """
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise Unavailable("valgrind is not installed (Debian package valgrind)")
    probe = probe or echo_probe()
    refuse_devices(argv)
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as scratch:
        out = Path(scratch) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *argv]
        proc = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            if port is None:
                proc.wait(timeout=300)
                return {"instructions_m": _callgrind_total(out)}
            deadline = time.monotonic() + 300
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                        probe(sock)
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{argv[0]} never answered under callgrind") from None
                    time.sleep(0.02)
            subprocess.run(
                ["callgrind_control", "--dump", str(proc.pid)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
                timeout=60,
            )
            dumps = sorted(Path(scratch).glob("callgrind.out.*"))
            if not dumps:
                raise RuntimeError("callgrind wrote no dump")
            return {"instructions_m": _callgrind_total(dumps[0])}
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _daemon_run(argv: list[str], port: int, env: dict[str, str], cwd: Path) -> dict[str, float]:
    pidfile = cwd / f"bench-{port}.pid"
    refuse_devices(argv)
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

    def count(
        argv: Callable[[int], list[str]], env: dict[str, str], http: bool = False
    ) -> Callable[[], dict[str, float]]:
        def run() -> dict[str, float]:
            port = free_port()
            return _count_run(argv(port), port, env, root, http_probe("/") if http else None)

        return run

    yield Comparison(
        "instructions to ready: tapster --loop asyncio vs twistd -n (echo)",
        (INSTRUCTIONS_M,),
        tapster=count(lambda p: tapster_argv(p, "--loop", "asyncio"), tapster_env),
        twistd=count(lambda p: twistd_argv(p, "-n", "--pidfile="), twisted_env),
        exact=True,  # the runs above warmed every cache; a count does not drift
        note="callgrind, launch to first echo (load-independent)",
    )

    def web_argv(p: int) -> list[str]:
        return [ctx.tapster_bin("tapster"), "web", "--listen", listen(p), "--path", str(site)]

    def twistd_web_argv(p: int) -> list[str]:
        return [
            ctx.twisted_bin("twistd"),
            *("-n", "--pidfile=", "web", "--listen", listen(p), "--path", str(site)),
        ]

    yield Comparison(
        "instructions to ready: tapster web vs twistd -n web",
        (INSTRUCTIONS_M,),
        tapster=count(web_argv, tapster_env, http=True),
        twistd=count(twistd_web_argv, twisted_env, http=True),
        exact=True,  # the runs above warmed every cache; a count does not drift
        note="callgrind, launch to first HTTP response (load-independent)",
    )

    def import_asyncio() -> dict[str, float]:
        argv = [str(ctx.tapster_python), "-c", "import asyncio, os; os._exit(0)"]
        return _count_run(argv, None, tapster_env, root)

    yield Comparison(
        "instructions: python -c 'import asyncio' (no server) vs twistd -n (echo)",
        (INSTRUCTIONS_M,),
        tapster=import_asyncio,
        twistd=count(lambda p: twistd_argv(p, "-n", "--pidfile="), twisted_env),
        exact=True,  # the runs above warmed every cache; a count does not drift
        note="the floor of anything on asyncio: starting Python and importing asyncio",
    )

    def tapster_daemon() -> dict[str, float]:
        port = free_port()
        log = str(root / f"tapster-daemon-{port}.log")  # never a device: a server may rotate it
        return _daemon_run(tapster_argv(port, "-D", "-l", log), port, tapster_env, root)

    def twistd_daemon() -> dict[str, float]:
        port = free_port()
        argv = [
            ctx.twisted_bin("twistd"),
            "-l",
            str(root / f"twistd-daemon-{port}.log"),  # twistd rotates its log: never a device
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
