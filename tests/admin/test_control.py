"""Control actions on a unix admin socket, and ``tapsterctl`` against a running tapster."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from admin_client import request, wait_for
from support import free_port, tapster_env


def tapsterctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tapster.admin.ctl", *args],
        capture_output=True, text=True, timeout=30, env=tapster_env(), check=False,
    )  # fmt: skip


def start(tapster_proc, folder: Path):
    sock = folder / "admin.sock"
    log = folder / "app.log"
    web = free_port()
    proc = tapster_proc.start(
        "--logfile", str(log), "--admin", f"unix:{sock}:mode=600",
        "web", "--path", ".", "--listen", f"tcp:{web}:interface=127.0.0.1",
        cwd=folder,
    )  # fmt: skip
    wait_for(lambda: sock.exists() and request(sock, "/readyz")[0] == 200, 15, "readiness")
    return proc, sock, log


def test_control_actions_on_a_unix_socket(tapster_proc, tmp_path: Path) -> None:
    proc, sock, log = start(tapster_proc, tmp_path)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    assert "control actions accepted" in log.read_text()

    os.rename(log, tmp_path / "app.log.1")
    assert request(sock, "/control/reopen-logs")[0] == 405  # GET is not enough
    status, _, body = request(sock, "/control/reopen-logs", method="POST")
    assert status == 200 and json.loads(body)["done"] is True
    wait_for(lambda: log.exists() and "log reopened" in log.read_text(), 5, "the reopened log")

    status, _, body = request(sock, "/control/workers?count=3", method="POST")
    assert status == 409 and "needs --workers" in json.loads(body)["message"]
    status, _, body = request(sock, "/control/workers?count=none", method="POST")
    assert status == 400
    assert request(sock, "/control/explode", method="POST")[0] == 404

    status, _, body = request(sock, "/control/stop", method="POST")
    assert status == 200
    assert proc.wait(10) == 0
    assert not sock.exists()


def test_tapsterctl(tapster_proc, tmp_path: Path) -> None:
    proc, sock, _log = start(tapster_proc, tmp_path)
    done = tapsterctl("--admin", str(sock), "status")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("web (single process): ready, live, ready\n")
    assert f"pid {proc.pid}" in done.stdout

    done = tapsterctl("--admin", str(sock), "--json", "status")
    assert json.loads(done.stdout)["pid"] == proc.pid

    done = tapsterctl("--admin", str(sock), "workers", "2")
    assert done.returncode == 1
    assert done.stderr == (
        "tapsterctl: workers refused (409): workers needs --workers: "
        "a single process has no workers\n"
    )
    done = tapsterctl("--admin", str(sock), "workers", "zero")
    assert done.returncode == 2 and "expected a whole number" in done.stderr

    done = tapsterctl("--admin", str(sock), "reopen-logs")
    assert (done.returncode, done.stdout) == (0, "log reopen requested (as SIGUSR1)\n")
    done = tapsterctl("--admin", str(sock), "stop")
    assert (done.returncode, done.stdout) == (0, "stopping (as SIGTERM)\n")
    assert proc.wait(10) == 0

    done = tapsterctl("--admin", str(sock), "status")
    assert done.returncode == 1
    assert done.stderr == (
        f"tapsterctl: no admin socket at {sock}: is tapster running with --admin unix:{sock}?\n"
    )
    stale = tmp_path / "stale.sock"
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))  # a socket file nobody listens on
    done = tapsterctl("--admin", str(stale), "stop")
    assert done.returncode == 1
    assert done.stderr == f"tapsterctl: nothing answers on {stale}: tapster is not running\n"
