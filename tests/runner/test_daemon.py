"""Daemon mode: the launcher exits 0 only once the service listens, else says why."""

from __future__ import annotations

import os
import signal
import socket
import stat
import time
from pathlib import Path

from support import free_port, run_tapster


def gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for init to reap it counts)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status


def wait_gone(pid: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} still alive")


def umask_of(pid: int) -> int:
    """The umask process ``pid`` runs with (the ``Umask:`` line of its status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    raise AssertionError("no Umask line in /proc/PID/status")


def stop_daemon(pidfile: Path) -> None:
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)


def test_daemon_is_listening_when_the_launcher_exits(project: Path) -> None:
    port = free_port()
    result = run_tapster(["-D", "myproject", "-p", str(port)], cwd=project)
    pidfile = project / "tapster.pid"
    try:
        assert result.returncode == 0, result.stderr
        assert result.stdout == result.stderr == ""
        # Ready means listening: no retry loop needed.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"hi\n")
            assert conn.makefile("rb").readline() == b"hi\n"
        pid = int(pidfile.read_text())
        assert pidfile.read_text() == f"{pid}\n"
        # Its own session, and no controlling terminal (tty_nr, field 7, is 0).
        assert os.getsid(pid) != os.getsid(0)
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert fields[4] == "0"
        log = (project / "tapster.log").read_text()
        assert f"listening on tcp:127.0.0.1:{port}" in log
        # The daemon's umask is 077 unless --umask: it runs with it, and the files
        # the runner created before setting it (pidfile, log) are private too.
        assert umask_of(pid) == 0o077
        assert stat.S_IMODE(pidfile.stat().st_mode) == 0o600
        assert stat.S_IMODE((project / "tapster.log").stat().st_mode) == 0o600
    finally:
        if pidfile.exists():
            stop_daemon(pidfile)
    assert not pidfile.exists()
    assert "stopped" in (project / "tapster.log").read_text()


def test_daemon_start_up_failures(project: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        busy_port = busy.getsockname()[1]
        cases = [
            (["--fail", "make-error"], "build myproject: ValueError: the configuration is wrong"),
            (["-p", str(busy_port)], "in use"),
            (["--fail", "bind-error"], "refusing to bind"),
            (["--fail", "start-error"], "start failed on purpose"),
            (["--fail", "die"], "exited during start-up before it reported ready"),
        ]
        for extra, words in cases:
            args = ["-D", "myproject", "-p", str(free_port()), *extra]
            result = run_tapster(args, cwd=project)
            assert result.returncode == 1, (extra, result.stderr)
            lines = result.stderr.splitlines()
            assert len(lines) == 1, (extra, result.stderr)
            assert lines[0].startswith("tapster: "), extra
            assert words in lines[0], (extra, lines)
            assert not (project / "tapster.pid").exists(), extra
    log = (project / "tapster.log").read_text()
    assert "start failed on purpose" in log  # the daemon logged it too


def test_daemon_refuses_a_missing_run_directory(project: Path) -> None:
    result = run_tapster(["-D", "-d", "no/such/dir", "myproject"], cwd=project)
    assert result.returncode == 1
    assert "run directory" in result.stderr and "does not exist" in result.stderr


def test_daemon_with_rundir_and_umask(project: Path, tmp_path: Path) -> None:
    rundir = tmp_path / "run"
    rundir.mkdir()
    port = free_port()
    result = run_tapster(
        ["-D", "-d", str(rundir), "--umask", "022", "myproject", "-p", str(port)], cwd=project
    )
    pidfile = rundir / "tapster.pid"
    try:
        assert result.returncode == 0, result.stderr
        assert pidfile.exists()
        assert umask_of(int(pidfile.read_text())) == 0o022
        assert stat.S_IMODE(pidfile.stat().st_mode) == 0o644
        assert stat.S_IMODE((rundir / "tapster.log").stat().st_mode) == 0o640  # 0640 less 022
        assert Path(f"/proc/{pidfile.read_text().strip()}/cwd").resolve() == rundir.resolve()
    finally:
        if pidfile.exists():
            stop_daemon(pidfile)
