"""Dropping privileges: bind as root, then switch gid (and groups) and uid.

These tests need root (CI here runs as root); elsewhere they skip.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from support import free_port, run_tapster, tapster_cmd_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")

NOBODY = pwd.getpwnam("nobody")


def ask(port: int, line: bytes) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(line + b"\n")
        return conn.makefile("rb").readline().decode().strip()


def proc_ids(pid: int) -> dict[str, list[str]]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {
        line.split(":")[0]: line.split(":", 1)[1].split()
        for line in status
        if line.startswith(("Uid:", "Gid:", "Groups:"))
    }


@pytest.fixture
def rundir(tmp_path: Path) -> Path:
    """A run directory that belongs to nobody, as /run/SERVICE would."""
    path = tmp_path / "run"
    path.mkdir()
    os.chown(path, NOBODY.pw_uid, NOBODY.pw_gid)
    return path


def test_switch_to_nobody_after_binding(
    project: Path, rundir: Path, tapster_proc, wait_listening
) -> None:
    port = free_port()
    proc = tapster_proc.start(
        "-u", "nobody", "-d", str(rundir), "--pidfile", "app.pid", "-l", "app.log",
        "myproject", "-p", str(port), cwd=project,
    )  # fmt: skip
    wait_listening(proc, port)
    uid, gid, pid = ask(port, b"whoami").split()
    assert (int(uid), int(gid), int(pid)) == (NOBODY.pw_uid, NOBODY.pw_gid, proc.pid)
    ids = proc_ids(proc.pid)
    assert ids["Uid"] == [str(NOBODY.pw_uid)] * 4
    assert ids["Gid"] == [str(NOBODY.pw_gid)] * 4
    assert "0" not in ids["Groups"]  # root's supplementary groups are gone
    pidfile, log = rundir / "app.pid", rundir / "app.log"
    assert pidfile.stat().st_uid == NOBODY.pw_uid
    assert log.stat().st_uid == NOBODY.pw_uid
    # After the drop the log can still be reopened, and the pidfile removed.
    log.rename(rundir / "app.log.1")
    proc.send_signal(signal.SIGUSR1)
    for _ in range(500):
        if log.exists():
            break
        time.sleep(0.02)
    assert log.stat().st_uid == NOBODY.pw_uid
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert not pidfile.exists()
    assert "log reopened" in log.read_text()


def test_group_option_and_effective_only(project: Path, tapster_proc, wait_listening) -> None:
    port = free_port()
    proc = tapster_proc.start(
        "-u", str(NOBODY.pw_uid), "-g", "daemon", "--euid", "myproject", "-p", str(port),
        cwd=project,
    )  # fmt: skip
    wait_listening(proc, port)
    ids = proc_ids(proc.pid)
    assert ids["Uid"][:2] == ["0", str(NOBODY.pw_uid)]  # real root, effective nobody
    assert ids["Gid"][:2] == ["0", "1"]  # real root, effective daemon


@pytest.mark.parametrize(
    "ids",
    [f"uid={NOBODY.pw_uid}, gid={NOBODY.pw_gid}", "uid='nobody', gid='nogroup'"],
    ids=["numbers", "names"],
)
def test_tac_application_uid_and_gid_are_used(
    project: Path, tapster_proc, wait_listening, ids: str
) -> None:
    port = free_port()
    (project / "app.tac").write_text(
        "from tapster.service import Application\n"
        "from myproject import EchoService\n"
        f"application = Application('dropper', {ids})\n"
        f"EchoService({port}).set_parent(application)\n"
    )
    proc = tapster_proc.start("-y", "app.tac", cwd=project)
    wait_listening(proc, port)
    assert ask(port, b"whoami").split()[:2] == [str(NOBODY.pw_uid), str(NOBODY.pw_gid)]


def test_daemon_drops_privileges_too(project: Path, rundir: Path) -> None:
    port = free_port()
    result = run_tapster(
        ["-D", "-u", "nobody", "-d", str(rundir), "myproject", "-p", str(port)], cwd=project
    )
    assert result.returncode == 0, result.stderr
    pidfile = rundir / "tapster.pid"
    pid = int(pidfile.read_text())
    try:
        assert ask(port, b"whoami").split()[0] == str(NOBODY.pw_uid)
        assert pidfile.stat().st_uid == NOBODY.pw_uid
    finally:
        os.kill(pid, signal.SIGTERM)
    for _ in range(1500):
        status = Path(f"/proc/{pid}/status")
        if not status.exists() or "State:\tZ" in status.read_text():
            break
        time.sleep(0.01)
    assert not pidfile.exists()


def test_unprivileged_user_cannot_switch() -> None:
    """Run as ``nobody``, ``-u root`` fails at the switch in one line, status 1."""
    found = tapster_cmd_for("nobody")
    if found is None:
        pytest.skip("no Python interpreter that nobody may run with tapster's dependencies")
    command, env = found
    home = Path(tempfile.mkdtemp(prefix="tapster-nobody-"))  # not under pytest's 0700 folder
    try:
        os.chown(home, NOBODY.pw_uid, NOBODY.pw_gid)
        (home / "app.tac").write_text(
            "from tapster.service import Application\napplication = Application('x')\n"
        )
        result = subprocess.run(
            [*command, "-u", "root", "--pidfile", "app.pid", "-y", "app.tac"],
            user="nobody", group=NOBODY.pw_gid, extra_groups=[], cwd=home, env=env,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 1, result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("tapster: cannot switch to "), result.stderr
        assert "operation not permitted" in lines[0]
        assert sorted(p.name for p in home.iterdir()) == ["app.tac"]  # no pidfile left
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_rotation_in_a_directory_the_new_user_cannot_write_is_disabled_not_fatal(
    project: Path, tmp_path: Path, tapster_proc, wait_listening
) -> None:
    rundir = tmp_path / "root-owned"
    rundir.mkdir()  # root's, 0755: nobody may append to its own log file but not rename
    port = free_port()
    proc = tapster_proc.start(
        "-u", "nobody", "-d", str(rundir), "-l", "app.log", "--log-rotate-size", "3000",
        "myproject", "-p", str(port), "--ticks", "0.002", cwd=project,
    )  # fmt: skip
    wait_listening(proc, port)
    log = rundir / "app.log"
    for _ in range(500):
        if log.stat().st_size > 6000:
            break
        time.sleep(0.02)
    assert proc.poll() is None
    text = log.read_text()
    assert "log rotation disabled: Permission denied" in text
    assert not (rundir / "app.log.1").exists()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert "Logging error" not in err


def test_profile_report_is_written_after_switching_to_nobody(
    project: Path, rundir: Path, tapster_proc, wait_listening
) -> None:
    """The report file is opened at start-up, as root: the new user need not reach it."""
    report = project / "report.txt"  # in a root-owned folder nobody cannot write
    port = free_port()
    proc = tapster_proc.start(
        "-u", "nobody", "-d", str(rundir), "--profile", str(report), "myproject",
        "-p", str(port), cwd=project,
    )  # fmt: skip
    wait_listening(proc, port)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "function calls" in report.read_text()
