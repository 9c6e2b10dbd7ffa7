"""Operations (issue 17): what ``--admin``, the metrics and ``--loop-stall`` cost, and how fast
the admin endpoint answers when the server is busy or stuck.

Every row compares tapster with tapster; the second column (printed as "twistd") is the
baseline the row's note names:

* ``web`` requests/s with ``--admin`` and its metrics against ``web`` with neither (the
  ``bench-web-bare`` plugin: ``web`` whose two per-request counting calls do nothing);
* ``web`` requests/s with ``--loop-stall 0.5`` (the default) against ``--loop-stall 0``, and
  the CPU either uses while idle (the detector's fixed cost: ticks and watchdog wake-ups);
* ``/livez`` latency (a new connection per probe, as a kubelet does) while wrk loads ``web``
  with 50 connections, against the same probes with no load: one process (the admin thread
  shares the interpreter with the loaded loop) and ``--workers 2`` (the supervisor answers);
* ``/livez`` latency while both workers are blocked, each spinning the CPU in a handler;
* ``/metrics`` scrape time with 8 workers against 1.

``web`` serves a 1 KiB file with ``--no-access-log``: the fastest request, so per-request
costs show the most. wrk runs ``-c 50 -t 1``.
"""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from bench import (
    REQUESTS_PER_S,
    Case,
    Comparison,
    Context,
    Metric,
    Server,
    bundled_tapster_plugins,
    free_port,
    http_probe,
    run_wrk,
    start_server,
)
from bench.cases.web import EFFICIENCY

PROBE_P50 = Metric("probe_p50_ms", "ms", label="probe p50")
PROBE_P99 = Metric("probe_p99_ms", "ms", label="probe p99")
PROBE_MAX = Metric("probe_max_ms", "ms", label="probe max")
PROBES = (PROBE_P50, PROBE_P99, PROBE_MAX)
IDLE_CPU = Metric("idle_cpu_us_per_s", "µs/s", label="CPU while idle")

#: The handler the blocked-workers row uses: ``spin`` keeps the worker's loop busy for 8 s.
SPIN_APP = """\
import os, time
from tapster.internet import TCPServer
from tapster.service import Application

async def handle(reader, writer):
    line = await reader.readline()
    if line.startswith(b"spin"):
        open(os.path.join(FOLDER, f"spinning-{os.getpid()}"), "w").close()
        end = time.monotonic() + 8
        while time.monotonic() < end:
            pass
    writer.write(b"ok\\n")
    await writer.drain()
    writer.close()

application = Application("spin")
TCPServer(PORT, handle, interface="127.0.0.1").set_parent(application)
"""


def admin_at(port: int) -> tuple[str, str]:
    """``--admin`` on ``port`` of 127.0.0.1."""
    return ("--admin", f"tcp:{port}:interface=127.0.0.1")


def get(port: int, path: str, timeout: float = 10.0) -> bytes:
    """One request on a new connection (``Connection: close``); the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    if not data.startswith(b"HTTP/1.1 200 "):
        raise RuntimeError(f"GET {path} on port {port}: {data[:80]!r}")
    return data


def probe(port: int, path: str, count: int, gap: float = 0.01) -> dict[str, float]:
    """``count`` requests, ``gap`` seconds apart: p50, p99 and max in milliseconds."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        get(port, path)
        times.append((time.perf_counter() - started) * 1000.0)
        time.sleep(gap)
    times.sort()
    return {
        "probe_p50_ms": statistics.median(times),
        "probe_p99_ms": times[max(0, round(0.99 * len(times)) - 1)],
        "probe_max_ms": times[-1],
        "probes": float(len(times)),
    }


def wait_answers(port: int, path: str, timeout: float = 30.0) -> None:
    """Return once ``GET path`` answers 200 (the admin endpoint is up, the workers ready)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            get(port, path, timeout=2.0)
            return
        except (OSError, RuntimeError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def under_load(
    url: str, duration: float, during: Callable[[], dict[str, float]]
) -> Callable[[], dict[str, float]]:
    """A run: wrk loads ``url`` for ``duration`` s while ``during`` runs after a 0.5 s ramp."""

    def run() -> dict[str, float]:
        load: dict[str, float] = {}

        def wrk() -> None:
            load.update(run_wrk(url, connections=50, duration=duration))

        thread = threading.Thread(target=wrk)
        thread.start()
        time.sleep(0.5)
        try:
            result = during()
        finally:
            thread.join()
        result["web_requests_per_s"] = load.get("requests_per_s", 0.0)
        return result

    return run


def wrk_run(server: Server, url: str, duration: float) -> Callable[[], dict[str, float]]:
    """A run: wrk against ``url``, with the server's CPU use and its efficiency."""

    def run() -> dict[str, float]:
        before = server.cpu_seconds()
        result = run_wrk(url, connections=50, duration=duration)
        used = server.cpu_seconds() - before
        result["server_cpu_s"] = used
        result["req_per_cpu_s"] = result["requests"] / used if used > 0 else 0.0
        return result

    return run


def thread_cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid``, in nanoseconds (``schedstat``: no tick rounding)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return total


def idle_cpu(server: Server, seconds: float) -> Callable[[], dict[str, float]]:
    """A run: the server's CPU use while it serves nothing, in microseconds per second."""

    def run() -> dict[str, float]:
        before, started = thread_cpu_ns(server.pid), time.perf_counter()
        time.sleep(seconds)
        used = thread_cpu_ns(server.pid) - before
        return {"idle_cpu_us_per_s": used / 1000.0 / (time.perf_counter() - started)}

    return run


def comparisons(ctx: Context) -> Iterator[Comparison]:
    """The cost rows, then the latency rows, then the scrape row."""
    site = ctx.tmpdir / "ops-site"
    site.mkdir(exist_ok=True)
    (site / "1k.bin").write_bytes(os.urandom(1024))
    plugins = bundled_tapster_plugins(ctx.tmpdir / "ops-plugins", "bench_web_bare")
    env = ctx.env()
    duration = 2.0 if ctx.quick else 5.0
    probes = 100 if ctx.quick else 200
    tapster = ctx.tapster_bin("tapster")

    def web_argv(port: int, *runner: str, plugin: str = "web") -> list[str]:
        return [
            tapster, "--app-dir", str(plugins), "--logfile", str(ctx.tmpdir / f"ops-{port}.log"),
            *runner, plugin, "--no-access-log", "--path", str(site),
            "--listen", f"tcp:{port}:interface=127.0.0.1",
        ]  # fmt: skip

    def serve(argv: list[str], port: int) -> AbstractContextManager[Server]:
        return start_server(argv, port=port, env=env, cwd=ctx.tmpdir, probe=http_probe("/1k.bin"))

    # 1. --admin and metrics on, against neither; 2. the stall detector on, against off.
    admin = free_port()
    rows = (
        (
            "web with --admin and metrics",
            admin_at(admin), "web", (), "bench-web-bare",
            "second column: tapster web without --admin, per-request metric updates off",
        ),
        (
            "web with --loop-stall 0.5",
            ("--loop-stall", "0.5"), "web", ("--loop-stall", "0"), "web",
            "second column: --loop-stall 0",
        ),
    )  # fmt: skip
    for label, on_args, on_plugin, off_args, off_plugin, note in rows:
        on, off = free_port(), free_port()
        with (
            serve(web_argv(on, *on_args, plugin=on_plugin), on) as with_it,
            serve(web_argv(off, *off_args, plugin=off_plugin), off) as without,
        ):
            if on_args[0] == "--admin":
                wait_answers(admin, "/readyz")
            yield Comparison(
                label,
                (REQUESTS_PER_S, EFFICIENCY),
                tapster=wrk_run(with_it, f"{with_it.url}/1k.bin", duration),
                twistd=wrk_run(without, f"{without.url}/1k.bin", duration),
                note=note,
            )
            if on_args[0] == "--loop-stall":
                yield Comparison(
                    "idle with --loop-stall 0.5",
                    (IDLE_CPU,),
                    tapster=idle_cpu(with_it, duration),
                    twistd=idle_cpu(without, duration),
                    note="the detector's fixed cost; second column: --loop-stall 0",
                )

    # 3. /livez under full web load: one process, then the supervisor of two workers.
    for workers in ((), ("-w", "2")):
        web, admin = free_port(), free_port()
        argv = web_argv(web, *admin_at(admin), *workers)
        with serve(argv, web) as server:
            wait_answers(admin, "/readyz")
            shape = "--workers 2" if workers else "one process"
            yield Comparison(
                f"/livez under full web load, {shape}",
                PROBES,
                tapster=under_load(
                    f"{server.url}/1k.bin", duration + 2, lambda a=admin: probe(a, "/livez", probes)
                ),
                twistd=lambda a=admin: probe(a, "/livez", probes),
                note=f"{probes} probes 10 ms apart; second column: no load",
            )

    # 4. /livez while both workers spin in a handler.
    app, admin = free_port(), free_port()
    folder = ctx.tmpdir / "ops-spin"
    folder.mkdir(exist_ok=True)
    (folder / "spin.tac").write_text(
        SPIN_APP.replace("PORT", str(app)).replace("FOLDER", repr(str(folder)))
    )
    argv = [
        tapster, "--logfile", str(folder / "spin.log"), *admin_at(admin), "-w", "2",
        "--worker-timeout", "60", "-y", str(folder / "spin.tac"),
    ]  # fmt: skip
    with start_server(argv, port=app, env=env, cwd=folder):
        wait_answers(admin, "/readyz")
        yield Comparison(
            "/livez with both workers blocked, --workers 2",
            PROBES,
            tapster=lambda: _blocked(app, admin, folder, min(probes, 150)),
            twistd=lambda: probe(admin, "/livez", min(probes, 150)),
            note="each worker spins 8 s in a handler; second column: workers idle",
        )

    # 5. The /metrics scrape with 8 workers, against 1.
    scrapes = 30 if ctx.quick else 60
    eight, one = free_port(), free_port()
    eight_admin, one_admin = free_port(), free_port()
    with (
        serve(web_argv(eight, *admin_at(eight_admin), "-w", "8"), eight),
        serve(web_argv(one, *admin_at(one_admin), "-w", "1"), one),
    ):
        for port, admin in ((eight, eight_admin), (one, one_admin)):
            wait_answers(admin, "/readyz", timeout=60)
            run_wrk(f"http://127.0.0.1:{port}/1k.bin", connections=16, duration=1)
        time.sleep(1.5)  # every worker has reported its web metrics
        body = get(eight_admin, "/metrics")
        size = float(len(body))
        yield Comparison(
            "/metrics scrape, --workers 8",
            PROBES,
            tapster=lambda: {**probe(eight_admin, "/metrics", scrapes, 0.05), "bytes": size},
            twistd=lambda: probe(one_admin, "/metrics", scrapes, 0.05),
            note=f"{scrapes} scrapes 50 ms apart, {len(body) // 1024} KiB; second column: -w 1",
        )


def _blocked(app: int, admin: int, folder: Path, count: int) -> dict[str, float]:
    """Block both workers (each takes one ``spin``), then probe ``/livez``."""
    for marker in folder.glob("spinning-*"):
        marker.unlink()
    clients = []
    deadline = time.monotonic() + 10
    while len(list(folder.glob("spinning-*"))) < 2:
        if time.monotonic() > deadline:
            raise RuntimeError("the two workers did not both start spinning")
        sock = socket.create_connection(("127.0.0.1", app), timeout=30)
        sock.sendall(b"spin\n")
        clients.append(sock)
        time.sleep(0.3)
    try:
        return probe(admin, "/livez", count)  # 150 probes take about 2 s of the 8
    finally:
        for sock in clients:
            sock.close()
        time.sleep(8)  # the workers finish spinning before the next run


CASE = Case(
    name="ops",
    issue=17,
    title="--admin, metrics and --loop-stall: their cost on web, /livez and /metrics latency",
    description="tapster against tapster: web req/s with and without each feature; /livez "
    "under load and with blocked workers; /metrics with 8 workers",
    comparisons=comparisons,
    runs=5,
    warmup=1,
)
