"""``tapster --workers N``: a supervisor and N worker processes, with real processes and signals."""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pid_server import ask_pid as get
from pid_server import write_pid_server as write_app
from support import free_port, tapster_cmd_for, wait_for

BROKEN = """\
from tapster.service import Application, Service

class Broken(Service):
    async def start(self):
        raise RuntimeError("the database is not there")

application = Application("broken")
Broken().set_parent(application)
"""


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def titled(pid: int, mark: bytes) -> bool:
    """Whether the title of ``pid`` has ``mark`` (setproctitle is installed for the tests)."""
    try:
        return mark in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def is_spare(pid: int) -> bool:
    """Whether ``pid`` is a warm spare worker."""
    return titled(pid, b"[spare]")


def serving(pid: int) -> list[int]:
    """The workers of supervisor ``pid`` that serve (not a spare, started or starting)."""
    return [p for p in children(pid) if titled(p, b"[worker ")]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def wait_ready(log: Path, timeout: float = 30.0) -> str:
    return str(
        wait_for(
            lambda: log.exists() and "ready: " in log.read_text() and log.read_text(),
            timeout,
            "the supervisor's ready line",
        )
    )


def logged_at(text: str, pattern: str) -> float:
    """The time stamp (seconds since the epoch) of the first log line matching ``pattern``."""
    match = re.search(r"^(\S+ \S+) .*" + pattern, text, re.MULTILINE)
    assert match, (pattern, text)
    return datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()


def wait_warm(log: Path, count: int = 1, timeout: float = 30.0) -> None:
    """Wait until ``count`` spare workers were warm (ready to take over)."""
    wait_for(lambda: log.read_text().count(" warm in ") >= count, timeout, "a warm spare worker")


def start(tapster_proc, folder: Path, *args: str, log: Path | None = None):
    log = log or folder / "app.log"
    proc = tapster_proc.start("--logfile", str(log), *args, cwd=folder)
    return proc, log


def test_workers_serve_one_port_and_stop_cleanly(tapster_proc, tmp_path: Path) -> None:
    port = free_port()
    write_app(tmp_path, port)
    pidfile = tmp_path / "app.pid"
    proc, log = start(tapster_proc, tmp_path, "--pidfile", str(pidfile), "-w", "2", "-y", "app.tac")
    wait_ready(log)
    assert pidfile.read_text() == f"{proc.pid}\n"
    workers = serving(proc.pid)
    assert len(workers) == 2
    # Both workers accept on the one port: while one blocks its loop, the other answers.
    seen: set[int] = set()
    lock = threading.Lock()

    def client() -> None:
        for _ in range(5):
            pid = get(port, "/sleep/0.05")
            with lock:
                seen.add(pid)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == set(workers)
    text = log.read_text()
    assert "[worker 1] tapster.runner" in text and "[worker 2] tapster.runner" in text
    # The process titles say what each process is (setproctitle is installed for the tests).
    titles = {Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] for pid in workers}
    assert titles == {b"tapster: app [worker 1]", b"tapster: app [worker 2]"}
    assert Path(f"/proc/{proc.pid}/cmdline").read_bytes().startswith(b"tapster: app [supervisor]")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert not any(alive(pid) for pid in workers)
    assert not pidfile.exists()
    text = log.read_text()
    assert "worker 1 (pid" in text and "stopped: exit status 0" in text
    assert text.rstrip().endswith("application 'app' stopped")


def test_supervisor_killed_leaves_no_worker(tapster_proc, tmp_path: Path) -> None:
    port = free_port()
    write_app(tmp_path, port)
    proc, log = start(tapster_proc, tmp_path, "-w", "2", "-y", "app.tac")
    wait_ready(log)
    wait_warm(log)
    workers = children(proc.pid)
    assert len(workers) == 3  # and the spare
    proc.kill()
    proc.wait()
    wait_for(lambda: not any(alive(pid) for pid in workers), 1.5, "the workers to exit")


def test_a_worker_that_cannot_start_stops_everything(tapster_proc, tmp_path: Path) -> None:
    (tmp_path / "broken.tac").write_text(BROKEN)
    proc = tapster_proc.start("-w", "2", "-y", "broken.tac", cwd=tmp_path)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err.splitlines()[-1] == (
        "tapster: cannot start broken: Broken: RuntimeError: the database is not there"
    )
    assert len([line for line in err.splitlines() if line.startswith("tapster:")]) == 1


def test_a_killed_worker_is_replaced_within_a_second_under_load(tapster_proc, tmp_path) -> None:
    port = free_port()
    write_app(tmp_path, port)
    proc, log = start(tapster_proc, tmp_path, "-w", "2", "-y", "app.tac")
    wait_ready(log)
    wait_warm(log)
    (spare,) = (p for p in children(proc.pid) if is_spare(p))
    victim, other = serving(proc.pid)
    results: list[int | None] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                results.append(get(port, "/pid", timeout=5))
            except (OSError, AssertionError, ValueError):
                results.append(None)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    killed = time.time()
    os.kill(victim, signal.SIGKILL)
    # The warm spare takes over: it only has to start its tree.
    wait_for(lambda: f"(pid {spare}) ready in" in log.read_text(), 5, "the spare to take over")
    replaced = logged_at(log.read_text(), rf"\(pid {spare}\) ready in") - killed
    assert replaced < 1.0, replaced
    assert f"spare worker (pid {spare}) takes over as worker" in log.read_text()
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    failed = results.count(None)
    # Only requests the killed worker had accepted can fail (one per client at most).
    assert failed <= len(threads), (failed, len(results))
    assert results[-5:] and None not in results[-5:]
    assert other in results
    assert "ended unexpectedly" in log.read_text() and "killed by SIGKILL" in log.read_text()
    # And a new spare is started for the next time.
    wait_warm(log, 2)
    print(f"replaced (ready) {replaced:.3f} s after kill -9; {failed} of {len(results)} failed")


@pytest.mark.slow
def test_a_hung_worker_is_logged_with_its_stack_and_replaced(tapster_proc, tmp_path) -> None:
    port = free_port()
    tac = write_app(tmp_path, port)
    hang_line = next(
        number for number, line in enumerate(tac.read_text().splitlines(), 1) if "HANG-LINE" in line
    )
    proc, log = start(tapster_proc, tmp_path, "-w", "2", "--worker-timeout", "1", "-y", "app.tac")
    wait_ready(log)
    wait_warm(log)
    before = set(children(proc.pid))
    hung = threading.Thread(target=lambda: _ignore(lambda: get(port, "/hang", timeout=20)))
    began = time.time()
    hung.start()
    text = str(
        wait_for(
            lambda: "its event loop is stuck" in log.read_text() and log.read_text(), 10, "the log"
        )
    )
    match = re.search(
        r"worker (\d) \(pid (\d+)\) sent no heartbeat for [\d.]+ s: "
        r"its event loop is stuck at (.*?):(\d+) in handle",
        text,
    )
    assert match, text
    # The .tac is compiled under the name it was given (-y app.tac).
    assert match.group(3) == "app.tac" and int(match.group(4)) == hang_line
    assert f'File "app.tac", line {hang_line} in handle' in text
    hung_pid = int(match.group(2))
    assert hung_pid in before
    wait_for(lambda: not alive(hung_pid), 5, "the hung worker to be killed")
    text = str(
        wait_for(
            lambda: "takes over as worker" in log.read_text() and log.read_text(), 5, "the spare"
        )
    )
    spare = int(re.search(r"spare worker \(pid (\d+)\) takes over", text).group(1))
    assert spare in before
    wait_for(lambda: f"(pid {spare}) ready in" in log.read_text(), 5, "the replacement")
    elapsed = logged_at(log.read_text(), rf"\(pid {spare}\) ready in") - began
    # Replaced within --worker-timeout (1 s) + 1 s of the handler starting to hang.
    assert elapsed < 1 + 1, elapsed
    get(port)
    hung.join()


def _ignore(call: Callable[[], object]) -> None:
    with contextlib.suppress(OSError, AssertionError, ValueError):
        call()


def test_daemon_with_workers(tmp_path: Path) -> None:
    port = free_port()
    write_app(tmp_path, port)
    from support import run_tapster

    result = run_tapster(
        ["-D", "--pidfile", "app.pid", "--logfile", "app.log", "-w", "2", "-y", "app.tac"],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    pid = int((tmp_path / "app.pid").read_text())
    try:
        assert "ready: 2 workers" in (tmp_path / "app.log").read_text()
        workers = serving(pid)
        assert len(workers) == 2
        assert get(port) in workers
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not alive(pid), 15, "the daemon to stop")
    assert not (tmp_path / "app.pid").exists()
    assert not any(alive(p) for p in workers)


@pytest.mark.parametrize("mode", [(), ("--reuse-port",)], ids=["shared", "reuse-port"])
def test_privilege_drop_with_workers(tmp_path: Path, mode: tuple[str, ...]) -> None:
    command = tapster_cmd_for("nobody")
    if command is None or os.geteuid() != 0:
        pytest.skip("needs root and a Python that nobody can run")
    argv, env = command
    port = free_port()
    os.chmod(tmp_path, 0o755)
    write_app(tmp_path, port)
    proc = subprocess.Popen(
        [*argv, "-u", "nobody", "--logfile", "app.log", "-w", "2", *mode, "-y", "app.tac"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_ready(tmp_path / "app.log")

        def uid(pid: int) -> int:
            return int(Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0])

        # Workers switch after building and binding, as one process does; the
        # supervisor keeps root to start replacements that can do the same.
        wait_warm(tmp_path / "app.log")
        assert len(children(proc.pid)) == 3
        assert {uid(p) for p in children(proc.pid)} == {65534}  # the spare too
        assert uid(proc.pid) == 0
        assert get(port) in serving(proc.pid)
        # The spare takes over after its switch (with --reuse-port it listens only now).
        (spare,) = (p for p in children(proc.pid) if is_spare(p))
        os.kill(serving(proc.pid)[0], signal.SIGKILL)
        log = tmp_path / "app.log"
        wait_for(lambda: f"(pid {spare}) ready in" in log.read_text(), 5, "the spare to serve")
        assert listeners(port) == (2 if mode else 1)
        assert {get(port) for _ in range(10)} <= set(serving(proc.pid))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, proc.stderr.read() if proc.stderr else ""


def rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError):
        return 0


@pytest.mark.slow
def test_leaking_workers_are_recycled_under_the_limit(tapster_proc, tmp_path: Path) -> None:
    port = free_port()
    write_app(tmp_path, port)
    limit = 40 * 2**20  # a worker of this app starts at about 26 MiB here
    proc, log = start(
        tapster_proc, tmp_path, "-w", "2", "--max-worker-memory", "40M", "-y", "app.tac"
    )
    wait_ready(log)
    failures = 0
    requests = 0
    peak = 0
    deadline = time.monotonic() + 20
    next_request = time.monotonic()
    settled = deadline  # one second after the first recycling: enough seen
    while time.monotonic() < min(deadline, settled):
        now = time.monotonic()
        if settled == deadline and "recycling worker" in log.read_text():
            settled = now + 1.0
        if now >= next_request:
            next_request = now + 1 / 12  # 12 requests a second, 256 KiB kept by each
            requests += 1
            try:
                get(port, "/leak")
            except (OSError, AssertionError, ValueError):
                failures += 1
        peak = max([peak, *(rss(pid) for pid in children(proc.pid))])
        time.sleep(0.02)
    text = log.read_text()
    recycled = text.count("recycling worker")
    assert recycled >= 1, text
    assert "replaced (resident memory" in text
    assert failures == 0
    assert peak <= limit * 1.1, (peak / 2**20, recycled)
    assert len(serving(proc.pid)) >= 2
    print(f"{requests} requests, {recycled} recycled, peak {peak / 2**20:.1f} MiB")


def test_ttin_and_ttou_add_and_remove_workers(tapster_proc, tmp_path: Path) -> None:
    port = free_port()
    write_app(tmp_path, port)
    proc, log = start(tapster_proc, tmp_path, "-w", "1", "-y", "app.tac")
    wait_ready(log)
    proc.send_signal(signal.SIGTTIN)
    wait_for(lambda: len(serving(proc.pid)) == 2, 10, "2 workers")
    wait_for(lambda: log.read_text().count("ready in") == 2, 10, "the second worker ready")
    proc.send_signal(signal.SIGTTOU)
    wait_for(lambda: len(serving(proc.pid)) == 1, 15, "1 worker")
    proc.send_signal(signal.SIGTTOU)  # the last one stays
    time.sleep(0.3)
    assert len(serving(proc.pid)) == 1
    assert "keeping the last worker" in log.read_text()
    get(port)


def test_a_spare_that_cannot_start_leaves_the_workers_serving(tapster_proc, tmp_path) -> None:
    port = free_port()
    write_app(tmp_path, port)
    proc, log = start(tapster_proc, tmp_path, "-w", "1", "-y", "app.tac")
    wait_ready(log)
    wait_warm(log)
    (spare,) = (p for p in children(proc.pid) if is_spare(p))
    (worker,) = serving(proc.pid)
    (tmp_path / "fail-build").touch()
    os.kill(spare, signal.SIGKILL)
    wait_for(
        lambda: log.read_text().count("the spare worker failed to start: ") >= 2, 15, "2 failures"
    )
    assert "RuntimeError: the build is broken" in log.read_text()
    assert "restarting the spare worker in" in log.read_text()
    assert proc.poll() is None and get(port) == worker
    (tmp_path / "fail-build").unlink()
    wait_warm(log, 2)
    (spare,) = (p for p in children(proc.pid) if is_spare(p))
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: get(port, timeout=1) == spare, 5, "the spare to serve")


def test_without_a_spare_a_fresh_worker_replaces_a_killed_one(tapster_proc, tmp_path) -> None:
    port = free_port()
    write_app(tmp_path, port)
    proc, log = start(tapster_proc, tmp_path, "-w", "1", "--no-spare-worker", "-y", "app.tac")
    wait_ready(log)
    (worker,) = children(proc.pid)
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: log.read_text().count("ready in") == 2, 15, "the replacement")
    (new,) = children(proc.pid)
    assert new != worker and get(port) == new
    assert " warm in " not in log.read_text()


def listeners(port: int) -> int:
    """How many sockets listen on TCP ``port`` (IPv4), from ``/proc/net/tcp``."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(
        1 for row in rows if row.split()[1].endswith(f":{port:04X}") and row.split()[3] == "0A"
    )


def test_reuse_port_gives_each_worker_its_own_listener(tapster_proc, tmp_path) -> None:
    port = free_port()
    write_app(tmp_path, port)
    proc, log = start(tapster_proc, tmp_path, "-w", "2", "--reuse-port", "-y", "app.tac")
    wait_ready(log)
    wait_warm(log)
    # One listener a serving worker: the supervisor only holds the port, the spare waits.
    assert listeners(port) == 2
    workers = serving(proc.pid)
    seen: set[int] = set()
    lock = threading.Lock()

    def client() -> None:
        for _ in range(5):
            pid = get(port, "/sleep/0.05")
            with lock:
                seen.add(pid)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == set(workers)
    # A killed worker's listener goes with it; the spare's starts listening when it takes over.
    (spare,) = (p for p in children(proc.pid) if is_spare(p))
    os.kill(workers[0], signal.SIGKILL)
    wait_for(lambda: f"(pid {spare}) ready in" in log.read_text(), 5, "the spare to take over")
    assert listeners(port) == 2
    answered = {get(port, timeout=5) for _ in range(20)}
    assert answered <= {workers[1], spare}
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert listeners(port) == 0


def test_a_burst_of_connections_is_shared_by_the_workers(tapster_proc, tmp_path) -> None:
    """Workers on one listener accept one connection a pass: a burst is not taken by one."""
    port = free_port()
    write_app(tmp_path, port)
    _proc, log = start(tapster_proc, tmp_path, "-w", "2", "-y", "app.tac")
    wait_ready(log)
    wait_warm(log)

    def burst() -> list[int]:
        barrier = threading.Barrier(16)
        pids: list[int] = []

        def client() -> None:
            barrier.wait()
            pids.append(get(port, "/sleep/0.05"))

        threads = [threading.Thread(target=client) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sorted(pids.count(pid) for pid in set(pids))

    shares = [burst() for _ in range(5)]
    # Each request holds its worker's loop for 50 ms: a worker that took the whole
    # burst at once (as a single process does) would serve most of it alone.
    assert all(len(share) == 2 and max(share) <= 10 for share in shares), shares
