"""Logs: reopen on SIGUSR1/SIGHUP without losing a line, rotation, JSON, syslog."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support import free_port, run_tapster, tapster_env

TICK = re.compile(r"tick (\d+)")


def ticks(*files: Path) -> list[int]:
    numbers: list[int] = []
    for path in files:
        if path.exists():
            numbers += [int(m.group(1)) for m in TICK.finditer(path.read_text())]
    return numbers


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_reopen_on_sigusr1_and_sighup_loses_no_line(
    project: Path, tapster_proc, wait_listening
) -> None:
    log = project / "app.log"
    port = free_port()
    proc = tapster_proc.start(
        "-l", "app.log", "myproject", "-p", str(port), "--ticks", "0.001", cwd=project
    )
    wait_listening(proc, port)
    rotated = []
    for round_, signum in enumerate([signal.SIGUSR1, signal.SIGHUP, signal.SIGUSR1]):
        wait_until(lambda: len(ticks(log)) > 50)
        moved = project / f"app.log.{round_ + 1}"
        log.rename(moved)  # what logrotate does; lines keep going to the moved file
        rotated.append(moved)
        time.sleep(0.05)
        proc.send_signal(signum)
        wait_until(lambda: log.exists() and len(ticks(log)) > 20)
        assert "log reopened" in log.read_text()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=15)
    assert proc.returncode == 0
    numbers = ticks(*rotated, log)
    assert len(numbers) > 200
    assert numbers == list(range(len(numbers))), "a line was lost or duplicated"
    for moved in rotated:
        assert ticks(moved), moved


def test_internal_rotation_by_size_keeps_n_backups(
    project: Path, tapster_proc, wait_listening
) -> None:
    port = free_port()
    proc = tapster_proc.start(
        "-l", "app.log", "--log-rotate-size", "4000", "--log-backups", "2",
        "myproject", "-p", str(port), "--ticks", "0.001", cwd=project,
    )  # fmt: skip
    wait_listening(proc, port)
    wait_until(lambda: (project / "app.log.2").exists())
    wait_until(lambda: len(ticks(project / "app.log")) > 5)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=15)
    assert not (project / "app.log.3").exists()
    files = [project / "app.log.2", project / "app.log.1", project / "app.log"]
    for path in files:
        assert path.stat().st_size <= 4000
    numbers = ticks(*files)
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))


def test_json_lines(project: Path, tapster_proc, wait_listening) -> None:
    port = free_port()
    proc = tapster_proc.start("--log-format", "json", "myproject", "-p", str(port), cwd=project)
    wait_listening(proc, port)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    records = [json.loads(line) for line in err.splitlines()]
    assert records[0]["logger"] == "tapster.runner"
    assert records[0]["level"] == "INFO"
    assert records[0]["message"].startswith("tapster 0.1.0 on ")
    assert {"time", "level", "logger", "message", "pid"} <= set(records[0])
    assert any("listening on" in r["message"] for r in records)


def test_syslog_with_prefix(project: Path, tapster_proc, tmp_path: Path, wait_listening) -> None:
    address = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as collector:
        collector.bind(address)
        collector.settimeout(10)
        port = free_port()
        proc = tapster_proc.start(
            "--syslog", "--prefix", "myapp", "--syslog-socket", address,
            "myproject", "-p", str(port), cwd=project,
        )  # fmt: skip
        wait_listening(proc, port)
        first = collector.recv(4096).decode()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert err == ""
    # <30> is facility daemon (3) * 8 + info (6).
    assert first.startswith(f"<30>myapp[{proc.pid}]: tapster.runner: tapster 0.1.0 on ")


def test_syslog_without_a_daemon_listening_is_one_line(project: Path, tmp_path: Path) -> None:
    from support import run_tapster

    result = run_tapster(
        ["--syslog", "--syslog-socket", str(tmp_path / "none"), "myproject", "-p", "0"],
        cwd=project,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("tapster: cannot log to syslog at ")
    assert len(result.stderr.splitlines()) == 1


def test_unwritable_log_file_is_one_line(project: Path) -> None:
    from support import run_tapster

    result = run_tapster(["-l", "/no/such/dir/app.log", "myproject", "-p", "0"], cwd=project)
    assert result.returncode == 1
    assert result.stderr == (
        "tapster: cannot open log file /no/such/dir/app.log: No such file or directory\n"
    )


def test_stdout_destination_and_level(project: Path, tapster_proc, wait_listening) -> None:
    port = free_port()
    proc = tapster_proc.start("-l", "-", "myproject", "-p", str(port), cwd=project)
    wait_listening(proc, port)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=15)
    assert "tapster 0.1.0 on" in out and err == ""
    port = free_port()
    proc = tapster_proc.start("--log-level", "warning", "myproject", "-p", str(port), cwd=project)
    wait_listening(proc, port)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert out == err == ""


def test_rotation_never_moves_a_device_or_a_pipe(
    project: Path, tapster_proc, wait_listening
) -> None:
    """--log-rotate-size on a device or a named pipe: lines go there, nothing is renamed."""
    fifo = project / "app.pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def drain() -> None:
        with open(fifo, "rb") as pipe:
            received.extend(iter(lambda: pipe.read(4096), b""))

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    port = free_port()
    proc = tapster_proc.start(
        "-l", str(fifo), "--log-rotate-size", "300", "--log-backups", "2",
        "myproject", "-p", str(port), "--ticks", "0.001", cwd=project,
    )  # fmt: skip
    wait_listening(proc, port)
    wait_until(lambda: b"".join(received).count(b"tick") > 100)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=15)
    assert proc.returncode == 0
    reader.join(10)
    text = b"".join(received).decode()
    assert f"log rotation disabled: {fifo} is a named pipe, not a regular file" in text
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert sorted(p.name for p in project.glob("app.pipe*")) == ["app.pipe"]


def test_rotation_never_moves_a_device_node(project: Path, tapster_proc, wait_listening) -> None:
    device = project / "null"
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root")
    port = free_port()
    proc = tapster_proc.start(
        "-l", str(device), "--log-rotate-size", "100", "myproject", "-p", str(port),
        "--ticks", "0.001", cwd=project,
    )  # fmt: skip
    wait_listening(proc, port)
    time.sleep(0.3)  # some hundred lines, each one over the size
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=15)
    assert proc.returncode == 0
    after = device.lstat()
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == os.makedev(1, 3)
    assert sorted(p.name for p in project.glob("null*")) == ["null"]


def test_rotation_refuses_to_replace_a_backup_that_is_not_a_regular_file(
    project: Path, tapster_proc, wait_listening
) -> None:
    os.mkfifo(project / "app.log.2")
    port = free_port()
    proc = tapster_proc.start(
        "-l", "app.log", "--log-rotate-size", "2000", "--log-backups", "3",
        "myproject", "-p", str(port), "--ticks", "0.001", cwd=project,
    )  # fmt: skip
    wait_listening(proc, port)
    log = project / "app.log"
    wait_until(lambda: "log rotation disabled" in log.read_text())
    wait_until(lambda: log.stat().st_size > 4000)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=15)
    assert f"{log}.2 is a named pipe, not a regular file" in log.read_text()
    assert stat.S_ISFIFO((project / "app.log.2").lstat().st_mode)
    assert not (project / "app.log.1").exists() and not (project / "app.log.3").exists()


def _password_file(folder: Path) -> Path:
    """A password file with one good user and one bad line (which the checker warns about)."""
    users = folder / "users"
    made = subprocess.run(
        [sys.executable, "-m", "tapster.cred.passwd_tool", str(users), "alice"],
        input="secret\n", env=tapster_env(), capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    with users.open("a") as stream:
        stream.write("this line has no colon\n")
    users.chmod(0o600)
    return users


BAD_LINE = "line 2: no ':' between user name and password hash"


@pytest.mark.parametrize("daemon", [False, True], ids=["foreground", "daemon"])
def test_warnings_logged_while_parsing_options_reach_the_log_file(
    project: Path, tapster_proc, wait_listening, daemon: bool
) -> None:
    """--auth file: warns about a bad line while options are parsed, before logs are open."""
    users = _password_file(project)
    port = free_port()
    listen = f"tcp:{port}:interface=127.0.0.1"
    log = project / "app.log"
    args = ["--logfile", str(log), "web", "--auth", f"file:{users}", "--listen", listen]
    if daemon:
        result = run_tapster(["-D", "--pidfile", "app.pid", *args], cwd=project, timeout=30)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        try:
            wait_until(lambda: "ready" in log.read_text())
        finally:
            os.kill(int((project / "app.pid").read_text()), signal.SIGTERM)
    else:
        proc = tapster_proc.start(*args, cwd=project)
        wait_until(lambda: log.exists() and "ready" in log.read_text())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert BAD_LINE not in err, err
    text = log.read_text()
    assert f"WARNING tapster.cred: {users} {BAD_LINE}" in text, text
    assert text.index(BAD_LINE) < text.index("starting application")


def test_early_warnings_still_show_when_the_run_ends_before_logs_open(project: Path) -> None:
    users = _password_file(project)
    result = run_tapster(
        ["--logfile", str(project / "nope" / "app.log"), "web", "--auth", f"file:{users}",
         "--listen", f"tcp:{free_port()}:interface=127.0.0.1"],
        cwd=project, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert any(BAD_LINE in line and " WARNING " in line for line in lines), result.stderr
    assert lines[-1].startswith("tapster: cannot open log file"), result.stderr
    # A usage error after the warning: the warning first, then the one-line error.
    result = run_tapster(["web", "--auth", f"file:{users}", "--bogus"], cwd=project, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert BAD_LINE in lines[0] and " WARNING " in lines[0], result.stderr
    assert lines[1:] == [
        "tapster: error: unknown option '--bogus'",
        "Run 'tapster web --help' for usage.",
    ], result.stderr
