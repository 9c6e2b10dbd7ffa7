"""The single process's life cycle as systemd and Kubernetes see it: notifications,
watchdog pings from the loop, and ``--shutdown-delay`` under load."""

from __future__ import annotations

import itertools
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from pid_server import ask_pid as get
from pid_server import write_pid_server as write_app
from support import FakeServiceManager, free_port


@pytest.fixture
def manager(tmp_path: Path):
    fake = FakeServiceManager(tmp_path, abstract=True)
    try:
        yield fake
    finally:
        fake.close()


def test_notifications_and_watchdog_of_a_single_process(tapster_proc, tmp_path, manager) -> None:
    port = free_port()
    write_app(tmp_path, port)
    proc = tapster_proc.start("-y", "app.tac", cwd=tmp_path, env=manager.env(watchdog=0.4))
    manager.wait_for("READY=1")
    assert manager.messages() == [
        f"READY=1\nSTATUS=serving app on tcp:127.0.0.1:{port}\nMAINPID={proc.pid}"
    ]
    get(port)
    # Pings every 0.2 s (half of WATCHDOG_USEC) while the loop runs...
    time.sleep(1.0)
    pings = manager.pings()
    assert len(pings) >= 4, pings
    assert max(b - a for a, b in zip(pings[-4:], pings[-3:], strict=False)) < 0.35
    # ... and none while a handler blocks the loop.
    get(port, "/sleep/1.5")
    time.sleep(0.5)
    pings = manager.pings()
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) > 1.3, gaps
    # Type=notify-reload: SIGHUP (a log reopen here) is framed by RELOADING=1 and READY=1.
    proc.send_signal(signal.SIGHUP)
    manager.wait_for("READY=1", count=2, timeout=5)
    reloading, ready = manager.messages()[1:3]
    assert re.fullmatch(
        r"RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=reloading: reopening the log", reloading
    )
    assert ready == manager.messages()[0]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert manager.messages()[3:] == [
        "STOPPING=1\nSTATUS=stopping app: draining (within 30 s)",
        "EXTEND_TIMEOUT_USEC=31000000",
    ]


def test_no_watchdog_pings_unless_asked(tapster_proc, tmp_path, manager) -> None:
    port = free_port()
    write_app(tmp_path, port)
    env = manager.env(watchdog=0.2)
    env["WATCHDOG_PID"] = "1"  # meant for another process
    proc = tapster_proc.start("-y", "app.tac", cwd=tmp_path, env=env)
    manager.wait_for("READY=1")
    time.sleep(0.5)
    assert manager.pings() == []
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0


@pytest.mark.slow
def test_shutdown_delay_keeps_serving_then_serves_the_backlog(
    tapster_proc, tmp_path, manager
) -> None:
    port = free_port()
    write_app(tmp_path, port, stop_hold=1.0)
    log = tmp_path / "app.log"
    args = ("--logfile", str(log), "--shutdown-delay", "1.5", "--shutdown-timeout", "5")
    proc = tapster_proc.start(*args, "-y", "app.tac", cwd=tmp_path, env=manager.env())
    manager.wait_for("READY=1")
    results: list[tuple[float, bool]] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                get(port, timeout=5)
                results.append((time.monotonic(), True))
            except (OSError, AssertionError, ValueError):
                results.append((time.monotonic(), False))
                time.sleep(0.01)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    # Not ready at once: a log line and systemd's status say so.
    found = manager.wait_for("STOPPING=1", timeout=5)
    told = time.monotonic() - signalled
    assert found[-2:] == [
        "STOPPING=1\nSTATUS=stopping app: not ready, accepting for 1.5 s more",
        "EXTEND_TIMEOUT_USEC=7500000",
    ]
    assert told < 0.5, told
    text = log.read_text()
    assert "SIGTERM received: not ready any more; accepting for 1.5s more" in text
    # The delay ends: the server's stop holds the loop 1 s; clients connect meanwhile,
    # into the listen queue. They are answered, not reset.
    manager.wait_for("STATUS=stopping app: draining", timeout=5)
    stop.set()  # the load clients still waiting are queued too
    queued: list[object] = []

    def queued_client() -> None:
        try:
            queued.append(get(port, timeout=10))
        except (OSError, AssertionError, ValueError) as exc:
            queued.append(exc)

    time.sleep(0.2)
    clients = [threading.Thread(target=queued_client) for _ in range(10)]
    for t in clients:
        t.start()
    for t in clients + threads:
        t.join()
    assert queued == [proc.pid] * 10, queued
    assert proc.wait(timeout=10) == 0
    ended = time.monotonic() - signalled
    assert ended < 1.5 + 5, ended
    during = [ok for when, ok in results if signalled <= when < signalled + 1.5]
    assert during and all(during), (len(during), during.count(False))
    assert all(ok for _, ok in results), [ok for _, ok in results].count(False)
    assert re.search(r"took \d+ queued connection", text) is None  # debug only
    print(f"{len(during)} requests served during the delay, 10 of 10 queued ones answered")
