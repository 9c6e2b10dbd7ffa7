"""``--admin`` with ``--workers``: the supervisor answers for all, sums, counts restarts."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from admin_client import get_json, request, samples, wait_for
from support import free_port

APP = """\
import os, time
from tapster.internet import TCPServer
from tapster.service import Application

async def handle(reader, writer):
    line = await reader.readline()
    if b"/hang" in line:
        time.sleep(3)
    writer.write(str(os.getpid()).encode())
    await writer.drain()
    writer.close()

application = Application("app")
TCPServer(PORT, handle, interface="127.0.0.1").set_parent(application)
"""


def ask(port: int, path: str = "/pid") -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path}\n".encode())
        data = b""
        while chunk := sock.recv(100):
            data += chunk
    return int(data)


def accepted(sock: Path, port: int) -> float:
    found = samples(request(sock, "/metrics")[2].decode())
    return found.get(
        ("tapster_listener_connections_accepted_total", (("listener", f"tcp:127.0.0.1:{port}"),)),
        0.0,
    )


@pytest.mark.slow
def test_the_supervisor_serves_the_admin_endpoint(tapster_proc, tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "app.tac").write_text(APP.replace("PORT", str(port)))
    sock = tmp_path / "admin.sock"
    log = tmp_path / "app.log"
    proc = tapster_proc.start(
        "--logfile", str(log), "--admin", f"unix:{sock}", "-w", "2",
        "--worker-timeout", "2", "-y", "app.tac", cwd=tmp_path,
    )  # fmt: skip
    wait_for(lambda: sock.exists() and request(sock, "/readyz")[0] == 200, 30, "readiness")
    status, info = get_json(sock, "/status.json")
    assert info["pid"] == proc.pid and info["role"] == "supervisor of 2 workers"
    assert [w["state"] for w in info["workers"]] == ["ready", "ready"]
    pids = {w["pid"] for w in info["workers"]}

    for _ in range(20):
        assert ask(port) in pids
    wait_for(lambda: accepted(sock, port) == 20, 5, "20 connections summed over the workers")
    found = samples(request(sock, "/metrics")[2].decode())
    assert found[("tapster_worker_up", (("worker", "1"),))] == 1
    assert found[("tapster_worker_up", (("worker", "2"),))] == 1
    assert found[("process_open_fds", ())] > 3  # the supervisor's own

    # A worker killed: its counts stay in the sum, its slot counts a restart.
    victim = info["workers"][0]["pid"]
    os.kill(victim, signal.SIGKILL)
    seen = [accepted(sock, port)]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen.append(accepted(sock, port))
        status, info = get_json(sock, "/status.json")
        states = [w["state"] for w in info["workers"]]
        if states == ["ready", "ready"] and victim not in {w["pid"] for w in info["workers"]}:
            break
        time.sleep(0.05)
    assert seen == sorted(seen), "a counter went backwards"
    assert info["workers"][0]["restarts"] == 1
    found = samples(request(sock, "/metrics")[2].decode())
    assert found[("tapster_worker_restarts_total", (("worker", "1"),))] == 1
    before = accepted(sock, port)
    assert before >= 19  # the killed worker's last report may miss its final second
    for _ in range(5):
        ask(port)
    wait_for(lambda: accepted(sock, port) == before + 5, 5, "the new worker's counts")

    # Both workers blocked: the supervisor still answers at once.
    hung = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    for conn in hung:
        conn.sendall(b"GET /hang\n")
    time.sleep(0.2)
    latencies = []
    for _ in range(20):
        started = time.monotonic()
        status, _, _ = request(sock, "/livez")
        latencies.append(time.monotonic() - started)
    assert max(latencies) < 0.1, latencies
    for conn in hung:
        conn.close()

    # Control: one more worker, then stop.
    status, _, body = request(sock, "/control/workers?count=3", method="POST")
    assert status == 200, body
    wait_for(lambda: len(get_json(sock, "/status.json")[1]["workers"]) == 3, 10, "a third worker")
    status, _, body = request(sock, "/control/stop", method="POST")
    assert status == 200 and json.loads(body)["done"]
    assert proc.wait(30) == 0
