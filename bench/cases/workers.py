"""Workers (issue 15): ``tapster -w N`` against gunicorn's sync workers, and the supervisor's costs.

The second column of the table is gunicorn here (``GUNICORN_VERSION``, sync workers, from
``bench/.venv-gunicorn``), not twistd, except where a row's note names something else:

* a WSGI application that burns about 2 ms of CPU per request (``time.thread_time``, so the
  cost is CPU, not waiting), served by ``tapster -w 1``/``-w 2`` (``web --wsgi``, access log
  off as gunicorn's is by default) and ``gunicorn -w 1``/``-w 2``; wrk -c 16 keeps both busy.
  On a 2-core machine wrk shares the cores with the workers;
* static 1 KiB with ``-w 1`` and ``-w 2`` (tapster only; gunicorn serves no files);
* ``kill -9`` of a worker to its replacement listening, against ``--no-spare-worker`` (a fresh
  interpreter): the supervisor's log time stamps of the replacement's "ready" line minus the
  moment of the kill, one kill a run;
* the supervisor's own CPU with 4 idle workers, against gunicorn's arbiter with 4 workers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench import (
    P99_MS,
    REQUESTS_PER_S,
    Case,
    Comparison,
    Context,
    Metric,
    Server,
    Unavailable,
    cpu_seconds,
    free_port,
    http_probe,
    run_wrk,
    start_server,
)
from bench._env import GUNICORN_VERSION

REPLACED_MS = Metric("replaced_ms", "ms", label="kill -9 to replacement listening")
IDLE_CPU = Metric("idle_cpu_pct", "% of a core", label="supervisor idle CPU")
WRK_CORES = Metric("wrk_cores", "cores", label="wrk's own CPU")

APP = """\
import time

def application(environ, start_response):
    end = time.thread_time() + 0.002  # about 2 ms of this thread's CPU
    while time.thread_time() < end:
        pass
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"ok\\n"]
"""

_READY = re.compile(r"^(\S+ \S+) INFO tapster\.supervisor: worker \d+ \(pid (\d+)\) ready in ")


def comparisons(ctx: Context) -> Iterator[Comparison]:
    """Start the servers of each comparison around its ``yield``."""
    folder = ctx.tmpdir / "workers"
    folder.mkdir(exist_ok=True)
    (folder / "burn.py").write_text(APP)
    (folder / "1k.bin").write_bytes(os.urandom(1024))
    duration = 1.0 if ctx.quick else 5.0
    gunicorn_note = f"second column: gunicorn {GUNICORN_VERSION} sync workers; wrk -c 16 -t 1"

    for workers in (1, 2):
        with (
            _tapster(ctx, folder, workers, "--wsgi", "burn:application") as tap,
            _gunicorn(ctx, folder, workers) as gun,
        ):
            yield Comparison(
                f"CPU-bound WSGI (2 ms a request), -w {workers}",
                (REQUESTS_PER_S, P99_MS, WRK_CORES),
                tapster=lambda s=tap: _load(s, "/", duration),
                twistd=lambda g=gun: _load(g, "/", duration),
                note=gunicorn_note,
            )
    with _tapster(ctx, folder, 2, "--wsgi", "burn:application", reuse_port=True) as tap:
        yield Comparison(
            "CPU-bound WSGI, -w 2 --reuse-port",
            (REQUESTS_PER_S, P99_MS, WRK_CORES),
            tapster=lambda: _load(tap, "/", duration),
            twistd=_unavailable("measured in the -w 2 row above"),
            note="wrk -c 16 -t 1",
        )
    for workers in (1, 2):
        with _tapster(ctx, folder, workers, "--path", str(folder)) as tap:
            yield Comparison(
                f"static 1 KiB, -w {workers}",
                (REQUESTS_PER_S, P99_MS, WRK_CORES),
                tapster=lambda s=tap: _load(s, "/1k.bin", duration),
                twistd=_unavailable("gunicorn serves no static files"),
                note="wrk -c 16 -t 1 shares the 2 cores with the workers",
            )
    with (
        _tapster(ctx, folder, 2, "--path", str(folder)) as spare,
        _tapster(ctx, folder, 2, "--path", str(folder), "--no-spare-worker") as fresh,
    ):
        yield Comparison(
            "kill -9 of one of 2 idle workers",
            (REPLACED_MS,),
            tapster=lambda: {"replaced_ms": _kill_and_wait(spare, spare=True)},
            twistd=lambda: {"replaced_ms": _kill_and_wait(fresh, spare=False)},
            runs=2 if ctx.quick else 10,
            warmup=0,
            note="second column: tapster --no-spare-worker (a fresh interpreter each time)",
        )
    idle = 2.0 if ctx.quick else 10.0
    with _tapster(ctx, folder, 4, "--path", str(folder)) as tap, _gunicorn(ctx, folder, 4) as gun:
        yield Comparison(
            "4 idle workers",
            (IDLE_CPU,),
            tapster=lambda: _idle_cpu(tap, idle),
            twistd=lambda: _idle_cpu(gun, idle),
            runs=1 if ctx.quick else 3,
            warmup=0,
            note=f"second column: gunicorn's arbiter; {idle:g} s a run",
        )


@contextlib.contextmanager
def _tapster(
    ctx: Context, folder: Path, workers: int, *args: str, reuse_port: bool = False
) -> Iterator[Server]:
    port = free_port()
    log = folder / f"tapster-{port}.log"
    argv = [ctx.tapster_bin("tapster"), "--logfile", str(log), "-w", str(workers)]
    if reuse_port:
        argv.append("--reuse-port")
    if "--no-spare-worker" in args:
        argv.append("--no-spare-worker")
        args = tuple(a for a in args if a != "--no-spare-worker")
    argv += ["web", "--no-access-log", "--listen", f"tcp:{port}:interface=127.0.0.1", *args]
    probe = http_probe("/" if "--wsgi" in args else "/1k.bin")
    with start_server(argv, port=port, env=ctx.env(), cwd=folder, probe=probe) as server:
        server = dataclasses.replace(server, log=log)  # the supervisor's log, for its time stamps
        _wait(lambda: f"ready: {workers} workers" in _text(log), 60, "the workers")
        if "--no-spare-worker" not in argv:
            _wait(lambda: " warm in " in _text(log), 60, "the spare worker")
        yield server


@contextlib.contextmanager
def _gunicorn(ctx: Context, folder: Path, workers: int) -> Iterator[Server]:
    python = ctx.peer_python("gunicorn", GUNICORN_VERSION)
    port = free_port()
    log = folder / f"gunicorn-{port}.log"
    argv = [str(python.parent / "gunicorn"), "-k", "sync", "-w", str(workers)]
    argv += ["--bind", f"127.0.0.1:{port}", "--chdir", str(folder), "burn:application"]
    with start_server(argv, port=port, env=ctx.env(), cwd=folder, probe=http_probe(), log=log) as s:
        _wait(lambda: _text(log).count("Booting worker") >= workers, 60, "gunicorn's workers")
        time.sleep(0.5)  # a forked worker imports the app after saying it boots
        yield s


def _load(server: Server, path: str, duration: float) -> dict[str, float]:
    result = run_wrk(server.url + path, connections=16, duration=duration)
    result["wrk_cores"] = result["wrk_cpu_share"]
    return result


def _unavailable(why: str) -> Callable[[], dict[str, float]]:
    def run() -> dict[str, float]:
        raise Unavailable(why)

    return run


def _kill_and_wait(server: Server, *, spare: bool) -> float:
    """Kill one serving worker; milliseconds until the supervisor logged its replacement ready."""
    log = Path(server.log)
    ready_lines = _text(log).count(") ready in ")
    warm = _text(log).count(" warm in ")
    serving = [int(m.group(2)) for m in map(_READY.match, _text(log).splitlines()) if m]
    victim = next(p for p in reversed(serving) if p in _children(server.pid))
    # The replacement is at once only for a worker that ran a second or more (else backoff).
    time.sleep(1.2)
    killed = time.time()
    os.kill(victim, signal.SIGKILL)
    _wait(lambda: _text(log).count(") ready in ") > ready_lines, 30, "the replacement")
    line = [m for m in map(_READY.match, _text(log).splitlines()) if m][ready_lines]
    stamp = datetime.datetime.strptime(line.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
    if spare:  # the next run needs a warm spare again
        _wait(lambda: _text(log).count(" warm in ") > warm, 60, "a new spare worker")
    return max(0.0, (stamp - killed) * 1000.0)


def _idle_cpu(server: Server, seconds: float) -> dict[str, float]:
    before = cpu_seconds(server.pid)
    time.sleep(seconds)
    return {"idle_cpu_pct": 100.0 * (cpu_seconds(server.pid) - before) / seconds}


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise Unavailable(f"timed out waiting for {what}")
        time.sleep(0.02)


CASE = Case(
    name="workers",
    issue=15,
    title="tapster -w N vs gunicorn: CPU-bound WSGI, static, replacement time, supervisor CPU",
    description="wrk -c 16 against a 2 ms CPU WSGI app and 1 KiB static, -w 1 and -w 2",
    comparisons=comparisons,
    runs=5,
    warmup=1,
)
