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


READY_APP = """\
import logging, os
from tapster.service import Application, Service

class Database(Service):
    name = "database"
    warned = False
    async def readiness(self):
        if not os.path.exists(f"db-up-{os.getpid()}") and not os.path.exists("db-up"):
            if not self.warned:
                self.warned = True
                logging.getLogger("app.db").warning("database down in pid %d", os.getpid())
            return "the database is down"
        return None

application = Application("ready-app")
Database().set_parent(application)
"""


@pytest.mark.slow
def test_workers_readiness_checks_and_warnings_reach_the_supervisor(
    tapster_proc, tmp_path: Path
) -> None:
    (tmp_path / "app.tac").write_text(READY_APP)
    sock = tmp_path / "admin.sock"
    tapster_proc.start(
        "--logfile", str(tmp_path / "app.log"), "--admin", f"unix:{sock}", "-w", "2",
        "-y", "app.tac", cwd=tmp_path,
    )  # fmt: skip
    wait_for(lambda: sock.exists() and request(sock, "/startupz")[0] == 200, 30, "start-up")

    def reasons() -> list[str]:
        status, body = get_json(sock, "/readyz")
        assert (status == 200) == (not body["reasons"]), (status, body)
        return list(body["reasons"])

    pids = [w["pid"] for w in get_json(sock, "/status.json")[1]["workers"]]
    down = [
        f"worker {n} (pid {pid}): service 'database': the database is down"
        for n, pid in enumerate(pids, 1)
    ]
    wait_for(lambda: reasons() == down, 10, "both workers' checks failing in /readyz")
    # Their warnings are on the status page, marked with the worker.
    expected = [(n, "app.db", f"database down in pid {pid}") for n, pid in enumerate(pids, 1)]

    def warnings() -> list[tuple[int, str, str]]:
        recent = get_json(sock, "/status.json")[1]["recent"]
        found = [(r.get("worker"), r["logger"], r["message"]) for r in recent]
        return sorted(r for r in found if r[1] == "app.db")

    wait_for(lambda: warnings() == expected, 10, "the workers' warnings in /status.json")
    page = request(sock, "/status")[2].decode()
    assert f"database down in pid {pids[1]}" in page and "[worker 2] app.db" in page
    # One worker's database comes back: only the other is named.
    (tmp_path / f"db-up-{pids[0]}").touch()
    wait_for(lambda: reasons() == down[1:], 10, "worker 1's check passing")
    (tmp_path / "db-up").touch()
    wait_for(lambda: reasons() == [], 10, "every check passing")
    assert request(sock, "/readyz")[0] == 200
    (tmp_path / "db-up").unlink()
    wait_for(lambda: reasons() == down[1:], 10, "worker 2's check failing again")
