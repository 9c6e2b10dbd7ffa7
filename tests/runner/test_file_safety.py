"""The files the runner creates or hands to the service user, attacked from outside.

One rule for the main log, its rotated files, the access log, the pidfile and
the profile report: never opened through a symbolic link, never blocking on a
pipe, only a regular file of tapster's own opening is given to the ``-u``
user, a device is written to and left alone. Each test plays a hostile service
user or a careless operator against the real ``tapster`` command.

The privilege tests need root (CI here runs as root); elsewhere they skip.
Devices are private ``mknod`` copies in a temporary folder, never the real
``/dev/null`` or ``/dev/full``.
"""

from __future__ import annotations

import os
import pwd
import resource
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support import free_port, run_tapster, wait_for_port

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root to switch users and make devices")
NOBODY = pwd.getpwnam("nobody")
NULL, FULL = os.makedev(1, 3), os.makedev(1, 7)


def device(path: Path, number: int) -> Path:
    """A private copy of a character device (``/dev/null``, ``/dev/full``) at ``path``."""
    os.mknod(path, 0o666 | stat.S_IFCHR, number)
    os.chmod(path, 0o666)
    return path


def message_lines(stderr: str) -> list[str]:
    """The ``tapster: ...`` lines (log lines on stderr have a timestamp instead)."""
    return [line for line in stderr.splitlines() if line.startswith("tapster: ")]


def one_line(result: subprocess.CompletedProcess[str], *says: str) -> None:
    """Status 1 and exactly one message line, naming each of ``says``."""
    shown = f"status {result.returncode}, stderr:\n{result.stderr}"
    assert result.returncode == 1, shown
    assert "Traceback" not in result.stderr, shown
    lines = message_lines(result.stderr)
    assert len(lines) == 1, shown
    for words in says:
        assert words in lines[0], shown


def kill_left_behind(pidfile: Path) -> None:
    """Kill a daemon a failing test left running (before the fix it may ignore SIGTERM)."""
    try:
        pid = int(pidfile.read_text())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(500):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)


def run_or_timeout(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``run_tapster``, with a start that hangs or serves instead of failing reported as such."""
    try:
        return run_tapster(args, cwd=cwd, timeout=20)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"tapster did not refuse; it ran on: {exc.stderr!r}") from None


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, Path]:
    """A run directory owned by ``nobody`` and a root-owned secret outside it."""
    run = tmp_path / "run"
    run.mkdir()
    os.chown(run, NOBODY.pw_uid, NOBODY.pw_gid)
    target = tmp_path / "secret"
    target.write_text("root:secret\n")
    os.chmod(target, 0o600)
    return run, target


def assert_untouched(target: Path) -> None:
    info = target.lstat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 0, 0o600)
    assert target.read_text() == "root:secret\n"


# -- item 1: the log file the service user could plant ----------------------------------


@needs_root
@pytest.mark.parametrize("plant", ["symlink", "hardlink"])
@pytest.mark.parametrize("mode", ["daemon", "foreground"])
def test_a_planted_log_file_is_refused_not_handed_over(
    project: Path, planted: tuple[Path, Path], plant: str, mode: str
) -> None:
    """``tapster.log -> /etc/shadow`` (or a hard link to it) in the service user's folder."""
    run, target = planted
    link = run / "tapster.log"
    if plant == "symlink":
        link.symlink_to(target)
    else:
        os.link(target, link)
    pidfile = run / "tapster.pid"
    if mode == "daemon":
        args = ["-D", "-u", "nobody", "-d", str(run)]
    else:
        args = ["-u", "nobody", "--pidfile", str(pidfile), "--logfile", str(link)]
    try:
        result = run_or_timeout([*args, "myproject", "-p", str(free_port())], cwd=project)
        says = "symbolic link" if plant == "symlink" else "2 names, hard links"
        one_line(result, str(link), says)
    finally:
        kill_left_behind(pidfile)
    assert_untouched(target)
    assert not pidfile.exists()


@needs_root
def test_a_planted_profile_report_is_refused(project: Path, planted: tuple[Path, Path]) -> None:
    """``--profile`` into the service user's folder, where a hard link to a secret waits."""
    run, target = planted
    report = run / "profile.txt"
    os.link(target, report)
    pidfile = run / "app.pid"
    args = ["-u", "nobody", "--pidfile", str(pidfile), "--profile", str(report), "myproject"]
    try:
        result = run_or_timeout([*args, "-p", str(free_port())], cwd=project)
    finally:
        kill_left_behind(pidfile)
    one_line(result, "profile report", str(report), "2 names, hard links")
    assert_untouched(target)


@needs_root
def test_a_device_as_log_discards_lines_without_changing_owner_or_name(
    project: Path, tmp_path: Path, tapster_proc, wait_listening
) -> None:
    """``--logfile DEVICE -u nobody --log-rotate-size``: written to, never chowned or renamed."""
    folder = tmp_path / "devices"
    folder.mkdir()
    null = device(folder / "null", NULL)
    port = free_port()
    proc = tapster_proc.start(
        "-u", "nobody", "--logfile", str(null), "--log-rotate-size", "100",
        "myproject", "-p", str(port), "--ticks", "0.001", cwd=project,
    )  # fmt: skip
    wait_listening(proc, port)
    time.sleep(0.3)  # some hundred lines, each over the rotation size
    proc.send_signal(signal.SIGUSR1)  # a reopen as nobody: still the device
    time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    info = null.lstat()
    assert stat.S_ISCHR(info.st_mode) and info.st_rdev == NULL
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 0, 0o666)
    assert sorted(p.name for p in folder.iterdir()) == ["null"]


# -- item 3: an access log on a pipe nobody reads -----------------------------------------


@pytest.mark.parametrize("mode", ["daemon", "foreground"])
def test_access_log_on_a_pipe_nobody_reads_is_refused(tmp_path: Path, mode: str) -> None:
    """Refused like ``--logfile`` on the same pipe; ``-D``'s launcher returns."""
    fifo = tmp_path / "access.pipe"
    os.mkfifo(fifo)
    pidfile = tmp_path / "app.pid"
    args = ["-D"] if mode == "daemon" else []
    args += [
        "--pidfile", str(pidfile), "web", "--path", str(tmp_path),
        "--listen", f"tcp:{free_port()}:interface=127.0.0.1", "--access-log-file", str(fifo),
    ]  # fmt: skip
    started = time.monotonic()
    try:
        result = run_or_timeout(args, cwd=tmp_path)
    finally:
        kill_left_behind(pidfile)
    one_line(result, "access log", str(fifo), "named pipe nobody reads")
    assert time.monotonic() - started < 15
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert not pidfile.exists()


# -- item 5: a log that cannot be written -----------------------------------------------


@needs_root
@pytest.mark.parametrize("mode", ["daemon", "foreground"])
def test_a_log_that_cannot_be_written_fails_the_start(
    project: Path, tmp_path: Path, mode: str
) -> None:
    """A copy of ``/dev/full`` as the log: status 1 and one line, not a silent daemon."""
    full = device(tmp_path / "full", FULL)
    pidfile = tmp_path / "app.pid"
    args = ["-D"] if mode == "daemon" else []
    args += ["--pidfile", str(pidfile), "--logfile", str(full), "myproject"]
    try:
        result = run_or_timeout([*args, "-p", str(free_port())], cwd=project)
    finally:
        kill_left_behind(pidfile)
    one_line(result, f"cannot write the log {full}", "No space left on device")
    assert not pidfile.exists()
    assert stat.S_ISCHR(full.lstat().st_mode)


def test_a_log_that_fills_later_is_warned_once_and_service_goes_on(
    project: Path, tmp_path: Path, tapster_proc, wait_listening
) -> None:
    """The file grows past what the process may write (RLIMIT_FSIZE): one warning, still serving."""
    log = tmp_path / "app.log"

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))

    port = free_port()
    proc = tapster_proc.start(
        "--logfile", str(log), "myproject", "-p", str(port), "--ticks", "0.001",
        cwd=project, preexec_fn=small_files,
    )  # fmt: skip
    wait_listening(proc, port)
    deadline = time.monotonic() + 10
    while log.stat().st_size < 16000 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # many more lines that cannot be written
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"still\n")
        assert conn.makefile("rb").readline() == b"still\n"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    warnings = [line for line in err.splitlines() if "cannot write the log" in line]
    assert warnings == [f"tapster: cannot write the log {log}: File too large "
                        "(lines are lost until it can be written again)"], err  # fmt: skip


# -- item 9: reopening after the switch, in a folder the user cannot write -----------------


@needs_root
def test_reopen_in_a_folder_the_user_cannot_write_says_so(
    project: Path, tmp_path: Path, tapster_proc, wait_listening
) -> None:
    """logrotate's rename then SIGUSR1, with a root-owned log folder: a warning, not a lie."""
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o755)
    log, rotated = logs / "app.log", logs / "app.log.1"
    port = free_port()
    proc = tapster_proc.start(
        "-u", "nobody", "--logfile", str(log), "myproject", "-p", str(port), "--ticks", "0.02",
        cwd=project,
    )  # fmt: skip
    wait_listening(proc, port)
    log.rename(rotated)
    proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while "SIGUSR1" not in rotated.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    ticks_then = rotated.read_text().count("tick")
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=15)
    assert proc.returncode == 0
    text = rotated.read_text()
    assert "log reopened" not in text
    assert (
        f"WARNING tapster.runner: SIGUSR1 received: cannot reopen the log file {log}: "
        "Permission denied; lines keep going to the file open until now"
    ) in text
    assert text.count("tick") > ticks_then  # writing on where it can
    assert "stopped" in text
    assert not log.exists()


@needs_root
def test_access_log_reopen_in_a_folder_the_user_cannot_write_warns_once(
    tmp_path: Path, tapster_proc
) -> None:
    """The access log, renamed away after ``-u``: one warning, and no line lost."""
    # The access log is opened after the switch, by nobody: a folder nobody may
    # enter, with the file ready for it (as an operator would prepare it).
    base = Path(tempfile.mkdtemp(prefix="tapster-access-"))
    try:
        base.chmod(0o755)
        logs, site = base / "logs", base / "site"
        logs.mkdir(mode=0o755)
        site.mkdir(mode=0o755)
        main, access, rotated = logs / "main.log", logs / "access.log", logs / "access.log.1"
        access.touch()
        os.chown(access, NOBODY.pw_uid, NOBODY.pw_gid)
        (site / "hello.txt").write_text("hello\n")
        port = free_port()
        proc = tapster_proc.start(
            "-u", "nobody", "--logfile", str(main), "web", "--path", str(site),
            "--listen", f"tcp:{port}:interface=127.0.0.1", "--access-log-file", str(access),
            cwd=tmp_path,
        )  # fmt: skip
        wait_for_port(port)
        get(port, "/hello.txt")
        wait_for(lambda: "/hello.txt" in access.read_text())
        access.rename(rotated)
        for number in range(5):
            get(port, f"/after-{number}")
            time.sleep(0.25)  # each request in a batch of its own
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
        assert proc.returncode == 0
        text = rotated.read_text()
        main_text = main.read_text()
        assert not access.exists()
    finally:
        shutil.rmtree(base)
    assert all(f"/after-{number} " in text for number in range(5)), text
    warnings = [line for line in main_text.splitlines() if "reopen the access log" in line]
    assert len(warnings) == 1, main_text
    assert f"Cannot reopen the access log {access}: Permission denied" in warnings[0]


def get(port: int, path: str) -> None:
    """One HTTP request, answered (any status)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert conn.makefile("rb").readline().startswith(b"HTTP/1.1 ")


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- item 13: modes of the files the runner creates ------------------------------------


def test_log_and_pidfile_take_the_modes_the_umask_allows(
    project: Path, tmp_path: Path, tapster_proc, wait_listening
) -> None:
    """Foreground, umask 022: the log 0640 (not world-readable), the pidfile 0644."""
    log, pidfile = tmp_path / "app.log", tmp_path / "app.pid"
    rotated = tmp_path / "app.log.1"
    port = free_port()

    def umask_022() -> None:
        os.umask(0o022)

    proc = tapster_proc.start(
        "--logfile", str(log), "--pidfile", str(pidfile), "--log-rotate-size", "2000",
        "myproject", "-p", str(port), "--ticks", "0.005", cwd=project, preexec_fn=umask_022,
    )  # fmt: skip
    wait_listening(proc, port)
    deadline = time.monotonic() + 10
    while not rotated.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stat.S_IMODE(log.stat().st_mode) == 0o640
    assert stat.S_IMODE(rotated.stat().st_mode) == 0o640
    assert stat.S_IMODE(pidfile.stat().st_mode) == 0o644
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=15)
    assert proc.returncode == 0
