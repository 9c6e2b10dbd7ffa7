"""The pidfile: lock-guarded, atomic, removed on exit and on failed start."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
from pathlib import Path

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
