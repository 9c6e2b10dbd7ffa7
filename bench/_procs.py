"""Processes under measurement: timed short commands and long-running servers.

Every process started here is stopped by its PID (SIGTERM, then SIGKILL after a grace period),
also when the harness is interrupted: live servers are tracked and stopped at exit. No command
is started with a device as an argument (:func:`refuse_devices`): a server may rotate, rename or
chown the file it is given (twistd rotates its log every megabyte, and as root it once renamed
the real ``/dev/null``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LOCALHOST = "127.0.0.1"
# GNU time (Debian package "time") reports a command's peak RSS from a small parent process.
# Measuring it from here would not work: a child's ru_maxrss starts at its parent's RSS at
# fork time (the kernel carries the high-water mark across exec), which hides the real figure.
GNU_TIME = "/usr/bin/time"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_LIVE: dict[int, subprocess.Popen[bytes]] = {}


class CommandError(Exception):
    """A measured command exited with an unexpected status or never became ready."""


def _tail(text: str, default: str = "(no output)") -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else default


@dataclass
class TimedRun:
    """One finished command: wall time, peak RSS (0 when GNU time is missing), status, output."""

    argv: Sequence[str]
    wall_ms: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    stderr: str
    cpu_s: float

    @property
    def sample(self) -> dict[str, float]:
        """The run as a sample: ``wall_ms``, ``cpu_ms`` and ``peak_rss_mb`` (when known)."""
        sample = {"wall_ms": self.wall_ms, "cpu_ms": self.cpu_s * 1000.0}
        if self.peak_rss_mb:
            sample["peak_rss_mb"] = self.peak_rss_mb
        return sample


def refuse_devices(argv: Sequence[str]) -> None:
    """Raise :class:`CommandError` if an argument (or the value of ``--name=VALUE``) is a device.

    Give the program a file in the case's temporary folder instead.
    """
    for arg in argv:
        value = arg.split("=", 1)[1] if arg.startswith("-") and "=" in arg else arg
        if not value.startswith("/"):
            continue
        try:
            mode = os.stat(value).st_mode
        except OSError:
            continue
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            raise CommandError(
                f"{value} is a device: a program may rotate, rename or chown what it is given; "
                "give it a file in the case's temporary folder"
            )


def run_timed(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | Path | None = None,
    timeout: float = 60.0,
    ok_codes: Sequence[int] = (0,),
    expect: str | None = None,
    peak_rss: bool = True,
) -> TimedRun:
    """Run ``argv`` to completion and time it from launch to exit.

    Output goes to temporary files (never a pipe that could fill up and skew the timing). With
    ``peak_rss`` the command runs under GNU time (``/usr/bin/time -f %M``), which adds the same
    sub-millisecond fork and exec to every run of both sides; the figure is the command's peak
    RSS (``VmHWM``, gone from ``/proc`` once a short command exits). Without GNU time the sample
    has no ``peak_rss_mb`` (the table shows n/a). Raises :class:`CommandError` when the status
    is not in ``ok_codes`` or ``expect`` is not in stdout.
    """
    refuse_devices(argv)
    use_time = peak_rss and os.access(GNU_TIME, os.X_OK)
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(prefix="bench-rss-") as rss_file,
    ):
        command = list(argv)
        if use_time:
            command = [GNU_TIME, "-f", "%M", "-o", rss_file.name, *command]
        start = time.perf_counter()
        # Its own process group, so a timeout also stops the command GNU time runs.
        proc = subprocess.Popen(
            command, env=dict(env), cwd=cwd, stdout=out, stderr=err, process_group=0
        )
        pidfd = os.pidfd_open(proc.pid)
        timer = threading.Timer(timeout, _kill_group, (pidfd, proc.pid))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
        finally:
            timer.cancel()
            os.close(pidfd)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
        peak_kib = 0
        if use_time:
            lines = Path(rss_file.name).read_text().split()
            peak_kib = int(lines[-1]) if lines and lines[-1].isdigit() else 0
    run = TimedRun(
        argv=list(argv),
        wall_ms=wall * 1000.0,
        peak_rss_mb=peak_kib / 1024.0,
        returncode=proc.returncode,
        stdout=stdout,
        stderr=stderr,
        cpu_s=usage.ru_utime + usage.ru_stime,
    )
    if wall >= timeout:
        raise CommandError(f"`{' '.join(argv)}` took longer than {timeout:g}s and was killed")
    if run.returncode not in ok_codes:
        raise CommandError(
            f"`{' '.join(argv)}` exited {run.returncode}: {_tail(stderr, _tail(stdout))}"
        )
    if expect is not None and expect not in stdout:
        raise CommandError(f"`{' '.join(argv)}` printed no {expect!r}")
    return run


def _kill_group(pidfd: int, pid: int) -> None:
    # A pidfd names one process for good: signalling it fails harmlessly once it has exited,
    # instead of hitting a reused PID. While it lives, its group (same id) is still ours.
    try:
        signal.pidfd_send_signal(pidfd, 0)
    except OSError:
        return
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def read_rss(pid: int) -> dict[str, float]:
    """``idle_rss_mb`` (VmRSS) and ``peak_rss_mb`` (VmHWM) of a live process, in MiB."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024.0
    return {"idle_rss_mb": fields["VmRSS"], "peak_rss_mb": fields["VmHWM"]}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used so far (from ``/proc/PID/stat``)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; the fields after its closing ")" are fixed.
    rest = stat.rsplit(")", 1)[1].split()
    utime, stime = int(rest[11]), int(rest[12])
    return (utime + stime) / _CLK_TCK


def machine_ticks() -> tuple[int, int]:
    """(steal, total) clock ticks of the whole machine so far, from ``/proc/stat``.

    Steal is time the hypervisor gave this machine's CPUs to someone else: a run
    during which it is high measured a slower machine, whatever the servers did.
    ``(0, 0)`` where ``/proc/stat`` cannot be read.
    """
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return (0, 0)
    ticks = [int(x) for x in fields[1:9]]
    return (ticks[7] if len(ticks) > 7 else 0, sum(ticks))


def steal_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Share of the machine's CPU time stolen between two :func:`machine_ticks` readings."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else 0.0


def echo_probe(payload: bytes = b"ping\n") -> Callable[[socket.socket], None]:
    """A readiness probe for echo servers: send ``payload`` and wait until it comes back."""

    def probe(sock: socket.socket) -> None:
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = sock.recv(len(payload) - len(got))
            if not chunk:
                raise ConnectionError("closed before echoing")
            got += chunk

    return probe


def http_probe(path: str = "/") -> Callable[[socket.socket], None]:
    """A readiness probe for HTTP servers: one GET, any status line counts."""

    def probe(sock: socket.socket) -> None:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {LOCALHOST}\r\n\r\n".encode())
        if not sock.recv(16).startswith(b"HTTP/"):
            raise ConnectionError("no HTTP status line")

    return probe


@dataclass
class Server:
    """A running server process, started by :func:`start_server`."""

    proc: subprocess.Popen[bytes]
    host: str
    port: int
    ready_ms: float
    log: Path
    argv: Sequence[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        """The server's PID (the process that was launched)."""
        return self.proc.pid

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` for HTTP load tools."""
        return f"http://{self.host}:{self.port}"

    def rss(self) -> dict[str, float]:
        """The server's ``idle_rss_mb`` (VmRSS now) and ``peak_rss_mb`` (VmHWM)."""
        return read_rss(self.pid)

    def cpu_seconds(self) -> float:
        """CPU seconds the server has used so far."""
        return cpu_seconds(self.pid)

    def stop(self, grace: float = 10.0) -> int:
        """Stop the server by PID: SIGTERM, then SIGKILL after ``grace`` seconds."""
        return stop_process(self.proc, grace)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> int:
    """Stop ``proc`` by its PID (SIGTERM, SIGKILL after ``grace``) and reap it."""
    _LIVE.pop(proc.pid, None)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


@atexit.register
def _stop_leftovers() -> None:
    for proc in list(_LIVE.values()):
        stop_process(proc, grace=2.0)


def launch(
    argv: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str],
    cwd: str | Path | None = None,
    host: str = LOCALHOST,
    timeout: float = 30.0,
    probe: Callable[[socket.socket], None] | None = None,
    log: Path | None = None,
) -> Server:
    """Start ``argv`` and return once ``host:port`` accepts a connection (and ``probe`` passes).

    ``ready_ms`` is launch-to-ready: from just before the process is started to the first
    connection that completes (and whose ``probe`` passes). The default readiness test is a
    completed TCP handshake; pass ``echo_probe()`` or ``http_probe()`` to require an answer
    from the server itself. The caller must stop the server (prefer :func:`start_server`).
    """
    if host != LOCALHOST:
        raise ValueError(f"benchmarks target {LOCALHOST} only, not {host}")
    refuse_devices(argv)
    if log is None:
        fd, name = tempfile.mkstemp(prefix="bench-server-", suffix=".log")
        os.close(fd)
        log = Path(name)
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )
    _LIVE[proc.pid] = proc
    try:
        ready_ms = _wait_ready(proc, host, port, start, timeout, probe, log)
    except BaseException:
        stop_process(proc, grace=2.0)
        raise
    return Server(proc=proc, host=host, port=port, ready_ms=ready_ms, log=log, argv=list(argv))


def _wait_ready(
    proc: subprocess.Popen[bytes],
    host: str,
    port: int,
    start: float,
    timeout: float,
    probe: Callable[[socket.socket], None] | None,
    log: Path,
) -> float:
    deadline = start + timeout
    while True:
        if proc.poll() is not None:
            text = log.read_text(errors="replace")
            raise CommandError(
                f"`{' '.join(proc.args)}` exited {proc.returncode} before listening "  # type: ignore[arg-type]
                f"on {host}:{port}: {_tail(text)}"
            )
        try:
            with socket.create_connection((host, port), timeout=2.0) as sock:
                if probe is not None:
                    probe(sock)
                return (time.perf_counter() - start) * 1000.0
        except OSError:
            if time.perf_counter() > deadline:
                raise CommandError(
                    f"nothing answered on {host}:{port} within {timeout:g}s "
                    f"after starting `{' '.join(proc.args)}`"  # type: ignore[arg-type]
                ) from None
            time.sleep(0.001)


@contextlib.contextmanager
def start_server(
    argv: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str],
    cwd: str | Path | None = None,
    host: str = LOCALHOST,
    timeout: float = 30.0,
    probe: Callable[[socket.socket], None] | None = None,
    log: Path | None = None,
    grace: float = 10.0,
) -> Iterator[Server]:
    """Context manager around :func:`launch`: the server is stopped by PID on exit."""
    server = launch(
        argv, port=port, env=env, cwd=cwd, host=host, timeout=timeout, probe=probe, log=log
    )
    try:
        yield server
    finally:
        server.stop(grace)


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (none once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def read_log(path: Path) -> str:
    """A server's log as it is now ("" before the server made it)."""
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 20 ms; ``Unavailable`` naming ``what`` after ``timeout``."""
    from bench._model import Unavailable

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise Unavailable(f"timed out waiting for {what}")
        time.sleep(0.02)
