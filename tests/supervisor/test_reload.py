"""Reload, upgrade and stop of ``tapster --workers N`` as systemd sees them, under load.

A fake service manager (a datagram socket the test reads) checks the exact
notifications; a load loop of new connections counts every failed request.
"""

from __future__ import annotations

import itertools
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from pid_server import BUILD_FAILS_AT
from pid_server import ask as get
from pid_server import write_pid_server as write_app
from support import FakeServiceManager, free_port, wait_for


class Load:
    """Client threads making one request per new connection, counting failures."""

    def __init__(self, port: int, clients: int = 3) -> None:
        self.port = port
        self.results: list[tuple[float, str | None]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(clients)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                version, _ = get(self.port, timeout=10)
                self.results.append((time.monotonic(), version))
            except (OSError, AssertionError, ValueError) as exc:
                self.results.append((time.monotonic(), None))
                self.errors.append(repr(exc))
                time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()

    @property
    def failed(self) -> int:
        return sum(1 for _, version in self.results if version is None)


@pytest.fixture
def manager(tmp_path: Path):
    fake = FakeServiceManager(tmp_path)
    try:
        yield fake
    finally:
        fake.close()


def start(tapster_proc, folder: Path, manager: FakeServiceManager, *args: str, **env_args):
    log = folder / "app.log"
    proc = tapster_proc.start(
        "--logfile", str(log), *args, "-y", "app.tac", cwd=folder, env=manager.env(**env_args)
    )
    return proc, log


STATUS_READY = r"STATUS=(\d) of \1 workers ready"


@pytest.mark.slow
def test_reload_serves_the_new_code_without_a_failed_request(
    tapster_proc, tmp_path, manager
) -> None:
    port = free_port()
    write_app(tmp_path, port)
    proc, log = start(tapster_proc, tmp_path, manager, "-w", "2")
    started = manager.wait_for("READY=1")
    assert started[0] == "STATUS=starting 2 workers"
    assert all(re.fullmatch(r"EXTEND_TIMEOUT_USEC=35000000", m) for m in started[1:-1]), started
    assert started[-1] == f"READY=1\nSTATUS=2 of 2 workers ready\nMAINPID={proc.pid}"
    assert get(port)[0] == "v1"
    load = Load(port)
    time.sleep(0.3)
    write_app(tmp_path, port, "v2")
    began = time.monotonic()
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload done" in log.read_text(), 30, "the reload to end")
    took = time.monotonic() - began
    time.sleep(0.3)
    load.stop()
    assert load.failed == 0, (load.failed, load.errors[:3])
    versions = [v for _, v in load.results]
    assert versions[-5:] == ["v2"] * 5 and "v1" in versions
    # Never served v2 then v1 again in one client's order: each worker was replaced once.
    text = log.read_text()
    assert "SIGHUP received: log reopened" in text
    assert "SIGHUP received: reloading, replacing 2 workers one at a time" in text
    assert text.count("replaced (reload): draining it") == 2
    messages = manager.messages()[len(started) :]
    assert re.fullmatch(
        r"RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=reloading: replacing 2 workers one at a time",
        messages[0],
    ), messages
    assert re.fullmatch(
        rf"READY=1\n{STATUS_READY}; reloaded at \d\d:\d\d:\d\d\nMAINPID={proc.pid}", messages[-1]
    ), messages
    assert len(messages) == 2, messages
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    print(f"reload of 2 workers in {took:.2f} s, {len(load.results)} requests, 0 failed")


@pytest.mark.slow
def test_reload_with_broken_code_keeps_the_old_workers_serving(
    tapster_proc, tmp_path, manager
) -> None:
    port = free_port()
    write_app(tmp_path, port)
    proc, log = start(tapster_proc, tmp_path, manager, "-w", "2", "--no-spare-worker")
    manager.wait_for("READY=1")
    before: set[int] = set()
    for _ in range(500):  # until both workers answered (the kernel picks who accepts)
        before.add(get(port)[1])
        if len(before) == 2:
            break
    assert len(before) == 2, before
    load = Load(port)
    (tmp_path / "fail-build").write_text("")
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload failed" in log.read_text(), 30, "the reload to fail")
    time.sleep(0.3)
    load.stop()
    assert load.failed == 0, (load.failed, load.errors[:3])
    text = log.read_text()
    (line,) = [ln for ln in text.splitlines() if "reload failed" in ln]
    assert line.endswith(
        f"reload failed: the new worker 1 cannot start: app.tac:{BUILD_FAILS_AT}: "
        "RuntimeError: the build is broken; the old workers keep serving"
    ), line
    after = {get(port)[1] for _ in range(10)}
    assert after <= before
    messages = manager.messages()
    assert messages[-2].startswith("RELOADING=1\n")
    assert re.fullmatch(
        rf"READY=1\n{STATUS_READY}; last error: reload failed at \d\d:\d\d:\d\d: "
        rf"app.tac:{BUILD_FAILS_AT}: RuntimeError: the build is broken"
        rf"\nMAINPID={proc.pid}",
        messages[-1],
    ), messages[-1]
    # Fixed, the next reload goes through.
    (tmp_path / "fail-build").unlink()
    write_app(tmp_path, port, "v3")
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload done" in log.read_text(), 30, "the second reload")
    assert get(port)[0] == "v3"


def test_watchdog_pings_stop_while_a_worker_is_stuck(tapster_proc, tmp_path, manager) -> None:
    port = free_port()
    write_app(tmp_path, port)
    proc, _log = start(tapster_proc, tmp_path, manager, "-w", "1", watchdog=1.0)
    manager.wait_for("READY=1")
    time.sleep(1.2)
    pings = manager.pings()
    assert len(pings) >= 2
    assert max(b - a for a, b in itertools.pairwise(pings)) < 0.8
    # The worker's loop is held 3 s: the supervisor's loop runs, but pings stop
    # once its heartbeat is older than WatchdogSec.
    get(port, "/sleep/3")
    time.sleep(0.5)
    pings = manager.pings()
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) > 1.5, gaps
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0


@pytest.mark.slow
def test_shutdown_delay_with_workers_under_load(tapster_proc, tmp_path, manager) -> None:
    port = free_port()
    write_app(tmp_path, port)
    args = ("-w", "2", "--shutdown-delay", "1.5", "--shutdown-timeout", "4")
    proc, log = start(tapster_proc, tmp_path, manager, *args)
    manager.wait_for("READY=1")
    count = len(manager.messages())
    load = Load(port)
    time.sleep(0.3)
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    manager.wait_for("STOPPING=1", timeout=5)
    told = time.monotonic() - signalled
    assert told < 0.5, told
    assert proc.wait(timeout=15) == 0
    ended = time.monotonic() - signalled
    load.stop()
    during = [v for when, v in load.results if signalled <= when < signalled + 1.5]
    assert during and None not in during, (len(during), load.errors[:3])
    assert ended < 1.5 + 4, ended
    assert manager.messages()[count:] == [
        "STOPPING=1\nSTATUS=stopping app: not ready, accepting for 1.5 s more",
        "EXTEND_TIMEOUT_USEC=7500000",
        "STATUS=stopping app: draining 2 workers (within 4 s)",
        "EXTEND_TIMEOUT_USEC=6000000",
    ]
    assert "not ready any more; accepting for 1.5s more" in log.read_text()


@pytest.mark.slow
def test_upgrade_keeps_the_pid_and_serves_throughout(tapster_proc, tmp_path, manager) -> None:
    port = free_port()
    write_app(tmp_path, port)
    pidfile = tmp_path / "app.pid"
    proc, log = start(tapster_proc, tmp_path, manager, "--pidfile", str(pidfile), "-w", "2")
    count = len(manager.wait_for("READY=1"))
    wait_for(lambda: " warm in " in log.read_text(), 30, "a warm spare")
    old_workers = {get(port)[1] for _ in range(20)}
    load = Load(port)
    time.sleep(0.3)
    write_app(tmp_path, port, "v2")
    proc.send_signal(signal.SIGUSR2)
    wait_for(lambda: "reload done" in log.read_text(), 40, "the upgrade to end")
    time.sleep(0.3)
    load.stop()
    assert load.failed == 0, (load.failed, load.errors[:3])
    versions = [v for _, v in load.results]
    assert versions[-5:] == ["v2"] * 5 and "v1" in versions
    # The same process, the same pidfile: systemd, Kubernetes and the pidfile stay right.
    assert proc.poll() is None
    assert pidfile.read_text() == f"{proc.pid}\n"
    text = log.read_text()
    assert f"re-executing the supervisor (pid {proc.pid}), handing over 2 workers" in text
    assert f"upgraded in place: supervisor pid {proc.pid} adopted 2 workers" in text
    assert text.count("replaced (reload): draining it") == 2
    assert not old_workers & {get(port)[1] for _ in range(20)}
    messages = manager.messages()[count:]
    assert re.fullmatch(
        r"RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=upgrading: checking the new code", messages[0]
    ), messages
    assert messages[1] == "STATUS=upgraded in place: replacing 2 workers"
    assert re.fullmatch(
        rf"READY=1\n{STATUS_READY}; upgraded at \d\d:\d\d:\d\d\nMAINPID={proc.pid}", messages[2]
    ), messages
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert not pidfile.exists()
    print(f"upgrade: {len(load.results)} requests, 0 failed, pid {proc.pid} kept")


@pytest.mark.slow
def test_upgrade_with_broken_code_leaves_the_old_supervisor(
    tapster_proc, tmp_path, manager
) -> None:
    port = free_port()
    write_app(tmp_path, port)
    proc, log = start(tapster_proc, tmp_path, manager, "-w", "2")
    manager.wait_for("READY=1")
    load = Load(port)
    (tmp_path / "fail-build").write_text("")
    proc.send_signal(signal.SIGUSR2)
    wait_for(lambda: "upgrade failed" in log.read_text(), 30, "the upgrade to fail")
    time.sleep(0.3)
    load.stop()
    assert load.failed == 0, (load.failed, load.errors[:3])
    (line,) = [ln for ln in log.read_text().splitlines() if "upgrade failed" in ln]
    assert line.endswith(
        f"upgrade failed: the new code cannot start: app.tac:{BUILD_FAILS_AT}: RuntimeError: "
        "the build is "
        "broken; this supervisor goes on"
    ), line
    assert "re-executing" not in log.read_text()
    assert manager.messages()[-1].startswith("READY=1\n")
    assert "last error: upgrade failed at" in manager.messages()[-1]
    assert get(port)[0] == "v1"
