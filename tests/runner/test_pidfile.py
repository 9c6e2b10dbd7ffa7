"""The pidfile: lock-guarded, atomic, removed on exit and on failed start."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest
from support import free_port, run_tapster


def test_a_live_instance_blocks_a_second_one(project: Path, tapster_proc, wait_listening) -> None:
    port = free_port()
    proc = tapster_proc.start("--pidfile", "app.pid", "myproject", "-p", str(port), cwd=project)
    wait_listening(proc, port)
    pidfile = project / "app.pid"
    assert pidfile.read_text() == f"{proc.pid}\n"
    assert stat.S_IMODE(pidfile.stat().st_mode) == 0o644
    second = run_tapster(["--pidfile", "app.pid", "myproject", "-p", str(free_port())], cwd=project)
    assert second.returncode == 1
    assert second.stderr == (
        f"tapster: already running as PID {proc.pid} (pidfile {pidfile}); "
        "stop it first or choose another --pidfile\n"
    )
    assert pidfile.read_text() == f"{proc.pid}\n"  # untouched
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert not pidfile.exists()


def test_a_stale_file_naming_a_live_unrelated_process_never_blocks(
    project: Path, tapster_proc, wait_listening
) -> None:
    unrelated = subprocess.Popen(["sleep", "60"])
    try:
        pidfile = project / "app.pid"
        pidfile.write_text(f"{unrelated.pid}\n")
        port = free_port()
        proc = tapster_proc.start(
            "--pidfile", str(pidfile), "myproject", "-p", str(port), cwd=project
        )
        wait_listening(proc, port)
        assert pidfile.read_text() == f"{proc.pid}\n"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
        assert not pidfile.exists()
        assert unrelated.poll() is None
    finally:
        unrelated.kill()
        unrelated.wait()


def test_a_killed_instance_leaves_a_file_that_does_not_block(
    project: Path, tapster_proc, wait_listening
) -> None:
    port = free_port()
    proc = tapster_proc.start("--pidfile", "app.pid", "myproject", "-p", str(port), cwd=project)
    wait_listening(proc, port)
    proc.kill()
    proc.wait()
    assert (project / "app.pid").read_text() == f"{proc.pid}\n"
    port = free_port()  # the old port may linger in TIME_WAIT
    again = tapster_proc.start("--pidfile", "app.pid", "myproject", "-p", str(port), cwd=project)
    wait_listening(again, port)
    assert (project / "app.pid").read_text() == f"{again.pid}\n"


def test_the_pidfile_is_removed_after_a_failed_start(project: Path) -> None:
    result = run_tapster(
        ["--pidfile", "app.pid", "myproject", "-p", str(free_port()), "--fail", "bind-error"],
        cwd=project,
    )
    assert result.returncode == 1
    assert not (project / "app.pid").exists()
    stale = project / "stale.pid"
    stale.write_text("1\n")
    result = run_tapster(
        ["--pidfile", "stale.pid", "myproject", "-p", str(free_port()), "--fail", "start-error"],
        cwd=project,
    )
    assert result.returncode == 1
    assert not stale.exists()


def test_an_empty_pidfile_option_disables_it_even_for_a_daemon(project: Path) -> None:
    port = free_port()
    result = run_tapster(["-D", "--pidfile", "", "myproject", "-p", str(port)], cwd=project)
    assert result.returncode == 0, result.stderr
    assert not (project / "tapster.pid").exists()
    pid = int(
        next(
            line.rsplit("pid ", 1)[1]
            for line in (project / "tapster.log").read_text().splitlines()
            if " pid " in line
        )
    )
    os.kill(pid, signal.SIGTERM)


def test_an_unwritable_pidfile_location_is_one_line(project: Path) -> None:
    result = run_tapster(
        ["--pidfile", "/no/such/dir/app.pid", "myproject", "-p", str(free_port())], cwd=project
    )
    assert result.returncode == 1
    assert result.stderr.startswith("tapster: cannot use pidfile /no/such/dir/app.pid")
    assert len(result.stderr.splitlines()) == 1


def _make_device(path: Path) -> bool:
    """A copy of /dev/null's device node at ``path`` (root only)."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        return False
    return True


@pytest.mark.parametrize("kind", ["device", "fifo", "text", "two-pids", "huge"])
def test_a_pidfile_path_naming_something_else_is_refused_and_left_alone(
    project: Path, kind: str
) -> None:
    """A mistyped --pidfile must never replace or delete what is there (we run as root)."""
    target = project / f"not-a-pidfile-{kind}"
    if kind == "device":
        if not _make_device(target):
            pytest.skip("mknod needs root")
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "text":
        target.write_text("precious\n")
    elif kind == "two-pids":
        target.write_text("12\n34\n")
    else:
        target.write_text("1" * 100 + "\n")
    before = target.lstat()
    content = None if kind in ("device", "fifo") else target.read_bytes()
    for daemon in ([], ["-D"]):
        result = run_tapster(
            [*daemon, "--pidfile", str(target), "myproject", "-p", str(free_port())],
            cwd=project,
            timeout=20,
        )
        assert result.returncode == 1, result.stderr
        assert len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stderr.startswith("tapster: cannot "), result.stderr
        assert str(target) in result.stderr
        after = target.lstat()
        assert (after.st_ino, after.st_mode, after.st_rdev) == (
            before.st_ino,
            before.st_mode,
            before.st_rdev,
        )
        if content is not None:
            assert target.read_bytes() == content
    assert not (project / "tapster.pid").exists()
