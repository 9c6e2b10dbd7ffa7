"""Reload, upgrade and stop under load (issue 16): tapster -w 2 against gunicorn -w 2.

The second column is gunicorn (``GUNICORN_VERSION``, sync workers, ``bench/.venv-gunicorn``).
A client in this process keeps four threads busy on a small WSGI app (1 ms a request): two
open a new connection for every request, two hold keep-alive connections. It counts every
request that got no complete ``200`` answer (``failed``) and, among those, the ones that ended
in a reset (``resets``: ``ECONNRESET``/``EPIPE``). A keep-alive connection the server closed
between two requests (``ka_closed``: the request saw end of file before any byte of an answer)
is retried once on a new connection, as HTTP clients do for an idempotent request; a retry that
fails counts as failed. The JSON also has ``failed_keepalive`` (failures on keep-alive
threads, a reset of a reused connection among them). Rows:

* 10 reloads, then 2 upgrades, one after the other, each waited for: tapster gets ``SIGHUP``
  x10 and ``SIGUSR2`` x2 (done when its log says ``reload done``); gunicorn gets ``kill -HUP``
  x10 (2 s apart) and, twice, ``kill -USR2``, ``WINCH`` to the old master once the new one
  runs, then ``QUIT``;
* ``SIGTERM`` under load: tapster with ``--shutdown-delay 2``, gunicorn (no such option) as it
  is. ``failed_in_delay`` counts the failures of the first 2 s after the signal; 0.5 s before
  the delay ends 16 connections are opened at once, and ``backlog_resets`` counts those reset
  or unanswered (tapster must serve them all).
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench import (
    Case,
    Comparison,
    Context,
    Metric,
    child_pids,
    free_port,
    http_probe,
    launch,
    read_log,
    wait_until,
)
from bench._env import GUNICORN_VERSION

FAILED = Metric("failed", "requests", label="failed requests")
RESETS = Metric("resets", "requests", label="of which reset")
KA_CLOSED = Metric("ka_closed", "requests", label="keep-alive closed, retried")
REQUESTS = Metric("requests", "requests", lower_is_better=False, label="requests served")
IN_DELAY = Metric("failed_in_delay", "requests", label="failed before the delay ended")
BACKLOG = Metric("backlog_resets", "connections", label="backlog connections reset")

APP = """\
import time

def application(environ, start_response):
    time.sleep(0.001)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"ok\\n"]
"""

_RESET = (errno.ECONNRESET, errno.EPIPE)


class LoadClient:
    """Threads that request ``/`` until stopped, counting what failed and when."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.ka_closed = 0
        self.failures: list[tuple[float, bool, bool]] = []  # (time, a reset, on keep-alive)
        self.threads = [
            threading.Thread(target=self._run, args=(keep,), daemon=True)
            for keep in (False, False, True, True)
        ]

    def __enter__(self) -> LoadClient:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)

    def _connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def _run(self, keep_alive: bool) -> None:
        conn = self._connection()
        while not self.stop.is_set():
            if not keep_alive:
                conn = self._connection()
            # http.client opens a new connection by itself after one the server said it
            # would close; only a connection that already answered is a reused one.
            reused = conn.sock is not None
            try:
                self._request(conn)
            except http.client.RemoteDisconnected as e:
                # End of file before any byte of an answer (RemoteDisconnected is a
                # ConnectionResetError without an errno: no reset happened).
                conn.close()
                if reused:
                    with self.lock:  # closed between requests: retry once, as clients do
                        self.ka_closed += 1
                    conn = self._connection()
                    self._attempt(conn, keep_alive)
                else:
                    self._failed(e, keep_alive)
                    conn = self._connection()
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                self._failed(e, keep_alive)
                conn = self._connection()
                time.sleep(0.01)
            if not keep_alive:
                conn.close()
        conn.close()

    def _attempt(self, conn: http.client.HTTPConnection, keep_alive: bool) -> None:
        try:
            self._request(conn)
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            self._failed(e, keep_alive)

    def _request(self, conn: http.client.HTTPConnection) -> None:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200 or body != b"ok\n":
            raise http.client.HTTPException(f"status {response.status}")
        with self.lock:
            self.ok += 1

    def _failed(self, error: BaseException, keep_alive: bool) -> None:
        reset = isinstance(error, OSError) and error.errno in _RESET
        with self.lock:
            self.failures.append((time.monotonic(), reset, keep_alive))

    def result(self) -> dict[str, float]:
        """Counts so far."""
        with self.lock:
            return {
                "requests": float(self.ok),
                "failed": float(len(self.failures)),
                "resets": float(sum(1 for _, reset, _ in self.failures if reset)),
                "failed_keepalive": float(sum(1 for *_, keep in self.failures if keep)),
                "ka_closed": float(self.ka_closed),
            }


def comparisons(ctx: Context) -> Iterator[Comparison]:
    """Each run starts its own servers (signals change them)."""
    folder = ctx.tmpdir / "reload"
    folder.mkdir(exist_ok=True)
    (folder / "app.py").write_text(APP)
    reloads, upgrades = (2, 1) if ctx.quick else (10, 2)
    note = f"second column: gunicorn {GUNICORN_VERSION} -w 2 sync; 4 client threads"
    yield Comparison(
        f"{reloads} reloads + {upgrades} upgrades under load, -w 2",
        (FAILED, RESETS, KA_CLOSED, REQUESTS),
        tapster=lambda: _tapster_reloads(ctx, folder, reloads, upgrades),
        twistd=lambda: _gunicorn_reloads(ctx, folder, reloads, upgrades),
        runs=1,
        warmup=0,
        note=note + "; tapster HUP/USR2, gunicorn HUP/USR2+WINCH+QUIT",
    )
    yield Comparison(
        "SIGTERM under load, -w 2 (tapster --shutdown-delay 2)",
        (IN_DELAY, BACKLOG, REQUESTS),
        tapster=lambda: _stop_under_load(ctx, folder, tapster=True),
        twistd=lambda: _stop_under_load(ctx, folder, tapster=False),
        runs=1,
        warmup=0,
        note=note + "; gunicorn has no shutdown delay",
    )


@contextlib.contextmanager
def _server(ctx: Context, folder: Path, tapster: bool, *extra: str) -> Iterator[tuple[int, int]]:
    """Start tapster or gunicorn -w 2 on the app; yields (port, PID); stopped by PID."""
    port = free_port()
    if tapster:
        log = folder / f"tapster-{port}.log"
        argv = [ctx.tapster_bin("tapster"), "--logfile", str(log), "-w", "2", *extra]
        argv += ["web", "--no-access-log", "--listen", f"tcp:{port}:interface=127.0.0.1"]
        argv += ["--wsgi", "app:application"]
        server = launch(argv, port=port, env=ctx.env(), cwd=folder, probe=http_probe())
        try:
            wait_until(lambda: "ready: 2 workers" in read_log(log), 60, "the workers")
            yield port, server.pid  # the supervisor (no -D)
        finally:
            server.stop(30)
        return
    python = ctx.peer_python("gunicorn", GUNICORN_VERSION)
    log = folder / f"gunicorn-{port}.log"
    pidfile = folder / f"gunicorn-{port}.pid"
    argv = [str(python.parent / "gunicorn"), "-k", "sync", "-w", "2", "--pid", str(pidfile)]
    argv += ["--bind", f"127.0.0.1:{port}", "--chdir", str(folder), "app:application"]
    server = launch(argv, port=port, env=ctx.env(), cwd=folder, probe=http_probe(), log=log)
    try:
        wait_until(lambda: read_log(log).count("Booting worker") >= 2, 60, "gunicorn's workers")
        time.sleep(0.5)
        yield port, server.pid
    finally:
        for path in (pidfile, pidfile.with_name(pidfile.name + ".2")):  # masters of upgrades
            with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
                master = int(path.read_text())
                if master != server.pid:
                    os.kill(master, signal.SIGTERM)
                    wait_until(lambda m=master: not _alive(m), 30, "gunicorn's last master")
        server.stop(30)


def _tapster_reloads(ctx: Context, folder: Path, reloads: int, upgrades: int) -> dict[str, float]:
    with _server(ctx, folder, True) as (port, pid), LoadClient(port) as client:
        log = folder / f"tapster-{port}.log"
        time.sleep(1.0)
        for number, sig in enumerate([signal.SIGHUP] * reloads + [signal.SIGUSR2] * upgrades):
            os.kill(pid, sig)
            wait_until(lambda n=number: read_log(log).count("reload done:") > n, 120, "the reload")
        time.sleep(1.0)
        return client.result()


def _gunicorn_reloads(ctx: Context, folder: Path, reloads: int, upgrades: int) -> dict[str, float]:
    with _server(ctx, folder, False) as (port, _), LoadClient(port) as client:
        pidfile = folder / f"gunicorn-{port}.pid"
        time.sleep(1.0)
        for _ in range(reloads):
            os.kill(int(pidfile.read_text()), signal.SIGHUP)
            time.sleep(2.0)
        for _ in range(upgrades):
            old = int(pidfile.read_text())
            os.kill(old, signal.SIGUSR2)
            second = pidfile.with_name(pidfile.name + ".2")  # where the new master writes
            wait_until(lambda p=second, o=old: _pid_in(p, o), 60, "gunicorn's new master")
            new = int(second.read_text())
            wait_until(lambda n=new: len(child_pids(n)) >= 2, 60, "the new master's workers")
            time.sleep(1.0)  # its workers import the app
            os.kill(old, signal.SIGWINCH)
            time.sleep(1.0)
            os.kill(old, signal.SIGQUIT)
            wait_until(lambda o=old: not _alive(o), 60, "the old master to exit")
            wait_until(lambda o=old: _pid_in(pidfile, o), 60, "the new master's pidfile")
        time.sleep(1.0)
        return client.result()


def _stop_under_load(ctx: Context, folder: Path, *, tapster: bool) -> dict[str, float]:
    delay = 2.0
    extra = ("--shutdown-delay", str(delay)) if tapster else ()
    with _server(ctx, folder, tapster, *extra) as (port, pid), LoadClient(port) as client:
        time.sleep(1.0)
        signalled = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        time.sleep(delay - 0.5)
        backlog = _backlog_burst(port, 16)
        time.sleep(0.6)
        result = client.result()
        client.stop.set()
        result["failed_in_delay"] = float(
            sum(1 for at, *_ in client.failures if signalled <= at < signalled + delay)
        )
        result["backlog_resets"] = float(backlog)
        return result


def _backlog_burst(port: int, count: int) -> int:
    """Open ``count`` connections at once, then ask each for ``/``; how many got no answer."""
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(10)
        try:
            sock.connect(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        socks.append(sock)
    failed = count - len(socks)
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    for sock in socks:
        try:
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
            if not answer.startswith(b"HTTP/1.") or b" 200 " not in answer.split(b"\r\n")[0]:
                failed += 1
        except OSError:
            failed += 1
        finally:
            sock.close()
    return failed


def _pid_in(pidfile: Path, old: int) -> bool:
    try:
        return int(pidfile.read_text()) != old
    except (FileNotFoundError, ValueError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(FileNotFoundError):
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    return False


CASE = Case(
    name="reload",
    issue=16,
    title="reload, upgrade and SIGTERM with --shutdown-delay under load: tapster vs gunicorn -w 2",
    description="failed requests and resets during 10 reloads + 2 upgrades, and at SIGTERM",
    comparisons=comparisons,
    runs=1,
    warmup=0,
)
